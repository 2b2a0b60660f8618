package sensor

import (
	"context"
	"encoding/json"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols"
)

func sampleEvent() *protocols.Event {
	return &protocols.Event{
		Time: time.Date(2026, 11, 21, 10, 0, 0, 123456789, time.UTC), Type: "modbus.request", SessionID: "ab-1",
		Protocol: "modbus", Transport: "tcp", Src: netip.MustParseAddrPort("203.0.113.9:40000"),
		Dst: netip.MustParseAddrPort("[::ffff:198.51.100.7]:502"), Sensor: "s1", Profile: "default",
		Request: []byte{0, 1, 0xff}, Response: []byte{},
		Fields: []protocols.Field{
			protocols.F("unit_id", uint8(1)), protocols.F("odd", "quote\" back\\ nl\n ctl\x01 bad\xff <tag> \u2028"),
			protocols.F("oids", []string{"1.3.6", "1.3.7"}), protocols.F("ratio", 0.5), protocols.F("flag", true),
			protocols.F("nested", map[string]int{"a": 1}),
		},
	}
}

func TestJSONEventEncoding(t *testing.T) {
	var m map[string]any
	line := AppendJSON(nil, sampleEvent())
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	want := map[string]any{
		"timestamp": "2026-11-21T10:00:00.123456789Z", "event_type": "modbus.request", "session_id": "ab-1",
		"src_ip": "203.0.113.9", "src_port": 40000.0, "dst_ip": "198.51.100.7", "dst_port": 502.0,
		"request": "0001ff", "response": "", "unit_id": 1.0, "ratio": 0.5, "flag": true,
		"odd": "quote\" back\\ nl\n ctl\x01 bad\ufffd <tag> \u2028",
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %#v, want %#v", k, m[k], v)
		}
	}
	if o, _ := m["oids"].([]any); len(o) != 2 {
		t.Errorf("oids = %#v", m["oids"])
	}
	if n, _ := m["nested"].(map[string]any); n["a"] != 1.0 {
		t.Errorf("nested = %#v", m["nested"])
	}
	if strings.ContainsAny(string(line), "\n<>") {
		t.Errorf("line holds raw newline or HTML characters: %s", line)
	}
}

func TestConpotEventEncoding(t *testing.T) {
	var m map[string]any
	line := AppendConpotJSON(nil, sampleEvent())
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	for _, k := range []string{"timestamp", "sensorid", "id", "src_ip", "src_port", "dst_ip", "dst_port", "public_ip", "data_type", "request", "response", "event_type"} {
		if _, ok := m[k]; !ok {
			t.Errorf("conpot event lacks %s: %s", k, line)
		}
	}
	if m["timestamp"] != "2026-11-21T10:00:00.123456" || m["data_type"] != "modbus" || m["sensorid"] != "s1" || m["id"] != "ab-1" {
		t.Errorf("conpot fields wrong: %s", line)
	}
	if d, _ := m["data"].(map[string]any); d["unit_id"] != 1.0 {
		t.Errorf("protocol fields not under data: %s", line)
	}
}

// blockingSink stalls until released, like a dead collector.
type blockingSink struct {
	release chan struct{}
	mu      sync.Mutex
	n       int
}

func (b *blockingSink) Name() string { return "blocking" }
func (b *blockingSink) Write(*protocols.Event) error {
	<-b.release
	b.mu.Lock()
	b.n++
	b.mu.Unlock()
	return nil
}
func (b *blockingSink) Flush() error { return nil }
func (b *blockingSink) Close() error { return nil }

func TestSlowSinkNeverBlocksEmitters(t *testing.T) {
	sink := &blockingSink{release: make(chan struct{})}
	bus := NewBus(8, sink)
	ctx, cancel := context.WithCancel(context.Background())
	go bus.Run(ctx, time.Second)
	done := make(chan struct{})
	go func() {
		for i := 0; i < 1000; i++ {
			bus.Emit(sampleEvent())
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Emit blocked behind a stalled sink")
	}
	// At most the queue (8) plus the one event the sink holds got through; the rest dropped.
	if d := bus.Dropped(); d < 1000-9 {
		t.Fatalf("dropped %d of 1000 with a queue of 8", d)
	}
	close(sink.release)
	cancel()
	bus.Wait()
	if got := int64(sink.n) + bus.Dropped(); got != 1000 {
		t.Fatalf("written %d + dropped %d != 1000", sink.n, bus.Dropped())
	}
}
