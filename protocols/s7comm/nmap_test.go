package s7comm

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// TestNmapS7Info runs nmap's s7-info script against the default profile on port 102.
func TestNmapS7Info(t *testing.T) {
	nmap := protocoltest.NeedTool(t, "nmap")
	protocoltest.NeedRoot(t)
	p := protocoltest.Profile(t, protocoltest.Station)
	svc := protocoltest.Configure(t, protocol{}, p).(*service)
	addr := protocoltest.LoopbackAddr()
	h := protocoltest.Host(p, addr, 7)
	protocoltest.ServeTCP(t, Name, svc, h, netip.AddrPortFrom(addr, Port).String())

	out, err := protocoltest.Run(t, 60*time.Second, nmap, "-Pn", "-n", "-sT", "-p", "102", "--script", "s7-info", addr.String())
	if err != nil {
		t.Fatalf("nmap: %v", err)
	}
	str := func(k string) string { s, _ := h.Databus.GetString(k); return s }
	fw := parseVersion(str("FirmwareVersion"))
	for _, want := range []string{
		"102/tcp open  iso-tsap",
		"Module: 6ES7 216-2AD23-0XB0",
		"Basic Hardware: 6ES7 216-2AD23-0XB0",
		fmt.Sprintf("Version: %d.%d.%d", fw[0], fw[1], fw[2]),
		"System Name: " + str("SystemName"),
		"Module Type: CPU 226 DC/DC/DC",
		"Serial Number: " + str("s7_id"),
		"Plant Identification: " + str("FacilityName"),
		"Copyright: (C) Siemens AG 2006",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("nmap output lacks %q", want)
		}
	}
	if strings.Contains(out, "ERROR") {
		t.Error("s7-info reported an error")
	}
}
