package sensor

import (
	"context"
	"io"
	"log/slog"
	"runtime"
	"testing"

	"github.com/icsnare/icsnare/internal/netnstest"
)

// runInNamespace builds a sensor from cfg, binds it inside ns and runs it until the test
// ends (stopped and waited for by t.Cleanup).
func runInNamespace(t *testing.T, ns *netnstest.NS, cfg Config) *Sensor {
	t.Helper()
	s, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := ns.Do(func() error { return s.Bind(ctx) }); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { s.Run(ctx, nil); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return s
}

// liveHeap returns the heap in use after two collections (the second frees what the
// first's finalizers released).
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
