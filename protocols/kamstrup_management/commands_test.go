package kamstrupmgmt

import (
	"strings"
	"testing"
)

// gcReply is !GC's reply with the template's values (Conpot's test data), for mac.
func gcReply(mac string) string {
	return "Device Name         : \r\n" +
		"Use DHCP            : YES\r\n" +
		"IP addr.            : 192.168.1.210\r\n" +
		"IP Subnet           : 255.255.255.0\r\n" +
		"Gateway addr.       : 192.168.1.1\r\n" +
		"Service server addr.: 202.202.202.1\r\n" +
		"Service server hostname.: kapserver.evilpowerprovider.org\r\n" +
		"DNS Server No. 1: 0.0.0.0\r\n" +
		"DNS Server No. 2: 0.0.0.0\r\n" +
		"DNS Server No. 3: 0.0.0.0\r\n" +
		"MAC addr. (HEX)     : " + mac + "\r\n" +
		"Channel A device meterno.: A1 06 A1 02 B7 34 12 00 00 03\r\n" +
		"Channel B device meterno.: A1 06 A1 02 B7 34 12 00 00 03\r\n" +
		"Keep alive timer (flash setting): ENABLED 10\r\n" +
		"Keep alive timer (current setting): ENABLED 10\r\n" +
		"Has the module received acknowledge from the server: NO\r\n" +
		"KAP Server port: 50\r\n" +
		"KAP Local port: 800\r\n" +
		"Software watchdog: ENABLED 3600\r\n"
}

const acList = "\r\nDISABLED \r\n [1] 0.0.0.0\r\n [2] 0.0.0.0\r\n [3] 0.0.0.0\r\n [4] 0.0.0.0\r\n [5] 0.0.0.0\r\n"

// TestConpotExchanges are Conpot's test_kamstrup_management cases, each on a fresh
// databus of the kamstrup_382 template: the command's help, then the command.
func TestConpotExchanges(t *testing.T) {
	for _, tc := range []struct {
		help, cmd, want string
	}{
		{helpAC, "!AC 0 2 192.168.1.211", "\r\nOK\r\n\r\nDISABLED \r\n [1] 0.0.0.0\r\n [2] 192.168.1.211\r\n [3] 0.0.0.0\r\n [4] 0.0.0.0\r\n [5] 0.0.0.0\r\n"},
		{helpAS, "!AC 192.168.1.4 4000", "\r\nOK\r\n" + acList}, // Conpot's alarm-server test sends !AC
		{helpGC, "!GC", ""},
		{helpGV, "!GV", "\r\nSoftware Version: 5.5 (E5)\r\n"},
		{helpSA, "!SA 192168001002 61000", "\r\nOK\r\nService server addr.: 192.168.1.2:61000\r\n"},
		{helpSB, "!SB 192.168.1.2 61000", "\r\nOK\r\nService server addr.: 202.202.202.1:50 (from DNS)\r\nand fallback KAP to:  192.168.1.2:61000\r\n"},
		{helpSD, "!SD", "\r\nOK"},
		{helpSH, "!SH hosting.kamstrup_meter.dk", "\r\nOK\r\nService server hostname.: hosting.kamstrup_meter.dk\r\n"},
		{helpSI, "!SI 192168001200", "\r\nUse DHCP            : NO\r\n\r\nIP addr.            : 192.168.1.200\r\n"},
		{helpSK, "!SK 3600 60 10", "\r\nOK\r\nSoftware watchdog: ENABLED 3600\r\nKAP Missing warning: ENABLED 60\r\nKeep alive timer (flash setting): ENABLED 10\r\n"},
		{helpSN, "!SN 192168001200 192168001201 000000000000", "\r\nOK"},
		{helpSP, "!SP 50 1025 1026 50100", "\r\nOK\r\nKAP on server: 50\r\nChA on module: 1025\r\nChB on module: 1026\r\nCfg on module: 50100\r\n"},
		{helpSS, "!SS B 115200,8,E,1,L", "\r\nOK\r\n"},
		{helpRC, "!RC A 195.215.168.45", "\r\nOK\r\nStatus: 0100\r\n"},
	} {
		st, _ := freshStore(t)
		word := strings.Fields(tc.help)[0]
		if r := Respond(st, "H "+word[:3]+"\r\n"); r.Reply != tc.help {
			t.Errorf("H %s = %q", word[:3], r.Reply)
		}
		want := tc.want
		if tc.cmd == "!GC" {
			want = gcReply(st.Get("mac_address"))
		}
		if r := Respond(st, tc.cmd+"\r\n"); r.Reply != want || r.Close {
			t.Errorf("%s = %q (close %v)\nwant %q", tc.cmd, r.Reply, r.Close, want)
		}
	}
}

func TestHelp(t *testing.T) {
	st, _ := freshStore(t)
	for _, line := range []string{"H", "h", "  H  ", "HELP"[:1], "HX"} {
		if r := Respond(st, line); r.Reply != menu {
			t.Errorf("%q = %q", line, r.Reply)
		}
	}
	if !strings.HasPrefix(menu, "=====") || !strings.HasSuffix(menu, "Kamstrup (R)\r\n") || strings.Count(menu, "\r\n") != 26 {
		t.Errorf("menu shape: %q", menu)
	}
	for _, c := range Commands {
		if r := Respond(st, "H "+c); r.Reply != commands[c].help || !strings.HasPrefix(r.Reply, c+":") {
			t.Errorf("H %s = %q", c, r.Reply)
		}
	}
	for _, p := range []string{"H !XX", "H !sc", "H SC", "H !"} {
		if r := Respond(st, p); r.Reply != invalidParam {
			t.Errorf("%q = %q", p, r.Reply)
		}
	}
}

func TestDispatcher(t *testing.T) {
	st, _ := freshStore(t)
	for _, tc := range []struct {
		line, reply string
		close       bool
	}{
		{"", "", false},
		{"   \t ", "", false},
		{"!XX", notFound, false},
		{"!GVV", notFound, false},
		{"HELLO", notFound, false},
		{"GET / HTTP/1.0", notFound, false},
		{"Q", "", true},
		{"quit", notFound, false}, // longer than three characters
		{"q", "", true},
		{"!RR", "", true},
		{"!gv", "\r\nSoftware Version: 5.5 (E5)\r\n", false},
		{"!WM", "\r\n\r\nOK\r\n", false},
		{"!AS", "\r\nAlarm server:  DISABLED ", false},
		{"!SS", "\r\nUART A setup : Auto\r\nUART B setup : 115200,8,E,1\r\n", false},
		{"!SS C 9600", invalidData, false},
		{"!SS A", invalidData, false},
		{"!RC", "\r\nStatus: 0100\r\n", false},
		{"!RC D", "\r\nOK\r\nStatus: 0100\r\n", false},
		{"!RC A 1.2.3.4 200", invalidParam, false},
		{"!SN 1.2.3.4", invalidParam, false},
		{"!SN", invalidParam, false},
		{"!SB", "\r\n\r\nService server addr.: 202.202.202.1:50 (from DNS)\r\nNo redundancy.", false},
		{"!SK", "\r\nSoftware watchdog: ENABLED 3600\r\nKAP Missing warning: ENABLED 60\r\nKeep alive timer (flash setting): ENABLED 10\r\n", false},
		{"!SP", "\r\n\r\nKAP on server: 50\r\nChA on module: 1025\r\nChB on module: 1027\r\nCfg on module: 50100\r\n", false},
		{"!SH", "\r\nService server hostname.: 0 - none\r\n", false},
	} {
		r := Respond(st, tc.line)
		if r.Reply != tc.reply || r.Close != tc.close {
			t.Errorf("%q = %q close %v; want %q close %v", tc.line, r.Reply, r.Close, tc.reply, tc.close)
		}
	}
}

// TestSettingsPersist: what a command sets is in the databus, and other commands show it.
func TestSettingsPersist(t *testing.T) {
	st, h := freshStore(t)
	steps := []struct{ line, key, want string }{
		{"!AC 1", "access_control_status", "ENABLED"},
		{"!AC 0 5 10.0.0.1", "access_control_5", "10.0.0.1"},
		{"!AC 0 9 10.0.0.1", "access_control_5", "10.0.0.1"}, // no sixth entry
		{"!AS 195.215.168.45 4001", "alarm_server_port", "4001"},
		{"!SD substation-7", "device_name", "substation-7"},
		{"!SD abcdefghijklmnopqrstuvwxyz", "device_name", "abcdefghijklmnopqrst"},
		{"!SK 0 0 30", "software_watchdog", "0"},
		{"!SK 4", "software_watchdog", "0"}, // below the minimum
		{"!SS A 9600,8,N,2", "serial_settings_a", "9600,8,N,2"},
		{"!SI 0", "use_dhcp", "YES"},
		{"!SI 10.1.2.3", "ip_addr", "10.1.2.3"},
		{"!SI 0", "ip_addr", "192.168.0.1"},
		{"!SH x", "kap_server_lookup", "0 - none"},
		{"!RC B 10.9.9.9", "channel_b_connect_socket", "10.9.9.9"},
		{"!SC 0 10.0.0.5 255.255.0.0 10.0.0.1 1.1.1.1 8.8.8.8 0.0.0.0 10.0.0.9 meter-42 0", "ip_subnet", "255.255.0.0"},
		{"!SC 1 0 0 0 0 0 0 10.0.0.9 meter-43 kap.example.net", "kap_a_server_hostname", "kap.example.net"},
	}
	for _, s := range steps {
		Respond(st, s.line)
		if got, _ := h.Databus.GetString(s.key); got != s.want {
			t.Errorf("after %q: %s = %q, want %q", s.line, s.key, got, s.want)
		}
	}
	if r := Respond(st, "!AS"); r.Reply != "\r\nAlarm server:  195.215.168.45:4001 " {
		t.Errorf("!AS = %q", r.Reply)
	}
	if r := Respond(st, "!AS 0.0.0.0"); r.Reply != "\r\nOK\r\nAlarm server:  DISABLED \r\n" {
		t.Errorf("!AS 0.0.0.0 = %q", r.Reply)
	}
	if r := Respond(st, "!GC"); !strings.Contains(r.Reply, "Device Name         : meter-43\r\n") ||
		!strings.Contains(r.Reply, "Keep alive timer (flash setting): ENABLED 30\r\n") ||
		!strings.Contains(r.Reply, "Software watchdog: DISABLED 0\r\n") {
		t.Errorf("!GC after the changes: %q", r.Reply)
	}
	for _, line := range []string{"!SD x", "!SC", "!RR", "!SI 1.2.3.4"} {
		if r := Respond(st, line); !r.Reboot {
			t.Errorf("%s does not restart the module", line)
		}
	}
	if r := Respond(st, "!GV"); r.Reboot {
		t.Error("!GV restarts the module")
	}
}

func TestParseIP(t *testing.T) {
	for in, want := range map[string]string{
		"192.168.1.2": "192.168.1.2", "192168001002": "192.168.1.2", "000000000000": "0.0.0.0",
		"192.168.001.002": "192.168.1.2", "1.2.3": "0.0.0.0", "1.2.3.256": "0.0.0.0", "abc": "0.0.0.0",
		"": "0.0.0.0", "1.2.3.4.5": "0.0.0.0", "19216800100x": "0.0.0.0", "1.2.3.-4": "0.0.0.0",
	} {
		if got := ParseIP(in); got != want {
			t.Errorf("ParseIP(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHostMAC(t *testing.T) {
	a, b := HostMAC("00:13:EA:00:00:00", 1), HostMAC("00:13:EA:00:00:00", 2)
	if a == b || !strings.HasPrefix(a, "00:13:EA:") || a == "00:13:EA:00:00:00" {
		t.Fatalf("%s %s", a, b)
	}
	if HostMAC("00:13:EA:00:00:00", 1) != a {
		t.Fatal("not stable")
	}
	if got := HostMAC("00:13:EA:12:34:56", 1); got != "00:13:EA:12:34:56" {
		t.Fatalf("a set MAC changed: %s", got)
	}
	if got := HostMAC("not a mac", 1); got != "not a mac" {
		t.Fatal(got)
	}
}
