package enip

import (
	"net/netip"
	"testing"

	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// BenchmarkListIdentityUDP answers nmap's ListIdentity datagram.
func BenchmarkListIdentityUDP(b *testing.B) {
	svc, p := configure(b, "default")
	h := protocoltest.Host(p, netip.MustParseAddr("198.18.70.30"), 1)
	s := testSession(h, nil, protocols.UDP)
	req := unhex(b, "63000000000000000000000000000000c1debed100000000")
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		svc.ServePacket(s.Context(), s, req, func(r []byte) { n += len(r) })
	}
	if n == 0 {
		b.Fatal("no reply")
	}
}

// BenchmarkReadTag handles a SendRRData Read Tag frame as the connection loop does.
func BenchmarkReadTag(b *testing.B) {
	svc, p := configure(b, "logix")
	h := protocoltest.Host(p, netip.MustParseAddr("198.18.70.31"), 1)
	c := &conn{}
	c.x = exec{svc: svc, sess: testSession(h, nil, protocols.TCP), db: h.Databus, dev: svc.hostDevice(h), conn: c}
	c.session = 0x1234
	req := frame(cmdSendRRData, c.session, "", rrData(cipReq(svcReadTag, symbolic("Counts", 10), []byte{4, 0})))
	b.ReportAllocs()
	for b.Loop() {
		c.out = c.out[:0]
		c.handle(req)
	}
	if len(c.out) != headerLen+6+2+4+4+4+2+16 {
		b.Fatalf("reply of %d bytes", len(c.out))
	}
}
