package http

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// TestNmap runs nmap's http-title, http-headers and http-methods scripts against the
// default profile on the standard port (their port rule wants 80).
func TestNmap(t *testing.T) {
	protocoltest.NeedTool(t, "nmap")
	protocoltest.NeedRoot(t)
	ip := protocoltest.LoopbackAddr()
	srv, _ := startProfile(t, protocoltest.Profile(t, protocoltest.Station), netip.AddrPortFrom(ip, Port).String())
	out, err := protocoltest.Run(t, 60*time.Second, "nmap", "-Pn", "-n", "-sT", "-p", "80",
		"--script", "http-title,http-headers,http-methods", ip.String())
	if err != nil {
		t.Fatalf("nmap: %v", err)
	}
	name, _ := srv.Host.Databus.GetString("sysName")
	for _, want := range []string{
		"80/tcp open  http",
		"| http-title: " + name + " - Start page",
		"Requested resource was /Portal0000.htm",
		"|   Content-Type: text/html",
		"|   Cache-Control: no-cache",
		"|   Pragma: no-cache",
		"Supported Methods: GET HEAD POST OPTIONS\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("nmap output lacks %q", want)
		}
	}
	for _, bad := range []string{"Server:", "TRACE", "1993", "Technodrome"} {
		if strings.Contains(out, bad) {
			t.Errorf("nmap output shows %q", bad)
		}
	}
}
