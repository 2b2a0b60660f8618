package ipmi

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// ipmitool runs ipmitool -I lanplus against srv with cipher suite cs (-1: ipmitool picks)
// as Administrator.
func ipmitool(t *testing.T, srv *server, cs int, args ...string) (string, error) {
	t.Helper()
	return ipmitoolAs(t, srv, cs, "Administrator", "Password", args...)
}

func ipmitoolAs(t *testing.T, srv *server, cs int, user, pass string, args ...string) (string, error) {
	t.Helper()
	bin := protocoltest.NeedTool(t, "ipmitool")
	a := []string{"-I", "lanplus", "-H", srv.Addr.Addr().String(), "-p", strconv.Itoa(int(srv.Addr.Port())),
		"-U", user, "-P", pass, "-R", "2", "-N", "1"}
	if cs >= 0 {
		a = append(a, "-C", strconv.Itoa(cs))
	}
	return protocoltest.Run(t, 60*time.Second, bin, append(a, args...)...)
}

// mustIpmitool runs ipmitool and fails the test unless it succeeds and prints every line
// of want (regular expressions, each matched against a whole line).
func mustIpmitool(t *testing.T, srv *server, cs int, want []string, args ...string) string {
	t.Helper()
	out, err := ipmitool(t, srv, cs, args...)
	if err != nil {
		t.Fatalf("ipmitool %s: %v", strings.Join(args, " "), err)
	}
	for _, w := range want {
		if !regexp.MustCompile(`(?m)^` + w + `$`).MatchString(out) {
			t.Errorf("ipmitool %s: no line matching %q", strings.Join(args, " "), w)
		}
	}
	return out
}

var chassisOn = []string{
	`System Power         : on`, `Power Overload       : false`, `Power Interlock      : inactive`,
	`Main Power Fault     : false`, `Power Control Fault  : false`, `Power Restore Policy : previous`,
	`Chassis Intrusion    : inactive`, `Front-Panel Lockout  : inactive`, `Drive Fault          : false`,
	`Cooling/Fan Fault    : false`,
}

func TestIpmitoolLanplus(t *testing.T) {
	for _, cs := range []int{3, 17} {
		t.Run(fmt.Sprintf("C%d", cs), func(t *testing.T) {
			srv, svc := startBMC(t, nil)
			hs := svc.host(srv.Host)
			mustIpmitool(t, srv, cs, chassisOn, "chassis", "status")
			mustIpmitool(t, srv, cs, []string{`Chassis Power Control: Down/Off`}, "power", "off")
			mustIpmitool(t, srv, cs, []string{`Chassis Power is off`}, "power", "status")
			mustIpmitool(t, srv, cs, []string{`System Power         : off`, `Last Power Event     : command`}, "chassis", "status")
			out, _ := ipmitool(t, srv, cs, "power", "cycle")
			if !strings.Contains(out, "Command not supported in present state") {
				t.Error("power cycle while off did not fail as a BMC's does")
			}
			mustIpmitool(t, srv, cs, []string{`Chassis Power Control: Up/On`}, "power", "on")
			mustIpmitool(t, srv, cs, []string{`Chassis Power Control: Cycle`}, "power", "cycle")
			mustIpmitool(t, srv, cs, []string{`Chassis Power is on`}, "power", "status")
			mustIpmitool(t, srv, cs, []string{
				`Device ID                 : 32`, `Firmware Revision         : 1.74`, `IPMI Version              : 2.0`,
				`Manufacturer ID           : 10876`, `Manufacturer Name         : Super Micro Computer Inc.`,
				`Product ID                : 2327 \(0x0917\)`, `Product Name              : X11DPi-N\(T\)`, `Provides Device SDRs      : no`,
			}, "mc", "info")
			mustIpmitool(t, srv, cs, []string{
				`ID  Name\s+Callin  Link Auth\s+IPMI Msg   Channel Priv Limit`,
				`1   Administrator    true    true       true       ADMINISTRATOR`,
				`2   Operator         true    false      false      OPERATOR`,
				`3   User1            true    true       true       USER`,
				`4   User2            true    false      false      USER`,
				`5   User3            true    true       true       CALLBACK`,
				`10                   true    false      false      NO ACCESS`,
			}, "user", "list")
			mac := fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", hs.mac[0], hs.mac[1], hs.mac[2], hs.mac[3], hs.mac[4], hs.mac[5])
			mustIpmitool(t, srv, cs, []string{
				`IP Address Source       : Static Address`, `IP Address              : 192.0.2.23`,
				`Subnet Mask             : 255.255.255.0`, `MAC Address             : ` + mac,
				`Default Gateway IP      : 192.0.2.1`, `802.1q VLAN ID          : Disabled`,
				`RMCP\+ Cipher Suites     : 1,2,3,15,16,17`,
			}, "lan", "print", "1")
			out = mustIpmitool(t, srv, cs, []string{
				`CPU1 Temp        \| \d+ degrees C      \| ok`, `FAN1             \| \d+ RPM \s+\| ok`,
				`12V              \| 1\d(\.\d+)? Volts \s+\| ok`, `VBAT             \| \d(\.\d+)? Volts \s+\| ok`,
			}, "sdr", "list")
			if n := strings.Count(out, "| ok"); n != len(hs.sensors) {
				t.Errorf("sdr list shows %d sensors ok, want %d", n, len(hs.sensors))
			}
			out = mustIpmitool(t, srv, cs, []string{
				`\s+1 \| \d\d/\d\d/\d\d \| \d\d:\d\d:\d\d UTC \| Event Logging Disabled \| Log area reset/cleared \(\) \| Asserted`,
				fmt.Sprintf(`\s+%d \| .* \| System ACPI Power State #0x99 \| S0/G0: working \(\) \| Asserted`, len(hs.sel)),
			}, "sel", "list")
			if n := strings.Count(out, "\n"); n != len(hs.sel) {
				t.Errorf("sel list: %d lines, want %d", n, len(hs.sel))
			}
			mustIpmitool(t, srv, cs, []string{
				`ID   IANA    Auth Alg        Integrity Alg   Confidentiality Alg`,
				`3    N/A     hmac_sha1       hmac_sha1_96    aes_cbc_128\s*`,
				`17   N/A     hmac_sha256     sha256_128      aes_cbc_128\s*`,
			}, "channel", "getciphers", "ipmi")
			mustIpmitool(t, srv, cs, []string{`GUID Encoding : IPMI`, `GUID Version  : Time-based`}, "mc", "guid")
			ok := 0
			for _, e := range srv.Events.OfType("ipmi.auth") {
				if fieldOf(e, "password_ok") == true && fieldOf(e, "user") == "Administrator" && fieldOf(e, "cipher_suite") == byte(cs) {
					ok++
				}
			}
			if ok != 15 {
				t.Errorf("%d successful auth events, want one per ipmitool run (15)", ok)
			}
			if n := len(srv.Events.OfType("ipmi.session_close")); n != 15 {
				t.Errorf("%d session_close events, want 15", n)
			}
		})
	}
}

func TestIpmitoolWrongCredentials(t *testing.T) {
	srv, _ := startBMC(t, nil)
	for _, tc := range []struct {
		user, pass, result string
		known              bool
	}{
		{"Administrator", "admin", "abandoned after RAKP 2", true},
		{"ADMIN", "ADMIN", "unauthorized name", false},
		{"Operator", "OpPassword", "unauthorized name", true}, // inactive
	} {
		out, err := ipmitoolAs(t, srv, 17, tc.user, tc.pass, "chassis", "status")
		if err == nil || !strings.Contains(out, "Error: Unable to establish IPMI v2 / RMCP+ session") {
			t.Errorf("%s/%s: ipmitool did not fail as against a real BMC: %v", tc.user, tc.pass, err)
		}
	}
	srv.closeFlows()
	auth := srv.Events.OfType("ipmi.auth")
	if len(auth) != 3 {
		t.Fatalf("%d auth events, want 3", len(auth))
	}
	want := map[string]string{"Administrator": "abandoned after RAKP 2", "ADMIN": "unauthorized name", "Operator": "unauthorized name"}
	for _, e := range auth {
		u, _ := fieldOf(e, "user").(string)
		if fieldOf(e, "password_ok") != false || fieldOf(e, "result") != want[u] {
			t.Errorf("auth event %+v", e.Fields)
		}
	}
	// A USER-level account gets in at its own level and is refused administrator.
	out, err := ipmitoolAs(t, srv, 3, "User1", "U1Password", "-L", "USER", "chassis", "status")
	if err != nil || !strings.Contains(out, "System Power         : on") {
		t.Errorf("User1 at USER level: %v", err)
	}
	out, err = ipmitoolAs(t, srv, 3, "User1", "U1Password", "chassis", "power", "off")
	if err == nil || !strings.Contains(out, "Set Session Privilege Level to ADMINISTRATOR failed") {
		t.Errorf("User1 at ADMINISTRATOR level: %v", err)
	}
}

// TestIpmitoolMD5Suites: the RMCP+ HMAC-MD5 suites an older BMC offers, when the profile
// enables them.
func TestIpmitoolMD5Suites(t *testing.T) {
	srv, _ := startBMC(t, withSuites("1,2,3,6,7,8,15,16,17"))
	for _, cs := range []int{6, 7, 8} {
		mustIpmitool(t, srv, cs, chassisOn, "chassis", "status")
		if out, err := ipmitoolAs(t, srv, cs, "Administrator", "bad", "chassis", "status"); err == nil ||
			!strings.Contains(out, "Unable to establish IPMI v2 / RMCP+ session") {
			t.Errorf("-C %d with a wrong password: %v", cs, err)
		}
	}
	mustIpmitool(t, srv, -1, []string{`8    N/A     hmac_md5        hmac_md5_128    aes_cbc_128\s*`}, "channel", "getciphers", "ipmi")
}

func TestIpmitoolCipherZero(t *testing.T) {
	srv, _ := startBMC(t, withSuites("0,1,2,3,15,16,17"))
	// Suite 0 takes any password, as on a misconfigured BMC.
	out, err := ipmitoolAs(t, srv, 0, "Administrator", "not-the-password", "chassis", "status")
	if err != nil || !strings.Contains(out, "System Power         : on") {
		t.Fatalf("cipher zero login: %v", err)
	}
	auth := srv.Events.OfType("ipmi.auth")
	if len(auth) != 1 || fieldOf(auth[0], "result") != "session established without a password (cipher suite 0)" {
		t.Fatalf("auth events %+v", auth)
	}
	mustIpmitool(t, srv, 0, []string{`0    N/A     none            none            none\s*`}, "channel", "getciphers", "ipmi")
	// Without suite 0 (the default profile) ipmitool is refused.
	def, _ := startBMC(t, nil)
	out, err = ipmitoolAs(t, def, 0, "Administrator", "Password", "chassis", "status")
	if err == nil || !strings.Contains(out, "invalid authentication algorithm") {
		t.Fatalf("cipher zero on the default profile: %v", err)
	}
}

// TestIpmitoolConcurrent runs ipmitool sessions at once on one host and on two hosts of
// the same profile: each keeps its own keys, and power state stays per host.
func TestIpmitoolConcurrent(t *testing.T) {
	svc, p := testService(t, nil)
	a := serve(t, svc, protocoltest.Host(p, loopback(), 1), loopback().String()+":0")
	b := serve(t, svc, protocoltest.Host(p, loopback(), 2), loopback().String()+":0")
	mustIpmitool(t, a, 17, []string{`Chassis Power Control: Down/Off`}, "power", "off")
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	run := func(srv *server, cs int, want string, args ...string) {
		defer wg.Done()
		for range 3 {
			out, err := ipmitool(t, srv, cs, args...)
			if err != nil || !strings.Contains(out, want) {
				errs <- fmt.Errorf("%s %v on %s: %v\n%s", args, cs, srv.Addr, err, out)
				return
			}
		}
	}
	wg.Add(6)
	go run(a, 3, "System Power         : off", "chassis", "status")
	go run(a, 17, "System Power         : off", "chassis", "status")
	go run(a, 17, "VBAT", "sdr", "list")
	go run(b, 3, "System Power         : on", "chassis", "status")
	go run(b, 17, "System Power         : on", "chassis", "status")
	go run(b, 3, "Log area reset/cleared", "sel", "list")
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestIpmitoolAttackerActions plants an account and a PXE boot as an intruder would, then
// logs in with the new account; the changes stay on that host and show in events.
func TestIpmitoolAttackerActions(t *testing.T) {
	svc, p := testService(t, nil)
	srv := serve(t, svc, protocoltest.Host(p, loopback(), 1), loopback().String()+":0")
	other := serve(t, svc, protocoltest.Host(p, loopback(), 2), loopback().String()+":0")
	mustIpmitool(t, srv, 3, nil, "user", "set", "name", "6", "backdoor")
	mustIpmitool(t, srv, 3, []string{`Set User Password command successful \(user 6\)`}, "user", "set", "password", "6", "s3cret")
	mustIpmitool(t, srv, 3, []string{`Set User Access \(channel 1 id 6\) successful.`},
		"channel", "setaccess", "1", "6", "link=on", "ipmi=on", "callin=on", "privilege=4")
	mustIpmitool(t, srv, 17, []string{`6   backdoor         true    true       true       ADMINISTRATOR`}, "user", "list")
	mustIpmitool(t, srv, 3, []string{`Success`}, "user", "test", "1", "16", "Password")
	out, _ := ipmitool(t, srv, 3, "user", "test", "1", "16", "nope")
	if !strings.Contains(out, "Failure: password incorrect") {
		t.Error("user test with a wrong password did not fail")
	}
	out, _ = ipmitool(t, srv, 3, "user", "set", "name", "1", "x")
	if !strings.Contains(out, "Invalid data field in request") {
		t.Error("renaming a fixed user did not fail")
	}
	mustIpmitool(t, srv, 3, []string{`Set Boot Device to pxe`}, "chassis", "bootdev", "pxe")
	mustIpmitool(t, srv, 3, []string{`\s+- Boot Device Selector : Force PXE`}, "chassis", "bootparam", "get", "5")
	mustIpmitool(t, srv, 3, []string{`user id                       : 1`, `privilege level               : ADMINISTRATOR`,
		`session type                  : IPMIv2/RMCP\+`, `console ip                    : 127.0.0.1`}, "session", "info", "active")
	mustIpmitool(t, srv, 3, []string{`Clearing SEL.  Please allow a few seconds to erase.`}, "sel", "clear")
	out = mustIpmitool(t, srv, 3, []string{`\s+1 \| .* \| Event Logging Disabled \| Log area reset/cleared \(\) \| Asserted`}, "sel", "list")
	if strings.Count(out, "\n") != 1 {
		t.Errorf("the SEL holds more than the clearing entry after sel clear")
	}
	out, err := ipmitoolAs(t, srv, 17, "backdoor", "s3cret", "chassis", "power", "status")
	if err != nil || !strings.Contains(out, "Chassis Power is on") {
		t.Fatalf("login with the planted account: %v", err)
	}
	out, err = ipmitoolAs(t, other, 17, "backdoor", "s3cret", "chassis", "power", "status")
	if err == nil || !strings.Contains(out, "Unable to establish IPMI v2 / RMCP+ session") {
		t.Fatalf("the planted account works on another host: %v", err)
	}
	var names, passwords, boots, clears int
	for _, e := range srv.Events.OfType("ipmi.request") {
		switch fieldOf(e, "kind") {
		case "set_user_name":
			if fieldOf(e, "new_name") == "backdoor" {
				names++
			}
		case "set_user_password":
			if fieldOf(e, "new_password") == "s3cret" {
				passwords++
			}
		case "clear_sel":
			if fieldOf(e, "entries_erased") != nil {
				clears++
			}
		case "set_boot_options":
			if fieldOf(e, "boot_device") == "pxe" {
				boots++
			}
		}
	}
	if names != 1 || passwords != 1 || boots != 1 || clears != 1 {
		t.Errorf("events: %d user names, %d passwords, %d boot devices, %d SEL clears; want one each", names, passwords, boots, clears)
	}
}

// withV15 enables IPMI v1.5 sessions with MD5 and straight-password authentication.
func withV15(s string) string {
	return strings.Replace(s, "<user_list>", "<auth_types>md5,password</auth_types>\n    <user_list>", 1)
}

func ipmitoolLan(t *testing.T, srv *server, user, pass string, args ...string) (string, error) {
	t.Helper()
	bin := protocoltest.NeedTool(t, "ipmitool")
	a := []string{"-I", "lan", "-H", srv.Addr.Addr().String(), "-p", strconv.Itoa(int(srv.Addr.Port())),
		"-U", user, "-P", pass, "-R", "2", "-N", "1"}
	return protocoltest.Run(t, 60*time.Second, bin, append(a, args...)...)
}

func TestIpmitoolLanV15(t *testing.T) {
	srv, _ := startBMC(t, withV15)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"chassis", "status"}, "System Power         : on"},
		{[]string{"-A", "PASSWORD", "mc", "info"}, "IPMI Version              : 2.0"},
		{[]string{"-A", "MD5", "power", "off"}, "Chassis Power Control: Down/Off"},
		{[]string{"session", "info", "active"}, "session type                  : IPMIv1.5"},
		{[]string{"lan", "print", "1"}, "Auth Type Support       : MD5 PASSWORD "},
		{[]string{"user", "list"}, "3   User1            true    true       true       USER"},
		{[]string{"sdr", "list"}, "VBAT "},
	} {
		out, err := ipmitoolLan(t, srv, "Administrator", "Password", tc.args...)
		if err != nil || !strings.Contains(out, tc.want) {
			t.Errorf("ipmitool -I lan %s: %v", strings.Join(tc.args, " "), err)
		}
	}
	// The v1.5 power change is seen over RMCP+.
	mustIpmitool(t, srv, 17, []string{`Chassis Power is off`}, "power", "status")
	out, err := ipmitoolLan(t, srv, "Administrator", "wrong", "chassis", "status")
	if err == nil || !strings.Contains(out, "Activate Session command failed") {
		t.Errorf("wrong password: %v", err)
	}
	out, err = ipmitoolLan(t, srv, "nobody", "x", "chassis", "status")
	if err == nil || !strings.Contains(out, "Invalid user name") {
		t.Errorf("unknown user: %v", err)
	}
	results := map[string]int{}
	for _, e := range srv.Events.OfType("ipmi.auth") {
		results[fmt.Sprint(fieldOf(e, "result"))]++
	}
	if results["session established (IPMI v1.5)"] != 7 || results["wrong password (IPMI v1.5)"] != 1 || results["invalid user name (IPMI v1.5)"] != 1 {
		t.Errorf("auth results %v", results)
	}
	// Without auth_types (the default) v1.5 is off, as on most current BMCs.
	def, _ := startBMC(t, nil)
	if out, err := ipmitoolLan(t, def, "Administrator", "Password", "chassis", "status"); err == nil {
		t.Errorf("ipmitool -I lan got in with v1.5 off:\n%s", out)
	}
}

func TestIpmitoolInventory(t *testing.T) {
	srv, _ := startBMC(t, nil)
	mustIpmitool(t, srv, 17, []string{
		`FRU Device Description : Builtin FRU Device \(ID 0\)`, ` Chassis Type          : Rack Mount Chassis`,
		` Board Mfg             : Supermicro`, ` Board Product         : X11DPi-N`, ` Board Serial          : ZM[0-9A-Z]{8}`,
		` Product Name          : SYS-6019P-MT`, ` Product Serial        : S[0-9A-Z]{9}`,
	}, "fru", "print")
	mustIpmitool(t, srv, 17, []string{`POH Counter  : \d+ days, \d+ hours`}, "chassis", "poh")
	mustIpmitool(t, srv, 17, []string{`CPU1 Temp        \| [0-9.]+ +\| degrees C  \| ok .*`}, "sensor", "list")
	mustIpmitool(t, srv, 17, []string{`System Event Logging                     : enabled`}, "mc", "getenables")
	mustIpmitool(t, srv, 17, []string{`System restart cause: power-up due to restore-previous power policy`}, "chassis", "restart_cause")
	mustIpmitool(t, srv, 17, []string{`Enabled                         : false`, `Payload Port                    : 623`}, "sol", "info")
	if out, _ := ipmitool(t, srv, 17, "sol", "activate"); !strings.Contains(out, "Info: SOL payload disabled") {
		t.Error("sol activate was not refused as on a BMC with SOL off")
	}
	mustIpmitool(t, srv, 17, []string{`Selftest: passed`}, "mc", "selftest")
	mustIpmitool(t, srv, 17, []string{`\s+4 \| .* \| Temperature CPU1 Temp \| Upper Non-critical going high \| Asserted \| Reading 86 > Threshold 85 degrees C`}, "sel", "elist")
}
