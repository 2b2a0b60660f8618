package iec104

import (
	"net/netip"
	"testing"

	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// TestConpotTemplateExchanges replays Conpot's test_iec104_server.py exchanges against
// Conpot's own IEC104 template as the repository regenerates it (testdata/conpot/IEC104):
// common address 0x1E28 from the databus key CommonAddress, 22_20 related to 13_20.
func TestConpotTemplateExchanges(t *testing.T) {
	p := protocoltest.Profile(t, "../../testdata/conpot/IEC104")
	svc := protocoltest.Configure(t, protocol{}, p).(*service)
	addr := netip.AddrFrom4([4]byte{127, 35, 104, byte(1 + testAddr().As4()[3])})
	h := protocoltest.Host(p, addr, 5)
	srv := protocoltest.ServeTCP(t, Name, svc, h, netip.AddrPortFrom(addr, 0).String())
	for _, k := range []string{"22_20", "13_20", "22_19"} {
		h.Databus.Set(k, int64(0))
	}
	c := dial(t, srv.Addr)
	c.expect("68 04 07 00 00 00", "68 04 0b 00 00 00")
	c.expect("68 04 43 00 00 00", "68 04 83 00 00 00")
	c.expect("68 0e 00 00 00 00 2d 01 06 00 28 1e ee ee ee 01", "68 0e 00 00 02 00 2d 01 2f 00 28 1e ee ee ee 01")

	c = dial(t, srv.Addr)
	c.expect("68 04 07 00 00 00", "68 04 0b 00 00 00")
	c.expect("68 0e 00 00 00 00 2d 01 06 00 28 1e 00 16 14 01",
		"68 0e 00 00 02 00 2d 01 07 00 28 1e 00 16 14 01",
		"68 0e 02 00 02 00 01 01 0b 00 28 1e 00 0d 14 01",
		"68 0e 04 00 02 00 2d 01 0a 00 28 1e 00 16 14 01")
	if v, _ := h.Databus.GetInt("13_20"); v != 1 {
		t.Fatalf("13_20 = %d after the command", v)
	}

	c = dial(t, srv.Addr)
	c.expect("68 04 07 00 00 00", "68 04 0b 00 00 00")
	c.expect("68 0e 00 00 00 00 2e 01 06 00 28 1e 00 16 14 01", "68 0e 00 00 02 00 2e 01 47 00 28 1e 00 16 14 01")
}
