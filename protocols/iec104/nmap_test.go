package iec104

import (
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// TestNmapIECIdentify runs nmap's iec-identify script: it finds the station's common
// address and every information object of the general interrogation.
func TestNmapIECIdentify(t *testing.T) {
	nmap := protocoltest.NeedTool(t, "nmap")
	_, h, srv := serve(t, 21)
	out, err := protocoltest.Run(t, 90*time.Second, nmap, "-Pn", "-n", "-sT", "-p", "2404", "--script", "iec-identify", h.Addr.String())
	if err != nil {
		t.Fatalf("nmap: %v", err)
	}
	for _, want := range []string{"2404/tcp open  iec-104", "ASDU address: 7720", "Information objects: 59"} {
		if !strings.Contains(out, want) {
			t.Errorf("nmap output lacks %q", want)
		}
	}
	if len(srv.Events.OfType(evASDU)) != 1 {
		t.Errorf("%d interrogation events", len(srv.Events.OfType(evASDU)))
	}
}
