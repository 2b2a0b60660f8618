package sensor

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/icsnare/icsnare/internal/netnstest"
)

// BenchmarkStartSlash8 measures start-up (New and Bind) of a /8 mixing every embedded
// persona, so every protocol is enabled, inside a namespace the benchmark owns. It reports
// wall and CPU time per start.
//
//	go test -run '^$' -bench StartSlash8 -benchtime 10x ./sensor
func BenchmarkStartSlash8(b *testing.B) {
	ns := netnstest.New(b)
	cfg := DefaultConfig()
	cfg.Hosts = []HostRule{{Addresses: []string{"10.0.0.0/8"}, Density: 0.5, Profiles: map[string]float64{
		"default": 3, "s7-1200": 1, "m340": 1, "compactlogix": 1, "bacnet-controller": 1, "bmc": 1, "tls350": 1}}}
	cfg.Privileges.User = ""
	cfg.Metrics.Listen = ""
	cfg.Events.File = ""
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var wall, cpu time.Duration
	for b.Loop() {
		var r0, r1 unix.Rusage
		unix.Getrusage(unix.RUSAGE_SELF, &r0)
		t0 := time.Now()
		s, err := New(cfg, log)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		if err := ns.Do(func() error { return s.Bind(ctx) }); err != nil {
			b.Fatal(err)
		}
		wall += time.Since(t0)
		unix.Getrusage(unix.RUSAGE_SELF, &r1)
		cpu += time.Duration(r1.Utime.Nano() + r1.Stime.Nano() - r0.Utime.Nano() - r0.Stime.Nano())
		cancel()
		s.Close()
	}
	b.ReportMetric(float64(wall.Milliseconds())/float64(b.N), "wall-ms/start")
	b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/start")
}
