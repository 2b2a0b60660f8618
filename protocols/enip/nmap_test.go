package enip

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// TestNmapEnipInfo runs nmap's enip-info script over TCP and over UDP: both print the
// profile's identity with the host's own serial and address.
func TestNmapEnipInfo(t *testing.T) {
	nmap := protocoltest.NeedTool(t, "nmap")
	svc, h, _, _ := serve(t, "default", 21)
	serial := svc.hostDevice(h).serial
	for _, scan := range []string{"-sT", "-sU"} {
		if scan == "-sU" {
			protocoltest.NeedRoot(t)
		}
		out, err := protocoltest.Run(t, 90*time.Second, nmap, "-Pn", "-n", scan, "-p", "44818", "--script", "enip-info", h.Addr.String())
		if err != nil {
			t.Fatalf("nmap %s: %v", scan, err)
		}
		for _, want := range []string{
			"type: Programmable Logic Controller (14)",
			"vendor: Rockwell Automation/Allen-Bradley (1)",
			"productName: 1756-L61/B LOGIX5561",
			fmt.Sprintf("serialNumber: 0x%08x", serial),
			"productCode: 90",
			"revision: 2.10",
			"status: 0x3060",
			"state: 0x03",
			"deviceIp: " + h.Addr.String(),
		} {
			if !strings.Contains(out, want) {
				t.Errorf("nmap %s output lacks %q", scan, want)
			}
		}
	}
}

// TestNmapEnipRevisionPerHost: the CompactLogix persona's CIP revision is the host's drawn
// firmware (databus Revision), the one its sysDescr names; two hosts run different ones.
func TestNmapEnipRevisionPerHost(t *testing.T) {
	nmap := protocoltest.NeedTool(t, "nmap")
	p := protocoltest.Profile(t, "compactlogix")
	s, err := protocol{}.Configure(p.Sections[Name], nil)
	if err != nil {
		t.Fatal(err)
	}
	svc := s.(*service)
	// Two hosts whose seeds draw different revisions.
	var hosts []*protocols.Host
	seen := map[string]bool{}
	for seed := uint64(1); len(hosts) < 2 && seed < 1000; seed++ {
		h := protocoltest.Host(p, netip.AddrFrom4([4]byte{127, 83, 44, byte(len(hosts) + 1)}), seed)
		rev, err := h.Databus.GetString("Revision")
		if err != nil {
			t.Fatal(err)
		}
		if !seen[rev] {
			seen[rev] = true
			hosts = append(hosts, h)
		}
	}
	if len(hosts) < 2 {
		t.Fatalf("1000 seeds drew one revision: %v", seen)
	}
	for _, h := range hosts {
		protocoltest.ServeTCP(t, Name, svc, h, netip.AddrPortFrom(h.Addr, Port).String())
		rev, _ := h.Databus.GetString("Revision")
		descr, _ := h.Databus.GetString("sysDescr")
		if !strings.HasSuffix(descr, "Firmware Rev "+rev) {
			t.Errorf("%s: sysDescr %q, revision %s", h.Addr, descr, rev)
		}
		out, err := protocoltest.Run(t, 90*time.Second, nmap, "-Pn", "-n", "-sT", "-p", "44818", "--script", "enip-info", h.Addr.String())
		if err != nil {
			t.Fatalf("nmap: %v", err)
		}
		t.Logf("%s: drawn revision %s; enip-info:\n%s", h.Addr, rev, out)
		if !strings.Contains(out, "revision: "+rev+"\n") {
			t.Errorf("%s: enip-info does not show revision %s", h.Addr, rev)
		}
	}
}
