package enip

import (
	"fmt"
	"strings"
	"testing"
	"time"

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
