package bacnet

import (
	"context"
	"testing"

	"github.com/icsnare/icsnare/internal/racedetector"
	"github.com/icsnare/icsnare/protocols"
)

func benchServe(b *testing.B, req []byte) {
	sv, h := testService(b, "controller")
	f := newFlow(b, sv, h)
	ctx := context.Background()
	n := 0
	reply := func(resp []byte) { n += len(resp) }
	sv.ServePacket(ctx, f.s, req, reply)
	if n == 0 {
		b.Fatal("no answer")
	}
	f.s.Events = nil
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		sv.ServePacket(ctx, f.s, req, reply)
	}
}

func BenchmarkReadPropertyObjectName(b *testing.B) {
	benchServe(b, unicast(confirmedReq(1, svcReadProperty, 5, rpData(testDevice, propObjectName, -1))))
}

func BenchmarkReadPropertyMultipleDeviceAll(b *testing.B) {
	benchServe(b, unicast(confirmedReq(1, svcReadPropertyMultiple, 5, rpmData(map[objectID][]uint32{testDevice: {propAll}}, []objectID{testDevice}))))
}

func BenchmarkWhoIs(b *testing.B) {
	benchServe(b, broadcastFrame(whoIs(-1, 0)))
}

func BenchmarkDecodeMessage(b *testing.B) {
	req := unhexT("810a001101040005010c0c023fffff194d")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeMessage(req); err != nil {
			b.Fatal(err)
		}
	}
}

// releaseEvents hands events straight back to the pool, as the sensor's bus does.
type releaseEvents struct{}

func (releaseEvents) Emit(e *protocols.Event) { protocols.ReleaseEvent(e) }

// BenchmarkReadPropertyEvents is a ReadProperty of the device's object name (the ratio
// bench's request) with events on: every event kept, and the default volume control past
// its first events.
func BenchmarkReadPropertyEvents(b *testing.B) {
	req := unicast(confirmedReq(1, svcReadProperty, 5, rpData(testDevice, propObjectName, -1)))
	for _, keep := range []int{0, 100} {
		name := "events=all"
		if keep > 0 {
			name = "events=volume-control"
		}
		b.Run(name, func(b *testing.B) {
			sv, h := testService(b, "controller")
			f := newFlow(b, sv, h)
			f.s.Events, f.s.KeepEvents = releaseEvents{}, keep
			ctx := context.Background()
			n := 0
			reply := func(resp []byte) { n += len(resp) }
			for range keep + 1 {
				sv.ServePacket(ctx, f.s, req, reply)
			}
			if n == 0 {
				b.Fatal("no answer")
			}
			b.ReportAllocs()
			for b.Loop() {
				sv.ServePacket(ctx, f.s, req, reply)
			}
		})
	}
}

// TestReadPropertyNoAllocs: under the default volume control, past the events it keeps, a
// ReadProperty allocates nothing.
func TestReadPropertyNoAllocs(t *testing.T) {
	if racedetector.Enabled {
		t.Skip("allocation counts of pooled paths mean nothing under the race detector (make test runs this test again without it)")
	}
	req := unicast(confirmedReq(1, svcReadProperty, 5, rpData(testDevice, propObjectName, -1)))
	sv, h := testService(t, "controller")
	f := newFlow(t, sv, h)
	f.s.Events, f.s.KeepEvents = releaseEvents{}, 100
	ctx := context.Background()
	n := 0
	reply := func(resp []byte) { n += len(resp) }
	serve := func() { sv.ServePacket(ctx, f.s, req, reply) }
	for range f.s.KeepEvents + 1 {
		serve()
	}
	// sync.Pool may drop an exchange at a GC; allow a fraction of an allocation.
	if got := testing.AllocsPerRun(200, serve); got >= 0.5 {
		t.Fatalf("ReadProperty: %v allocations per request, want 0", got)
	}
	if n == 0 {
		t.Fatal("no answer")
	}
}
