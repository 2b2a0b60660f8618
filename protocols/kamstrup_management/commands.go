package kamstrupmgmt

import (
	"strconv"
	"strings"
)

// Store holds the console's settings: the host's databus, as strings.
type Store interface {
	Get(key string) string
	Set(key, value string)
}

// Result is the console's answer to one line.
type Result struct {
	Reply  string // sent as is; "" sends nothing
	Close  bool   // the module closes the connection (Q, !RR, !SC)
	Reboot bool   // the module restarts (the meter stops answering for a moment)
	Cmd    string // the command word for metrics: one of Commands, "H", "Q", "" or "unknown"
}

// Replies shared by several commands.
const (
	notFound     = "\r\n? Command not found.\r\nSend 'H' for help.\r\n"
	invalidParam = "\r\n? Invalid parameter.\r\nTry 'H cmd' for specific help.\r\n Ie: H !SC\r\n"
	invalidData  = "\r\nInvalid data!\r\n\r\n"
)

// menu is the H reply.
const menu = "==============================================================================\r\n" +
	"Service Menu\r\n" +
	"==============================================================================\r\n" +
	"H:   Help [cmd].\r\n" +
	"Q:   Close connection.\r\n" +
	"!AC: Access control.\r\n" +
	"!AS: Alarm Server.\r\n" +
	"!GC: Get Config.\r\n" +
	"!GV: Software version.\r\n" +
	"!SA: Set KAP Server IP and port (*1).\r\n" +
	"!SB: Set 2nd KAP Server IP and port.\r\n" +
	"!SC: Set Config (*1).\r\n" +
	"!SD: Set device name (*1).\r\n" +
	"!SH: Set KAP Server lookup (DNS or DHCP)\r\n" +
	"!SI: Set IP (enter either valid IP or 0 to force DHCP)(*1).\r\n" +
	"!SK: Set KAP watchdog timeout(WDT).\r\n" +
	"!SN: Set IP for DNS Name servers to use.\r\n" +
	"!SP: Set IP Ports\r\n" +
	"!SS: Set Serial Settings.\r\n" +
	"!RC: Request connect\r\n" +
	"!RR: Request restart (*1).\r\n" +
	"!WM: Wink module.\r\n" +
	"==============================================================================\r\n" +
	"(*1) Forces system restart\r\n" +
	"==============================================================================\r\n" +
	"Kamstrup (R)\r\n"

// command is one console command.
type command struct {
	help string
	run  func(st Store, params string, hasParams bool) Result
}

// Commands lists the console's commands in menu order.
var Commands = []string{"!AC", "!AS", "!GC", "!GV", "!SA", "!SB", "!SC", "!SD", "!SH", "!SI", "!SK", "!SN", "!SP", "!SS", "!RC", "!RR", "!WM"}

var commands map[string]command

func init() {
	commands = map[string]command{
		"!AC": {helpAC, runAC}, "!AS": {helpAS, runAS}, "!GC": {helpGC, runGC}, "!GV": {helpGV, runGV},
		"!SA": {helpSA, runSA}, "!SB": {helpSB, runSB}, "!SC": {helpSC, runSC}, "!SD": {helpSD, runSD},
		"!SH": {helpSH, runSH}, "!SI": {helpSI, runSI}, "!SK": {helpSK, runSK}, "!SN": {helpSN, runSN},
		"!SP": {helpSP, runSP}, "!SS": {helpSS, runSS}, "!RC": {helpRC, runRC}, "!RR": {helpRR, runRR},
		"!WM": {helpWM, runWM},
	}
}

// ParseLine splits a console line into its command word (upper case) and parameters, as
// the module does: surrounding white space is dropped and the first space separates them.
func ParseLine(line string) (cmd, params string, hasParams bool) {
	line = strings.TrimSpace(line)
	cmd, params, hasParams = strings.Cut(line, " ")
	return strings.ToUpper(cmd), params, hasParams
}

// Respond answers one line typed at the console.
func Respond(st Store, line string) Result {
	cmd, params, has := ParseLine(line)
	switch {
	case cmd == "":
		return Result{}
	case len(cmd) > 3:
		return Result{Reply: notFound, Cmd: "unknown"}
	case strings.HasPrefix(cmd, "Q"):
		return Result{Close: true, Cmd: "Q"}
	case strings.HasPrefix(cmd, "H"):
		r := Result{Cmd: "H", Reply: menu}
		if has {
			r.Reply = invalidParam
			if c, ok := commands[prefix(params, 3)]; ok {
				r.Reply = c.help
			}
		}
		return r
	}
	c, ok := commands[cmd]
	if !ok {
		return Result{Reply: notFound, Cmd: "unknown"}
	}
	r := c.run(st, params, has)
	r.Cmd = cmd
	return r
}

func prefix(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// ParseIP reads an address as the module accepts it, dotted ("192.168.1.2") or as twelve
// digits ("192168001002"); anything else is 0.0.0.0.
func ParseIP(s string) string {
	var parts []string
	if strings.Contains(s, ".") {
		parts = strings.Split(s, ".")
	} else {
		for i := 0; i < len(s); i += 3 {
			parts = append(parts, s[i:min(i+3, len(s))])
		}
	}
	if len(parts) != 4 {
		return "0.0.0.0"
	}
	out := make([]string, 4)
	for i, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil || v < 0 || v > 255 {
			return "0.0.0.0"
		}
		out[i] = strconv.Itoa(v)
	}
	return strings.Join(out, ".")
}

// parsePort returns the port in s, or 0 when it is not one.
func parsePort(s string) int {
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 || v > 65535 {
		return 0
	}
	return v
}

// parseUint returns s as decimal text when it is a number in [lo, hi], else "0".
func parseUint(s string, lo, hi uint64) string {
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v < lo || v > hi {
		return "0"
	}
	return strconv.FormatUint(v, 10)
}

// enabled formats a timer setting: "ENABLED n", or "DISABLED 0" for 0.
func enabled(v string) string {
	if v == "0" {
		return "DISABLED " + v
	}
	return "ENABLED " + v
}

const helpAC = "!AC: Access control.\r\n" +
	"     Used for simple IP address firewall filtering.\r\n" +
	"     If enabled only the listed IP's can assess this module.\r\n" +
	"      Format:  !AC [En/Dis [ID IP]]\r\n" +
	"      Example: !AC\r\n" +
	"               Lists the setup.\r\n" +
	"      Example: !AC 0\r\n" +
	"               Disables the filter allowing everybody to access.\r\n" +
	"      Example: !AC 0 1 192.168.1.211\r\n" +
	"               !AC 0 2 10.0.0.1\r\n" +
	"               !AC 0 3 195.215.168.45\r\n" +
	"               !AC 1\r\n" +
	"               Only connections from 192.168.1.211, \r\n" +
	"               10.0.0.1 or 195.215.168.45 are possible.\r\n"

func runAC(st Store, params string, has bool) Result {
	var b strings.Builder
	if has && params != "" {
		b.WriteString("\r\nOK\r\n")
		f := strings.Split(params, " ")
		switch {
		case params == "0":
			st.Set("access_control_status", "DISABLED")
		case params == "1":
			st.Set("access_control_status", "ENABLED")
		case len(f) == 3 && f[0] == "0" && strings.Count(f[2], ".") == 3:
			if n, err := strconv.Atoi(f[1]); err == nil && n >= 1 && n <= 5 {
				st.Set("access_control_"+f[1], ParseIP(f[2]))
			}
		}
	}
	b.WriteString("\r\n" + st.Get("access_control_status") + " \r\n")
	for i := 1; i <= 5; i++ {
		b.WriteString(" [" + strconv.Itoa(i) + "] " + st.Get("access_control_"+strconv.Itoa(i)) + "\r\n")
	}
	return Result{Reply: b.String()}
}

const helpAS = "!AS: Alarm Server.\r\n" +
	"     Used to set IP and port of server to handle alarm notifications.\r\n" +
	"      Format:  !AS [SrvIP [SrvPort]]\r\n" +
	"      Example: !AS 195.215.168.45 \r\n" +
	"               Alarms are sent to 195.215.168.45.\r\n" +
	"      Example: !AS 195.215.168.45 4000\r\n" +
	"               Alarms are sent to to port 4000 on 195.215.168.45.\r\n" +
	"      Example: !AS 0.0.0.0\r\n" +
	"               Alarm reporting is disabled.\r\n"

func runAS(st Store, params string, has bool) Result {
	prefix, postfix := "", ""
	if has && params != "" {
		prefix, postfix = "\r\nOK", "\r\n"
		f := strings.Split(params, " ")
		ip := ParseIP(f[0])
		st.Set("alarm_server_ip", ip)
		if ip == "0.0.0.0" { // the help text's way of disabling alarms
			st.Set("alarm_server_status", "DISABLED")
		} else {
			st.Set("alarm_server_status", "ENABLED")
		}
		if len(f) > 1 {
			if p := parsePort(f[1]); p != 0 {
				st.Set("alarm_server_port", strconv.Itoa(p))
			}
		}
	}
	out := "DISABLED"
	if st.Get("alarm_server_status") != "DISABLED" {
		out = st.Get("alarm_server_ip") + ":" + st.Get("alarm_server_port")
	}
	return Result{Reply: prefix + "\r\nAlarm server:  " + out + " " + postfix}
}

const helpGC = "!GC: Get Config.\r\n" + "     Returns the module configuration.\r\n"

func runGC(st Store, _ string, _ bool) Result {
	ka := enabled(st.Get("keep_alive_timer"))
	return Result{Reply: "Device Name         : " + st.Get("device_name") + "\r\n" +
		"Use DHCP            : " + st.Get("use_dhcp") + "\r\n" +
		"IP addr.            : " + st.Get("ip_addr") + "\r\n" +
		"IP Subnet           : " + st.Get("ip_subnet") + "\r\n" +
		"Gateway addr.       : " + st.Get("ip_gateway") + "\r\n" +
		"Service server addr.: " + st.Get("kap_a_server_ip") + "\r\n" +
		"Service server hostname.: " + st.Get("kap_a_server_hostname") + "\r\n" +
		"DNS Server No. 1: " + st.Get("nameserver_1") + "\r\n" +
		"DNS Server No. 2: " + st.Get("nameserver_2") + "\r\n" +
		"DNS Server No. 3: " + st.Get("nameserver_3") + "\r\n" +
		"MAC addr. (HEX)     : " + st.Get("mac_address") + "\r\n" +
		"Channel A device meterno.: " + st.Get("channel_a_meternumber") + "\r\n" +
		"Channel B device meterno.: " + st.Get("channel_b_meternumber") + "\r\n" +
		"Keep alive timer (flash setting): " + ka + "\r\n" +
		"Keep alive timer (current setting): " + ka + "\r\n" +
		"Has the module received acknowledge from the server: " + st.Get("kap_ack_server") + "\r\n" +
		"KAP Server port: " + st.Get("kap_a_server_port") + "\r\n" +
		"KAP Local port: " + st.Get("kap_local_port") + "\r\n" +
		"Software watchdog: " + enabled(st.Get("software_watchdog")) + "\r\n"}
}

const helpGV = "!GV: Software version.\r\n" + "     Returns the software revision of the module.\r\n"

func runGV(st Store, _ string, _ bool) Result {
	return Result{Reply: "\r\nSoftware Version: " + st.Get("software_version") + "\r\n"}
}

const helpSA = "!SA: Set KAP Server IP and port (*1).\r\n" +
	"     Used for setting the IP of the Server to receive KAP-pacakeges.\r\n" +
	"     UDP port on server can be provided optionally.\r\n" +
	"      Format:  !SA SrvIP [SrvPort]\r\n" +
	"      Example: !SA 195215168045 \r\n" +
	"               KAP packages are hereafter sent to 195.215.168.45.\r\n" +
	"      Example: !SA 195.215.168.45 \r\n" +
	"               Same result as \"!SA 195215168045\".\r\n" +
	"      Example: !SA 192168001002 61000\r\n" +
	"               KAP packages are hereafter sent to 192.168.1.2:61000\r\n" +
	"               from module port 8000.\r\n" +
	"      Example: !SA 0.0.0.0 \r\n" +
	"               Disables KAP.\r\n"

func runSA(st Store, params string, has bool) Result {
	prefix := "\r\n"
	if has && params != "" {
		prefix = "\r\nOK"
		f := strings.Split(params, " ")
		st.Set("kap_a_server_ip", ParseIP(f[0]))
		st.Set("kap_a_server_hostname", "0 - none")
		if len(f) > 1 {
			if p := parsePort(f[1]); p != 0 {
				st.Set("kap_a_server_port", strconv.Itoa(p))
			}
		}
	}
	return Result{Reply: prefix + "\r\nService server addr.: " + st.Get("kap_a_server_ip") + ":" + st.Get("kap_a_server_port") + "\r\n"}
}

const helpSB = "!SB: Set 2nd KAP Server IP and port.\r\n" +
	"     Used for redundancy with two KAP servers.\r\n" +
	"     When enabled every second KAP is send to the IP defined by !SB.\r\n" +
	"     NB: The KAP interval to each individual server is half of KAPINT\r\n" +
	"         defined by !SK.\r\n" +
	"     NB: !SA must be enabled (not 0.0.0.0) \r\n" +
	"      Format:  !SB SrvIP [SrvPort]\r\n" +
	"      Example: !SB 195.215.168.45 \r\n" +
	"               KAP packages are hereafter also sent to 195.215.168.45.\r\n" +
	"      Example: !SB 0.0.0.0 \r\n" +
	"               Disabled.\r\n" +
	"      Example: !SB 192.168.1.2 61000\r\n" +
	"               KAP packages are hereafter sent to 192.168.1.2:61000\r\n" +
	"               from module port 8000.\r\n"

func runSB(st Store, params string, has bool) Result {
	ok := ""
	if has && params != "" {
		ok = "OK"
		f := strings.Split(params, " ")
		st.Set("kap_b_server_ip", ParseIP(f[0]))
		if len(f) > 1 {
			if p := parsePort(f[1]); p != 0 {
				st.Set("kap_b_server_port", strconv.Itoa(p))
			}
		}
	}
	out := "\r\n" + ok + "\r\nService server addr.: " + st.Get("kap_a_server_ip") + ":" + st.Get("kap_a_server_port") + " (from DNS)\r\n"
	if st.Get("kap_b_server_ip") == "0.0.0.0" {
		return Result{Reply: out + "No redundancy."}
	}
	return Result{Reply: out + "and fallback KAP to:  " + st.Get("kap_b_server_ip") + ":" + st.Get("kap_b_server_port") + "\r\n"}
}

const helpSC = "!SC: Set Config (*1).\r\n" +
	"     Configures the module.\r\n" +
	"      Format:  !SC DHCP IP SUB GW DNS1 DNS2 DNS3 SRV_IP DEVICENAME SRV_DNS\r\n" +
	"               DHCP        1 for DHCP, 0 for static IP.\r\n" +
	"               IP..        Static IP settings.\r\n" +
	"               SRV_IP      IP of remote server (Only if SRV_DNS is 0).\r\n" +
	"               DEVICENAME  User label for for individual naming.\r\n" +
	"               SRV_DNS     DNS name of remote server (0 to disable DNS lookup)\r\n"

// maxDeviceName is the longest device name the module keeps.
const maxDeviceName = 20

func runSC(st Store, params string, has bool) Result {
	if f := strings.Split(params, " "); has && len(f) >= 10 {
		if f[0] == "1" {
			st.Set("use_dhcp", "YES")
		} else {
			st.Set("use_dhcp", "NO")
			st.Set("ip_addr", ParseIP(f[1]))
			st.Set("ip_subnet", ParseIP(f[2]))
			st.Set("ip_gateway", ParseIP(f[3]))
		}
		for i := range 3 {
			st.Set("nameserver_"+strconv.Itoa(i+1), ParseIP(f[4+i]))
		}
		st.Set("kap_a_server_ip", ParseIP(f[7]))
		if f[9] == "0" {
			st.Set("kap_a_server_hostname", "0 - none")
		} else {
			st.Set("kap_a_server_hostname", prefix(f[9], 255))
		}
		st.Set("device_name", prefix(f[8], maxDeviceName))
	}
	// The module restarts at once, without a reply.
	return Result{Close: true, Reboot: true}
}

const helpSD = "!SD: Set device name (*1).\r\n" + "     Option for individual naming of the module (0-20 chars).\r\n"

func runSD(st Store, params string, _ bool) Result {
	out := "\r\nOK"
	if len(params) > maxDeviceName {
		params, out = params[:maxDeviceName], ""
	}
	st.Set("device_name", params)
	return Result{Reply: out, Reboot: true}
}

const helpSH = "!SH: Set KAP Server lookup (DNS or DHCP)\r\n" +
	"     Used for setting the DNS name of the Server to receive KAP-pacakeges.\r\n" +
	"     Using the keyword \"DHCP_OPTION:xxx\" makes the module request the IP using DHCP option xxx.\r\n" +
	"     The settings are first activated when the module is reset (using !RR).\r\n" +
	"      Example: !SH 0 \r\n" +
	"               Lookup Disabled.\r\n" +
	"               The module will send KAP to the IP listed by !SA. \r\n" +
	"      Example: !SH hosting.kamstrup_meter.dk \r\n" +
	"               Use DNS lookup.\r\n" +
	"               The module will send KAP to the IP listed by !SA until it resolves the DNS,\r\n" +
	"               hereafter the KAP will be sent to hosting.kamstrup_meter.dk\r\n" +
	"      Example: !SH DHCP_OPTION:129\r\n" +
	"               Use DHCP Option.\r\n" +
	"               The module will send KAP to the IP provided by DHCP (in this case option 129).\r\n" +
	"               The module uses the IP provided by !SA if the DHCP offer dos not include option xxx data.\r\n"

func runSH(st Store, params string, _ bool) Result {
	out := "\r\n"
	switch {
	case len(params) == 1: // any single character disables the lookup, as on the module
		st.Set("kap_server_lookup", "0 - none")
		out = "\r\nOK" + out
	case len(params) > 1:
		st.Set("kap_server_lookup", prefix(params, 255))
		out = "\r\nOK" + out
	}
	return Result{Reply: out + "Service server hostname.: " + st.Get("kap_server_lookup") + "\r\n"}
}

const helpSI = "!SI: Set IP (enter either valid IP or 0 to force DHCP)(*1).\r\n" +
	"     Used for changing the module IP.\r\n" +
	"     (Use !SC if you need to change subnet/Gateway too).\r\n" +
	"     Entering a '0' will enable DHCP.\r\n" +
	"      Format:  !SI IP\r\n" +
	"      Example: !SI 0\r\n" +
	"               The module will reboot and acuire the IP settings using DHCP.\r\n" +
	"      Example: !SI 192168001200\r\n" +
	"               The module will reboot using static IP addr 192.168.1.200.\r\n" +
	"               (SUB, GW and DNS unchanged)\r\n" +
	"      Example: !SI 192.168.1.200\r\n" +
	"               Same as !SI 192168001200.\r\n"

func runSI(st Store, params string, has bool) Result {
	var r Result
	if has && params != "" {
		if ip := ParseIP(params); ip == "0.0.0.0" {
			if st.Get("use_dhcp") == "NO" {
				st.Set("use_dhcp", "YES")
				st.Set("ip_addr", st.Get("ip_addr_dhcp"))
				st.Set("ip_gateway", st.Get("ip_gateway_dhcp"))
				st.Set("ip_subnet", st.Get("ip_subnet_dhcp"))
				r.Reboot = true
			}
		} else {
			st.Set("use_dhcp", "NO")
			st.Set("ip_addr", ip)
			r.Reboot = true
		}
	}
	r.Reply = "\r\nUse DHCP            : " + st.Get("use_dhcp") + "\r\n\r\nIP addr.            : " + st.Get("ip_addr") + "\r\n"
	return r
}

const helpSK = "!SK: Set KAP watchdog timeout(WDT).\r\n" +
	"     Used for setting KeepAlive watchdog timing.\r\n" +
	"      Format:  !SK [WDT] [MISSING] [KAPINT]\r\n" +
	"      Example: !SK\r\n" +
	"      Example: !SK 3600\r\n" +
	"      Example: !SK 3600 60 10\r\n" +
	"               WDT     The module reboots after WDT?KAPINT seconds\r\n" +
	"                       without an ACK from the server.\r\n" +
	"                       0 = disable WDT.\r\n" +
	"               MISSING After MISSING?KAPINT seconds without an ACK,\r\n" +
	"                       the Err LED starts blinking.\r\n" +
	"                       (Used for indication of missing link to the server)\r\n" +
	"               KAPINT  Interval in seconds for how often KeepAlivePackages\r\n" +
	"                       are send to the KAP server.\r\n" +
	"     The WDT and MISSING timeout counts are both reset by an ACK from the server.                       \r\n"

func runSK(st Store, params string, has bool) Result {
	out := "\r\n"
	if has {
		f := strings.Split(params, " ")
		st.Set("software_watchdog", parseUint(f[0], 5, 4294967295))
		if len(f) > 1 {
			st.Set("kap_missing_warning", parseUint(f[1], 0, 4294967295))
		}
		if len(f) > 2 {
			st.Set("keep_alive_timer", parseUint(f[2], 0, 4294967295))
		}
		out = "\r\nOK" + out
	}
	return Result{Reply: out + "Software watchdog: " + enabled(st.Get("software_watchdog")) + "\r\n" +
		"KAP Missing warning: " + enabled(st.Get("kap_missing_warning")) + "\r\n" +
		"Keep alive timer (flash setting): " + enabled(st.Get("keep_alive_timer")) + "\r\n"}
}

const helpSN = "!SN: Set IP for DNS Name servers to use.\r\n" +
	"      Format:  !SN DNS1 DNS2 DNS3\r\n" +
	"      Example: !SN 192168001200 192168001201 000000000000\r\n" +
	"      Example: !SN 172.16.0.83 172.16.0.84 0.0.0.0\r\n"

func runSN(st Store, params string, has bool) Result {
	f := strings.Split(params, " ")
	if !has || len(f) != 3 {
		return Result{Reply: invalidParam}
	}
	for i, s := range f {
		st.Set("nameserver_"+strconv.Itoa(i+1), ParseIP(s))
	}
	return Result{Reply: "\r\nOK"}
}

const helpSP = "!SP: Set IP Ports\r\n" +
	"      Format:  !SP [KAP CHA CHB CFG]\r\n" +
	"      Example: !SP 333\r\n" +
	"               KAP packages are hereafter sent to port 333 on the server.\r\n" +
	"      Example: !SP 50 1025 1026 50100\r\n" +
	"               KAP packages are sent to port 50.\r\n" +
	"               Direct connections to UART channel A is on port 1025, B on 1026.\r\n" +
	"               Config connection on port 50100.\r\n" +
	"               (default values)\r\n" +
	"      Example: !SP 0 0 80\r\n" +
	"               UART channel B is on port 80 (KAP and ChA is ingored - unchanged).\r\n"

func runSP(st Store, params string, has bool) Result {
	ok := ""
	if has && params != "" {
		ok = "OK"
		f := strings.Split(params, " ")
		for i, key := range []string{"kap_a_server_port", "channel_a_port", "channel_b_port"} {
			if i < len(f) {
				if p := parsePort(f[i]); p != 0 {
					st.Set(key, strconv.Itoa(p))
				}
			}
		}
	}
	return Result{Reply: "\r\n" + ok + "\r\nKAP on server: " + st.Get("kap_a_server_port") + "\r\n" +
		"ChA on module: " + st.Get("channel_a_port") + "\r\n" +
		"ChB on module: " + st.Get("channel_b_port") + "\r\n" +
		"Cfg on module: " + strconv.Itoa(Port) + "\r\n"}
}

const helpSS = "!SS: Set Serial Settings.\r\n" +
	"     Used for setting the serial interface for channel A or B.\r\n" +
	"      Format:  !SS [Channel Baud,DataBits,Parity,StopBits[,Ctrl]]\r\n" +
	"      Example: !SS A Auto\r\n" +
	"      Example: !SS A 9600,8,N,2\r\n" +
	"      Example: !SS B 115200,8,E,1\r\n" +
	"      Example: !SS B 115200,8,E,1,I\r\n" +
	"      Example: !SS B 115200,8,E,1,L\r\n" +
	"     The ctrl flag can be 'C'(check), 'I' (ignore framing errors) or 'L' (Link, ChB only).\r\n" +
	"     Chanel A supports auto mode (Also enables load profile logger in old E-Meters).\r\n"

func runSS(st Store, params string, has bool) Result {
	if !has || params == "" {
		return Result{Reply: "\r\nUART A setup : " + st.Get("serial_settings_a") + "\r\nUART B setup : " + st.Get("serial_settings_b") + "\r\n"}
	}
	f := strings.Split(params, " ")
	if len(f) != 2 {
		return Result{Reply: invalidData}
	}
	switch f[0] {
	case "A":
		st.Set("serial_settings_a", prefix(f[1], 64))
	case "B":
		st.Set("serial_settings_b", prefix(f[1], 64))
	default:
		return Result{Reply: invalidData}
	}
	return Result{Reply: "\r\nOK\r\n"}
}

const helpRC = "!RC: Request connect\r\n" +
	"     Makes the module crate a ChA or ChB socket to a remote server.\r\n" +
	"      Format:  !RC Action [IP [Port]]\r\n" +
	"      Example: !RC A 195.215.168.45 200\r\n" +
	"      Example: !RC B 195.215.168.45 201\r\n" +
	"      Example: !RC D\r\n" +
	"               Disconnects both A and B if open.\r\n" +
	"      Example: !RC\r\n" +
	"               Status only.\r\n"

func runRC(st Store, params string, has bool) Result {
	const status = "Status: 0100\r\n"
	if !has || params == "" {
		return Result{Reply: "\r\n" + status}
	}
	f := strings.Split(params, " ")
	switch {
	case len(f) == 1 && f[0] == "D":
	case len(f) == 2 && f[0] == "A":
		st.Set("channel_a_connect_socket", prefix(f[1], 64))
	case len(f) == 2 && f[0] == "B":
		st.Set("channel_b_connect_socket", prefix(f[1], 64))
	default:
		return Result{Reply: invalidParam}
	}
	return Result{Reply: "\r\nOK\r\n" + status}
}

const helpRR = "!RR: Request restart (*1).\r\n"

func runRR(Store, string, bool) Result { return Result{Close: true, Reboot: true} }

const helpWM = "!WM: Wink module.\r\n" +
	"     Causes the WINK LED on the module to blink for physical identification.\r\n"

func runWM(Store, string, bool) Result { return Result{Reply: "\r\n\r\nOK\r\n"} }
