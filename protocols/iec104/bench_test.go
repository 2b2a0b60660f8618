package iec104

import (
	"net/netip"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// BenchmarkInterrogation answers a station interrogation of the IEC104 template (59
// points in four ASDUs between act con and act term) as the connection loop does.
func BenchmarkInterrogation(b *testing.B) {
	svc, p := configure(b, "IEC104")
	h := protocoltest.Host(p, netip.MustParseAddr("198.18.70.32"), 1)
	c := &conn{svc: svc, sess: testSession(h, nil), db: h.Databus, p: svc.params(h),
		selected: map[ioa]time.Time{}, last: map[ioa]float64{}}
	gi := unhex(b, "68 0e 00 00 00 00 64 01 06 00 28 1e 00 00 00 14")
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		c.active, c.vs, c.vr, c.ack, c.sentAt, c.out = true, 0, 0, 0, c.sentAt[:0], c.out[:0]
		if !c.frame(gi, now) {
			b.Fatal("closed")
		}
	}
	if len(c.sentAt) != 6 {
		b.Fatalf("%d frames", len(c.sentAt))
	}
}
