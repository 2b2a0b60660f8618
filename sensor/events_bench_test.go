package sensor

import (
	"io"
	"net/netip"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols"
)

// requestEvent is what a protocol emits per request: payloads and a few scalar fields.
func requestEvent() *protocols.Event {
	return &protocols.Event{
		Time: time.Date(2026, 11, 21, 10, 0, 0, 123456789, time.UTC), Type: "modbus.request", SessionID: "c0a8-1f",
		Protocol: "modbus", Transport: "tcp", Src: netip.MustParseAddrPort("203.0.113.9:40000"),
		Dst: netip.MustParseAddrPort("198.51.100.7:502"), Sensor: "s1", Profile: "default",
		Request:  []byte{0, 1, 0, 0, 0, 6, 1, 3, 0, 0, 0, 10},
		Response: []byte{0, 1, 0, 0, 0, 23, 1, 3, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		Fields: []protocols.Field{protocols.F("unit_id", uint8(1)), protocols.F("function_code", 3),
			protocols.F("function", "read_holding_registers"), protocols.F("address", uint16(0)), protocols.F("quantity", uint16(10)),
			protocols.F("duration", 1500*time.Microsecond), protocols.F("flag", true), protocols.F("ratio", 0.25)},
	}
}

// TestAppendJSONNoAllocs: encoding a request event into a buffer with room allocates nothing.
func TestAppendJSONNoAllocs(t *testing.T) {
	e := requestEvent()
	buf := make([]byte, 0, 4096)
	if n := testing.AllocsPerRun(100, func() { buf = AppendJSON(buf[:0], e) }); n != 0 {
		t.Fatalf("AppendJSON: %v allocations per event, want 0", n)
	}
}

// TestEmitDeliverNoAllocs: a session's event, through the bus to a JSON sink, allocates
// nothing once the event pool is warm (fields passed as a slice, as protocols do).
func TestEmitDeliverNoAllocs(t *testing.T) {
	bus := NewBus(4, NewJSONSink("discard", io.Discard, nil, false))
	sess, q := benchSession(bus), bus.queues[0]
	req, resp := requestEvent().Request, requestEvent().Response
	fields := requestEvent().Fields
	emit := func() {
		sess.Emit("request", req, resp, fields...)
		q.deliver(<-q.ch)
	}
	emit()
	// sync.Pool may drop an item at a GC; allow a fraction of an allocation per run.
	if n := testing.AllocsPerRun(1000, emit); n >= 0.5 {
		t.Fatalf("Emit + deliver: %v allocations per event, want 0", n)
	}
}

func benchSession(bus *Bus) *protocols.Session {
	return &protocols.Session{ID: "c0a8-1f", Protocol: "modbus", Transport: "tcp",
		Local: netip.MustParseAddrPort("198.51.100.7:502"), Remote: netip.MustParseAddrPort("203.0.113.9:40000"),
		Sensor: "s1", Events: bus, MaxPayload: 4096}
}

func BenchmarkAppendJSON(b *testing.B) {
	e := requestEvent()
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendJSON(buf[:0], e)
	}
	b.SetBytes(int64(len(buf)))
}

// BenchmarkEmitDeliver is the whole per-request event path: Session.Emit, the bus queue,
// the JSON sink's encoding and buffered write.
func BenchmarkEmitDeliver(b *testing.B) {
	bus := NewBus(4, NewJSONSink("discard", io.Discard, nil, false))
	sess, q := benchSession(bus), bus.queues[0]
	e := requestEvent()
	b.ReportAllocs()
	for b.Loop() {
		sess.Emit("request", e.Request, e.Response, e.Fields...)
		q.deliver(<-q.ch)
	}
}

// BenchmarkMetricsRequest is the per-request counter update with cached series.
func BenchmarkMetricsRequest(b *testing.B) {
	m := newMetrics()
	b.ReportAllocs()
	for b.Loop() {
		m.Request("modbus", "read_holding_registers", false)
	}
}

// BenchmarkSummarisedEvent is the per-request event path past per_session: the request is
// counted in the session summary and the flood aggregate instead of being encoded.
func BenchmarkSummarisedEvent(b *testing.B) {
	bus := NewBus(4, NewJSONSink("discard", io.Discard, nil, false))
	f := newFloodTable()
	sess := benchSession(bus)
	sess.KeepEvents, sess.OnSummarised = 1, f.hook()
	e := requestEvent()
	sess.Emit("request", e.Request, e.Response, e.Fields...)
	q := bus.queues[0]
	q.deliver(<-q.ch)
	b.ReportAllocs()
	for b.Loop() {
		sess.Request("read_holding_registers", false)
		sess.Emit("request", e.Request, e.Response, e.Fields...)
	}
}
