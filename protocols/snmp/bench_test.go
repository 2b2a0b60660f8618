package snmp

import (
	"context"
	"testing"

	"github.com/icsnare/icsnare/internal/racedetector"
	"github.com/icsnare/icsnare/protocols"
)

func benchServe(b *testing.B, req []byte) {
	a := quiet(b)
	ctx := context.Background()
	n := 0
	reply := func(resp []byte) { n += len(resp) }
	a.svc.ServePacket(ctx, a.sess, req, reply)
	if n == 0 {
		b.Fatal("no reply")
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		a.svc.ServePacket(ctx, a.sess, req, reply)
	}
}

func BenchmarkGetV2c(b *testing.B) {
	benchServe(b, request(b, version2c, "public", pduGet, 0, 0, vbSpec{oid: "1.3.6.1.2.1.1.1.0"}))
}

func BenchmarkGetV2cThreeOIDs(b *testing.B) {
	benchServe(b, request(b, version2c, "public", pduGet, 0, 0, vbSpec{oid: "1.3.6.1.2.1.1.1.0"},
		vbSpec{oid: "1.3.6.1.2.1.1.3.0"}, vbSpec{oid: "1.3.6.1.2.1.2.2.1.10.1"}))
}

func BenchmarkGetNextV2c(b *testing.B) {
	benchServe(b, request(b, version2c, "public", pduGetNext, 0, 0, vbSpec{oid: "1.3.6.1.2.1.1.1.0"}))
}

func BenchmarkGetBulkV2c(b *testing.B) {
	benchServe(b, request(b, version2c, "public", pduGetBulk, 0, 20, vbSpec{oid: "1.3.6.1.2.1"}))
}

func BenchmarkGetV3AuthNoPriv(b *testing.B) {
	a := quiet(b)
	hs := a.svc.host(a.host)
	u := a.svc.cfg.users["monitor"]
	// The time window is ±150 s, plenty for a short benchmark.
	benchServe(b, v3Request(&testing.T{}, a, u, hs.engineID, hs.boots, hs.engineTime(timeNow()), flagAuth|flagReportable))
}

func BenchmarkDecodeMessage(b *testing.B) {
	req := request(b, version2c, "public", pduGet, 0, 0, vbSpec{oid: "1.3.6.1.2.1.1.1.0"})
	var m message
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if err := decodeMessage(req, &m); err != nil {
			b.Fatal(err)
		}
	}
}

// releaseEvents is an emitter that hands events straight back to the pool, as the
// sensor's bus does once its sinks wrote them.
type releaseEvents struct{}

func (releaseEvents) Emit(e *protocols.Event) { protocols.ReleaseEvent(e) }

// BenchmarkGetV2cEvents is BenchmarkGetV2c with events on: every event kept, and the
// default volume control past its first events (summarised: the request path allocates
// nothing then).
func BenchmarkGetV2cEvents(b *testing.B) {
	req := request(b, version2c, "public", pduGet, 0, 0, vbSpec{oid: "1.3.6.1.2.1.1.1.0"})
	for _, keep := range []int{0, 100} {
		name := "events=all"
		if keep > 0 {
			name = "events=volume-control"
		}
		b.Run(name, func(b *testing.B) {
			a := quiet(b)
			a.sess.Events, a.sess.KeepEvents = releaseEvents{}, keep
			ctx := context.Background()
			n := 0
			reply := func(resp []byte) { n += len(resp) }
			for range keep + 1 {
				a.svc.ServePacket(ctx, a.sess, req, reply)
			}
			if n == 0 {
				b.Fatal("no reply")
			}
			b.ReportAllocs()
			for b.Loop() {
				a.svc.ServePacket(ctx, a.sess, req, reply)
			}
		})
	}
}

// TestGetV2cNoAllocs: under the default volume control, past the events it keeps, a GET
// allocates nothing.
func TestGetV2cNoAllocs(t *testing.T) {
	if racedetector.Enabled {
		t.Skip("allocation counts of pooled paths mean nothing under the race detector (make test runs this test again without it)")
	}
	req := request(t, version2c, "public", pduGet, 0, 0, vbSpec{oid: "1.3.6.1.2.1.1.1.0"})
	a := quiet(t)
	a.sess.Events, a.sess.KeepEvents = releaseEvents{}, 100
	ctx := context.Background()
	n := 0
	reply := func(resp []byte) { n += len(resp) }
	serve := func() { a.svc.ServePacket(ctx, a.sess, req, reply) }
	for range a.sess.KeepEvents + 1 {
		serve()
	}
	// sync.Pool may drop a request state at a GC; allow a fraction of an allocation.
	if got := testing.AllocsPerRun(200, serve); got >= 0.5 {
		t.Fatalf("GET: %v allocations per request, want 0", got)
	}
	if n == 0 {
		t.Fatal("no reply")
	}
}
