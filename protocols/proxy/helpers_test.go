package proxy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// testAddr returns an address of 127.33.0.0/16, this package's loopback range for tests.
func testAddr() netip.Addr {
	return netip.AddrFrom4([4]byte{127, 33, byte(rand.IntN(256)), byte(1 + rand.IntN(254))})
}

// server runs a proxy service for one host the way the sensor does: every listener is one
// of the service's endpoints, its sessions carry that endpoint.
type server struct {
	events *protocoltest.Recorder
	host   *protocols.Host
	addrs  map[int]netip.AddrPort // proxy port → where the test listens for it
	conns  atomic.Int64           // connections being served
}

func serve(t testing.TB, svc *service, h *protocols.Host) *server {
	t.Helper()
	srv := &server{events: &protocoltest.Recorder{}, host: h, addrs: map[int]netip.AddrPort{}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	open := map[net.Conn]bool{}
	var lns []net.Listener
	var seq atomic.Int64
	for _, ep := range svc.Endpoints() {
		ln, err := net.Listen("tcp", netip.AddrPortFrom(h.Addr, 0).String())
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		srv.addrs[ep.Port] = ln.Addr().(*net.TCPAddr).AddrPort()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				mu.Lock()
				open[c] = true
				mu.Unlock()
				srv.conns.Add(1)
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer srv.conns.Add(-1)
					defer func() {
						c.Close()
						mu.Lock()
						delete(open, c)
						mu.Unlock()
					}()
					sess := &protocols.Session{
						ID: fmt.Sprintf("t-%d", seq.Add(1)), Protocol: Name, Transport: protocols.TCP, Endpoint: ep,
						Local: c.LocalAddr().(*net.TCPAddr).AddrPort(), Remote: c.RemoteAddr().(*net.TCPAddr).AddrPort(),
						Host: h, Sensor: "test", Events: srv.events, MaxPayload: 4096,
						Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
					}
					sess.Open(ctx, nil)
					defer sess.Close()
					svc.ServeConn(ctx, sess, &protocols.TimeoutConn{Conn: c, Idle: 30 * time.Second, WriteTimeout: 10 * time.Second})
				}()
			}
		}()
	}
	t.Cleanup(func() {
		cancel()
		for _, ln := range lns {
			ln.Close()
		}
		mu.Lock()
		for c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return srv
}

// dial connects to the proxy listening for port.
func (s *server) dial(t testing.TB, port int) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", s.addrs[port].String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return c.(*net.TCPConn)
}

// waitEvent waits until an event of type typ (with "proxy." prefix) is recorded, or fails.
func (s *server) waitEvent(t testing.TB, typ string) *protocols.Event {
	t.Helper()
	var e *protocols.Event
	eventually(t, "event "+typ, func() bool {
		if evs := s.events.OfType(Name + "." + typ); len(evs) > 0 {
			e = evs[0]
			return true
		}
		return false
	})
	return e
}

// eventually polls cond until it holds (no timing assertion: the bound is generous).
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func field(e *protocols.Event, key string) any {
	for _, f := range e.Fields {
		if f.Key == key {
			return f.Value
		}
	}
	return nil
}

// testBackend is a test backend server on loopback.
type testBackend struct {
	Addr     netip.AddrPort
	accepted atomic.Int64
	mu       sync.Mutex
	got      bytes.Buffer
}

// Received returns every byte the backend has read.
func (b *testBackend) Received() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.got.String()
}

// startBackend serves handle on a new loopback listener; handle gets the connection and
// a function recording what it read.
func startBackend(t testing.TB, handle func(c net.Conn, b *testBackend)) *testBackend {
	t.Helper()
	ln, err := net.Listen("tcp", netip.AddrPortFrom(testAddr(), 0).String())
	if err != nil {
		t.Fatal(err)
	}
	b := &testBackend{Addr: ln.Addr().(*net.TCPAddr).AddrPort()}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.accepted.Add(1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(30 * time.Second))
				handle(c, b)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return b
}

func (b *testBackend) record(p []byte) {
	b.mu.Lock()
	b.got.Write(p)
	b.mu.Unlock()
}

// echoBackend answers every chunk with prefix + the chunk.
func echoBackend(prefix string) func(net.Conn, *testBackend) {
	return func(c net.Conn, b *testBackend) {
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if n > 0 {
				b.record(buf[:n])
				if _, err := c.Write(append([]byte(prefix), buf[:n]...)); err != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}
}

// configure loads the template directory dir and configures the proxy with opts; it
// returns the service and the template warnings.
func configure(t testing.TB, dir string, opts *Options) (*service, *profiles.Profile, []string) {
	t.Helper()
	p, err := profiles.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	sec := p.Sections[Name]
	if sec == nil {
		t.Fatalf("%s has no proxy section", dir)
	}
	svc, err := protocol{}.Configure(sec, opts)
	if err != nil {
		t.Fatal(err)
	}
	return svc.(*service), p, p.Warnings()
}

// writeTemplate writes a template directory whose proxy.xml is body.
func writeTemplate(t testing.TB, body string) string {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(dir+"/proxy", 0o755)
	os.WriteFile(dir+"/template.xml", []byte(`<core><template><entity name="vendor">Kamstrup</entity></template><databus/></core>`), 0o644)
	os.WriteFile(dir+"/proxy/proxy.xml", []byte(body), 0o644)
	return dir
}

// readAll reads c until EOF or error.
func readAll(c net.Conn) string {
	b, _ := io.ReadAll(c)
	return string(b)
}

func hasWarning(ws []string, sub string) bool {
	for _, w := range ws {
		if strings.Contains(w, sub) {
			return true
		}
	}
	return false
}
