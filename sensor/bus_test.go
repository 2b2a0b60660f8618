package sensor

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols"
)

// countSink counts what it is given; fail makes every Write fail.
type countSink struct {
	mu     sync.Mutex
	n      int
	fail   bool
	closed bool
}

func (c *countSink) Name() string { return "count" }
func (c *countSink) Write(*protocols.Event) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail {
		return errTest
	}
	c.n++
	return nil
}
func (c *countSink) Flush() error { return nil }
func (c *countSink) Close() error { c.mu.Lock(); c.closed = true; c.mu.Unlock(); return nil }

type testErr string

func (e testErr) Error() string { return string(e) }

const errTest = testErr("refused")

// TestDeadSinkCostsOnlyItself: with one sink stalled for ever, another sink still gets
// every event, the stalled one's losses are counted against it alone, and shutdown ends
// within its budget, abandoning the stalled sink and reporting what it lost.
func TestDeadSinkCostsOnlyItself(t *testing.T) {
	dead := &blockingSink{release: make(chan struct{})}
	defer close(dead.release)
	good, bad := &countSink{}, &countSink{fail: true}
	bus := NewBus(16, dead, good, bad)
	var logBuf bytes.Buffer
	var logMu sync.Mutex
	bus.Log = slog.New(slog.NewTextHandler(&lockedWriter{w: &logBuf, mu: &logMu}, nil))
	ctx, cancel := context.WithCancel(context.Background())
	go bus.Run(ctx, 200*time.Millisecond)
	const total = 2000
	for i := range total {
		bus.Emit(sampleEvent())
		if i%8 == 7 { // let the good sink keep up with its queue of 16
			for bus.queues[1].sent.Load()+bus.queues[1].dropped[DropQueueFull].Load() < int64(i+1)-8 {
				time.Sleep(100 * time.Microsecond)
			}
		}
	}
	// Everything the good sink was given is written before the bus stops.
	for len(bus.queues[1].ch) > 0 || len(bus.queues[2].ch) > 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	ended := make(chan struct{})
	go func() { bus.Wait(); close(ended) }()
	select {
	case <-ended:
	case <-time.After(30 * time.Second):
		t.Fatal("shutdown hung behind a dead sink")
	}
	st := bus.Stats()
	for i, s := range st {
		var dropped int64
		for _, n := range s.Dropped {
			dropped += n
		}
		if s.Sent+dropped+int64(s.Queued) != total {
			t.Errorf("sink %d (%s): sent %d + dropped %v != %d", i, s.Name, s.Sent, s.Dropped, total)
		}
	}
	if st[1].Sent != total-st[1].Dropped[DropQueueFull] || st[1].Dropped[DropWriteError] != 0 {
		t.Errorf("good sink: %+v", st[1])
	}
	if st[2].Sent != 0 || st[2].Dropped[DropWriteError] == 0 {
		t.Errorf("failing sink: %+v, want write errors and nothing sent", st[2])
	}
	if !st[0].Abandoned || st[0].Dropped[DropQueueFull] < total-17 || st[0].Dropped[DropShutdown] == 0 {
		t.Errorf("dead sink: %+v, want it abandoned with queue_full and shutdown losses", st[0])
	}
	if !good.closed || !bad.closed {
		t.Error("the live sinks were not closed")
	}
	logMu.Lock()
	log := logBuf.String()
	logMu.Unlock()
	if !strings.Contains(log, "sink=blocking") || !strings.Contains(log, "abandoned") || !strings.Contains(log, "dropped_shutdown=") {
		t.Errorf("shutdown report does not name the abandoned sink's losses:\n%s", log)
	}
	// After shutdown, late events are counted, not queued.
	bus.Emit(sampleEvent())
	if n := bus.Stats()[1].Dropped[DropShutdown]; n != 1 {
		t.Errorf("an event emitted after shutdown: shutdown drops %d, want 1", n)
	}
}

// TestBusSharedEventReleasedOnce: an event given to several sinks goes back to the pool
// once, after the last sink wrote it (the race detector sees a reuse before that).
func TestBusSharedEventReleasedOnce(t *testing.T) {
	a, b := &countSink{}, &countSink{}
	bus := NewBus(1024, a, b)
	ctx, cancel := context.WithCancel(context.Background())
	go bus.Run(ctx, 5*time.Second)
	sess := benchSession(bus)
	payload := []byte("0123456789")
	for range 500 {
		sess.Emit("request", payload, payload, protocols.F("k", 1))
	}
	cancel()
	bus.Wait()
	if a.n+int(bus.Stats()[0].Dropped[DropQueueFull]) != 500 || b.n+int(bus.Stats()[1].Dropped[DropQueueFull]) != 500 {
		t.Fatalf("sinks wrote %d and %d of 500 (stats %+v)", a.n, b.n, bus.Stats())
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
