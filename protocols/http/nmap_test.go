package http

import (
	"math/rand/v2"
	"net/netip"
	"regexp"
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

// TestNmapS71200 runs nmap -sV against the S7-1200 persona's web server: its "/" answer,
// in the device's header order and spelling, is nmap's "Siemens Simatic S7-1200 PLC
// httpd".
func TestNmapS71200(t *testing.T) {
	protocoltest.NeedTool(t, "nmap")
	protocoltest.NeedRoot(t)
	ip := netip.AddrFrom4([4]byte{127, 83, 80, byte(1 + rand.IntN(254))})
	startProfile(t, protocoltest.Profile(t, "s7-1200"), netip.AddrPortFrom(ip, Port).String())
	out, err := protocoltest.Run(t, 2*time.Minute, "nmap", "-Pn", "-n", "-sT", "-sV", "-p", "80", ip.String())
	if err != nil {
		t.Fatalf("nmap: %v\n%s", err, out)
	}
	t.Logf("nmap -sV:\n%s", out)
	if !regexp.MustCompile(`80/tcp\s+open\s+http\s+Siemens Simatic S7-1200 PLC httpd`).MatchString(out) {
		t.Errorf("nmap -sV does not name the S7-1200's web server:\n%s", out)
	}
}
