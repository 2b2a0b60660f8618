package s7comm

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// TestConpotSuite replays Conpot's test_s7_server.py (a plcscan-derived client) against
// Conpot's default template: COTP CR 0x0100 → 0x0102 with TPDU size 0x0A, setup with PDU
// 480, SZL 0x0011 and 0x001C reads; it expects the identity Conpot's test parses.
func TestConpotSuite(t *testing.T) {
	p := protocoltest.Profile(t, "../../testdata/conpot/default")
	svc, err := protocol{}.Configure(p.Sections[Name], nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.AddrFrom4([4]byte{127, 35, byte(1 + rand.IntN(250)), byte(1 + rand.IntN(250))})
	h := protocoltest.Host(p, addr, 3)
	srv := protocoltest.ServeTCP(t, Name, svc.(*service), h, netip.AddrPortFrom(addr, 0).String())
	c := dial(t, srv.Addr.String())
	cc := c.connect(0x0100, 0x0102, 0x0A)
	if cc.Code != CodeCC {
		t.Fatalf("connect: %+v", cc)
	}
	if s := c.setup(480); s.PDUSize == 0 || s.PDUSize > 480 {
		t.Fatalf("setup: %+v", s)
	}

	// SZL 17 (0x0011) index 1: plcscan prints the module as "v.<Ausbg1>.<Ausbg2>"; the
	// template maps W#16#0001 to the empty key, so Conpot's test expects "v.0.0".
	b, e, _ := c.readSZL(0x0011, 0x0001)
	if e != 0 || len(b) < 8+28 {
		t.Fatalf("SZL 0x0011: error %x, % x", e, b)
	}
	rec := b[8 : 8+28]
	if binary.BigEndian.Uint16(rec) != 1 {
		t.Fatalf("SZL 0x0011 record index % x", rec[:2])
	}
	if got := fmt.Sprintf("v.%d.%d", binary.BigEndian.Uint16(rec[24:]), binary.BigEndian.Uint16(rec[26:])); got != "v.0.0" {
		t.Errorf("SZL 0x0011 index 1: %s, want v.0.0 (record % x)", got, rec)
	}
	if mlfb := bytes.Trim(rec[2:22], "\x00 "); len(mlfb) != 0 {
		t.Errorf("MLFB %q, want empty (databus key empty)", mlfb)
	}

	// SZL 28 (0x001C): the component identification records from the databus.
	b, e, _ = c.readSZL(0x001C, 0x0001)
	if e != 0 || len(b) < 8 {
		t.Fatalf("SZL 0x001C: error %x, % x", e, b)
	}
	size, n := int(binary.BigEndian.Uint16(b[4:])), int(binary.BigEndian.Uint16(b[6:]))
	if size != 34 || len(b) < 8+size*n {
		t.Fatalf("SZL 0x001C header % x and %d bytes", b[:8], len(b))
	}
	got := map[uint16]string{}
	for i := range n {
		r := b[8+size*i : 8+size*(i+1)]
		got[binary.BigEndian.Uint16(r)] = string(bytes.TrimRight(r[2:], "\x00"))
	}
	want := map[uint16]string{1: "Technodrome", 2: "Siemens, SIMATIC, S7-200", 3: "Mouser Factory",
		4: "Original Siemens Equipment", 5: "88111222", 7: "IM151-8 PN/DP CPU", 0x0A: "", 0x0B: ""}
	for idx, w := range want {
		g, ok := got[idx]
		if !ok {
			t.Errorf("SZL 0x001C has no record %d (records %v)", idx, got)
			continue
		}
		if g != w {
			t.Errorf("SZL 0x001C record %d = %q, want %q", idx, g, w)
		}
	}
}
