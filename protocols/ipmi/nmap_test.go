package ipmi

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// serve623 serves the test profile (edited by edit) on 623/udp of a fresh 127.60/16
// address; binding 623 needs root, as CI has.
func serve623(t *testing.T, edit func(string) string) *server {
	t.Helper()
	protocoltest.NeedRoot(t)
	svc, p := testService(t, edit)
	return serve(t, svc, protocoltest.Host(p, netip.MustParseAddr("192.0.2.5"), 1), loopback().String()+":623")
}

func TestNmapIPMIScripts(t *testing.T) {
	nmap := protocoltest.NeedTool(t, "nmap")
	for _, tc := range []struct {
		name, suites, state, userAuth, level string
		v15                                  bool
	}{
		{"default", "", "State: NOT VULNERABLE", "|   UserAuth: \n", "  Level: 2.0\n", false},
		{"cipher zero enabled", "0,1,2,3,15,16,17", "State: VULNERABLE", "|   UserAuth: \n", "  Level: 2.0\n", false},
		{"v1.5 enabled", "", "State: NOT VULNERABLE", "|   UserAuth: password, md5\n", "  Level: 1.5, 2.0\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			edit := func(s string) string { return s }
			if tc.suites != "" {
				edit = withSuites(tc.suites)
			}
			if tc.v15 {
				edit = withV15
			}
			srv := serve623(t, edit)
			out, err := protocoltest.Run(t, 90*time.Second, nmap, "-Pn", "-n", "-sU", "-p", "623",
				"--script", "ipmi-version,ipmi-cipher-zero", "--script-args", "vulns.showall", srv.Addr.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"623/udp open  asf-rmcp", "| ipmi-version: ", "|     IPMI-2.0",
				"|   PassAuth: auth_msg, auth_user, non_null_user", tc.level, "| ipmi-cipher-zero: ",
				"IPMI 2.0 RAKP Cipher Zero Authentication Bypass", tc.state, tc.userAuth} {
				if !strings.Contains(out, want) {
					t.Errorf("nmap output lacks %q", want)
				}
			}
			if strings.Contains(out, "ERROR") {
				t.Error("an nmap script failed")
			}
		})
	}
}
