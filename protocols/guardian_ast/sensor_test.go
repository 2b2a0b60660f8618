package guardianast_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols/protocoltest"
	"github.com/icsnare/icsnare/sensor"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestThroughSensor serves Conpot's guardian_ast template, unchanged, on a /29 of hosts
// through the real sensor: each host has its own tank values, a label set with S602 stays
// on its host across a sensor restart (the state directory), and the events carry the
// commands.
func TestThroughSensor(t *testing.T) {
	dir := t.TempDir()
	tmpl, err := filepath.Abs("../../testdata/conpot/guardian_ast")
	if err != nil {
		t.Fatal(err)
	}
	net29 := fmt.Sprintf("127.31.%d", rand.IntN(256))
	conf := filepath.Join(dir, "icsnare.toml")
	os.WriteFile(conf, []byte(fmt.Sprintf("[[hosts]]\naddresses = [\"%s.0/29\"]\nprofile = %q\n", net29, tmpl)), 0o644)
	cfg, err := sensor.LoadConfig(conf)
	if err != nil {
		t.Fatal(err)
	}
	// a port found free below the ephemeral range stands in for 10001
	port := 502 + protocoltest.FreeOffset(t, 502)
	cfg.Bind.Ports = map[string]int{"guardian_ast": port}
	cfg.Privileges.User = ""
	cfg.Metrics.Listen = ""
	cfg.State.Dir = filepath.Join(dir, "state")
	events := &syncBuffer{}
	stop := startSensor(t, cfg, events)

	ask := func(host, cmd string) string {
		t.Helper()
		c, err := net.DialTimeout("tcp", net.JoinHostPort(host, fmt.Sprint(port)), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write([]byte(cmd))
		var out []byte
		buf := make([]byte, 4096)
		for !bytes.HasSuffix(out, []byte("\n\n")) && !bytes.HasSuffix(out, []byte("9999FF1B\n")) {
			n, err := c.Read(buf)
			out = append(out, buf[:n]...)
			if err != nil {
				t.Fatalf("%s %q: %v after %q", host, cmd, err, out)
			}
		}
		return string(out)
	}
	hostA, hostB := net29+".2", net29+".3"
	invA, invB := ask(hostA, "\x01I20100\r\n"), ask(hostB, "\x01I20100\r\n")
	if invA[24:] == invB[24:] {
		t.Fatalf("two hosts show the same inventory:\n%s", invA)
	}
	if got := ask(hostA, "\x01S60203HOSTA\r\n\x01I20100\r\n"); !strings.Contains(got, "  3  HOSTA ") {
		t.Fatalf("label on A:\n%s", got)
	}
	for _, w := range []string{`"event_type":"guardian_ast.command"`, `"command":"S60203"`, `"label":"HOSTA"`} {
		deadline := time.Now().Add(5 * time.Second)
		for !strings.Contains(events.String(), w) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if !strings.Contains(events.String(), w) {
			t.Errorf("events lack %s:\n%s", w, events.String())
		}
	}
	stop()
	startSensor(t, cfg, &syncBuffer{})
	if got := ask(hostA, "\x01I20100\r\n"); !strings.Contains(got, "  3  HOSTA ") {
		t.Fatalf("label on A after a restart:\n%s", got)
	}
	if got := ask(hostB, "\x01I20100\r\n"); strings.Contains(got, "HOSTA") || !strings.Contains(got, "  3  DIESEL ") {
		t.Fatalf("host B:\n%s", got)
	}
}

// startSensor runs a sensor until the returned stop (or the test's end).
func startSensor(t *testing.T, cfg sensor.Config, events io.Writer) (stop func()) {
	t.Helper()
	s, err := sensor.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	s.SetBus(sensor.NewBus(1024, sensor.NewJSONSink("test", events, nil, false)))
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.Bind(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { s.Run(ctx, nil); close(done) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Error("sensor did not stop")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}
