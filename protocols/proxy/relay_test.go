package proxy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols"
)

// oneProxy configures a single plain proxy on port 1025 to backend, with opts changed by
// tune.
func oneProxy(t testing.TB, backend string, decoder string, tune func(*Options)) (*service, *server) {
	t.Helper()
	return oneProxyHook(t, backend, decoder, tune, nil)
}

// oneProxyHook is oneProxy with a hook told of every backend connect.
func oneProxyHook(t testing.TB, backend string, decoder string, tune func(*Options), dialed func(netip.AddrPort)) (*service, *server) {
	t.Helper()
	dir := writeTemplate(t, `<proxies enabled="True">
  <proxy name="Meter" host="0.0.0.0" port="1025">
    <proxy_host>192.0.2.1</proxy_host><proxy_port>1025</proxy_port>
    <decoder>`+decoder+`</decoder>
  </proxy>
</proxies>`)
	opts := DefaultOptions()
	opts.Backends = map[string]string{"Meter": backend}
	if tune != nil {
		tune(opts)
	}
	svc, prof, warnings := configure(t, dir, opts)
	if len(warnings) > 0 {
		t.Fatalf("warnings: %q", warnings)
	}
	svc.dialed = dialed
	return svc, serve(t, svc, protocols.NewHost(testAddr(), prof, 7, time.Now()))
}

// closedPort returns a loopback address where nothing listens.
func closedPort(t testing.TB) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", netip.AddrPortFrom(testAddr(), 0).String())
	if err != nil {
		t.Fatal(err)
	}
	ap := ln.Addr().(*net.TCPAddr).AddrPort()
	ln.Close()
	return ap
}

// TestBackendDown: a configured backend that refuses gives the client a clean close (FIN,
// no data, no reset) and a backend_error event, and the relay ends.
func TestBackendDown(t *testing.T) {
	down := closedPort(t)
	svc, srv := oneProxy(t, down.String(), "", nil)
	c := srv.dial(t, 1025)
	c.Write([]byte("hello"))
	buf := make([]byte, 16)
	n, err := c.Read(buf)
	c.Close()
	if n != 0 || err == nil || err.Error() != "EOF" {
		t.Fatalf("client read %q, %v; want a clean EOF", buf[:n], err)
	}
	e := srv.waitEvent(t, "backend_error")
	if string(e.Request) != "hello" || field(e, "error") != "connection refused" || field(e, "stage") != "connect" || field(e, "backend") != down.String() || field(e, "proxy_id") != "meter" {
		t.Errorf("backend_error %+v", e.Fields)
	}
	eventually(t, "relay done", func() bool { return svc.running.Load() == 0 && srv.conns.Load() == 0 })
	if len(srv.events.OfType("proxy.request")) != 0 {
		t.Errorf("a request was relayed to a backend that is down")
	}
}

// TestOnlyConfiguredBackend: whatever a client sends (an HTTP CONNECT, a SOCKS5 request, an
// absolute URI, a PROXY protocol header, each naming another listener of this test), the
// proxy connects to the configured backend and nowhere else: every connect the proxy makes
// is the backend's, and the other listeners are never reached.
func TestOnlyConfiguredBackend(t *testing.T) {
	back := startBackend(t, echoBackend(""))
	trap := startBackend(t, echoBackend("trap"))
	var mu sync.Mutex
	var dialed []netip.AddrPort
	svc, srv := oneProxyHook(t, back.Addr.String(), "", nil, func(ap netip.AddrPort) { mu.Lock(); dialed = append(dialed, ap); mu.Unlock() })
	tp := trap.Addr.Port()
	ta := trap.Addr.Addr()
	probes := []string{
		fmt.Sprintf("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", trap.Addr, trap.Addr),
		fmt.Sprintf("GET http://%s/ HTTP/1.1\r\nHost: %s\r\n\r\n", trap.Addr, trap.Addr),
		string([]byte{5, 1, 0}) + string([]byte{5, 1, 0, 1}) + string(ta.AsSlice()) + string([]byte{byte(tp >> 8), byte(tp)}),
		string([]byte{4, 1, byte(tp >> 8), byte(tp)}) + string(ta.AsSlice()) + "x\x00",
		fmt.Sprintf("PROXY TCP4 %s %s 1234 %d\r\n", ta, ta, tp),
	}
	for _, p := range probes {
		c := srv.dial(t, 1025)
		c.Write([]byte(p))
		got := make([]byte, len(p))
		if _, err := ioReadFull(c, got); err != nil || string(got) != p {
			t.Fatalf("probe %q: echoed %q, %v", p, got, err)
		}
		c.Close()
	}
	eventually(t, "relays done", func() bool { return svc.running.Load() == 0 })
	mu.Lock()
	defer mu.Unlock()
	if len(dialed) != len(probes) {
		t.Fatalf("%d connects for %d clients: %v", len(dialed), len(probes), dialed)
	}
	for _, ap := range dialed {
		if ap != back.Addr {
			t.Errorf("connected to %s, not the backend %s", ap, back.Addr)
		}
	}
	if n := trap.accepted.Load(); n != 0 {
		t.Errorf("the other listener got %d connections", n)
	}
	if back.accepted.Load() != int64(len(probes)) {
		t.Errorf("backend accepted %d", back.accepted.Load())
	}
}

// TestDialGuard: the last guard before connect refuses any address that is not the
// backend's, even one a resolver returned for a different port.
func TestDialGuard(t *testing.T) {
	back := startBackend(t, echoBackend(""))
	svc, _ := oneProxy(t, back.Addr.String(), "", nil)
	conf := *svc.proxies[0].proxyConf
	conf.Backend = backend{Host: "localhost", Port: int(back.Addr.Port())}
	p := &proxy{proxyConf: &conf, sem: make(chan struct{}, 1)}
	// localhost resolves to 127.0.0.1 (and ::1), where this test's backend does not
	// listen: the connect goes to the resolved addresses only, and fails there.
	var seen []netip.AddrPort
	svc.dialed = func(ap netip.AddrPort) { seen = append(seen, ap) }
	_, _, stage, err := svc.dial(t.Context(), p)
	if err == nil || stage != "connect" {
		t.Fatalf("dial: %v at %q", err, stage)
	}
	for _, ap := range seen {
		if !ap.Addr().IsLoopback() || ap.Port() != back.Addr.Port() || ap.Addr() == back.Addr.Addr() {
			t.Errorf("connected to %s", ap)
		}
	}
	if !errors.Is(fmt.Errorf("x: %w", errNotConfigured), errNotConfigured) || dialError(fmt.Errorf("x: %w", errNotConfigured)) != "refused: address is not the configured backend" {
		t.Error("dialError")
	}
}

// TestHalfClose: a client that sends its request and shuts its side down still gets the
// whole answer, which the backend sends only after it saw the end of the request.
func TestHalfClose(t *testing.T) {
	back := startBackend(t, func(c net.Conn, b *testBackend) {
		req := readAll(c) // until the proxy passes the client's FIN on
		b.record([]byte(req))
		c.Write([]byte(strings.ToUpper(req)))
	})
	svc, srv := oneProxy(t, back.Addr.String(), "", nil)
	c := srv.dial(t, 1025)
	c.Write([]byte("read register 1054"))
	c.CloseWrite()
	if got := readAll(c); got != "READ REGISTER 1054" {
		t.Fatalf("answer %q", got)
	}
	e := srv.waitEvent(t, "end")
	if field(e, "closed_by") != "client" || field(e, "bytes_in") != int64(18) || field(e, "bytes_out") != int64(18) {
		t.Errorf("end %+v", e.Fields)
	}
	eventually(t, "relay done", func() bool { return svc.running.Load() == 0 })
}

// TestByteLimits: past max_bytes_in the backend gets exactly the limit and the connection
// closes; likewise past max_bytes_out for the answer.
func TestByteLimits(t *testing.T) {
	t.Run("in", func(t *testing.T) {
		back := startBackend(t, echoBackend(""))
		_, srv := oneProxy(t, back.Addr.String(), "", func(o *Options) { o.MaxBytesIn = 1000 })
		c := srv.dial(t, 1025)
		c.Write(make([]byte, 1500))
		readAll(c)
		e := srv.waitEvent(t, "end")
		if field(e, "closed_by") != "byte_limit_in" || field(e, "bytes_in") != int64(1000) {
			t.Errorf("end %+v", e.Fields)
		}
		eventually(t, "backend got the limit", func() bool { return len(back.Received()) == 1000 })
	})
	t.Run("out", func(t *testing.T) {
		back := startBackend(t, func(c net.Conn, b *testBackend) { c.Write(make([]byte, 100000)); readAll(c) })
		_, srv := oneProxy(t, back.Addr.String(), "", func(o *Options) { o.MaxBytesOut = 5000 })
		c := srv.dial(t, 1025)
		if got := readAll(c); len(got) != 5000 {
			t.Fatalf("client got %d bytes", len(got))
		}
		e := srv.waitEvent(t, "end")
		if field(e, "closed_by") != "byte_limit_out" || field(e, "bytes_out") != int64(5000) {
			t.Errorf("end %+v", e.Fields)
		}
	})
}

// TestIdle: a relay where neither side says anything is closed after idle_timeout.
func TestIdle(t *testing.T) {
	back := startBackend(t, func(c net.Conn, b *testBackend) { readAll(c) })
	_, srv := oneProxy(t, back.Addr.String(), "", func(o *Options) { o.IdleTimeout = Duration{100 * time.Millisecond} })
	c := srv.dial(t, 1025)
	if got := readAll(c); got != "" {
		t.Fatalf("got %q", got)
	}
	if e := srv.waitEvent(t, "end"); field(e, "closed_by") != "idle" {
		t.Errorf("end %+v", e.Fields)
	}
}

// TestBackendConnectionCap: max_backend_connections bounds what reaches the backend; the
// client past it is closed with an event.
func TestBackendConnectionCap(t *testing.T) {
	back := startBackend(t, echoBackend(""))
	_, srv := oneProxy(t, back.Addr.String(), "", func(o *Options) { o.MaxBackendConnections = 1 })
	first := srv.dial(t, 1025)
	first.Write([]byte("a"))
	ioReadFull(first, make([]byte, 1))
	second := srv.dial(t, 1025)
	if got := readAll(second); got != "" {
		t.Fatalf("second got %q", got)
	}
	e := srv.waitEvent(t, "backend_error")
	if field(e, "stage") != "limit" {
		t.Errorf("backend_error %+v", e.Fields)
	}
	if back.accepted.Load() != 1 {
		t.Errorf("backend accepted %d", back.accepted.Load())
	}
}

// TestChunkEventBudget: past max_chunk_events the chunks are relayed and counted only.
func TestChunkEventBudget(t *testing.T) {
	back := startBackend(t, echoBackend(""))
	_, srv := oneProxy(t, back.Addr.String(), "", func(o *Options) { o.MaxChunkEvents = 4 })
	c := srv.dial(t, 1025)
	for i := range 10 {
		msg := fmt.Sprintf("msg %d", i)
		c.Write([]byte(msg))
		got := make([]byte, len(msg))
		if _, err := ioReadFull(c, got); err != nil || string(got) != msg {
			t.Fatalf("%q %v", got, err)
		}
	}
	c.Close()
	e := srv.waitEvent(t, "end")
	n := len(srv.events.OfType("proxy.request")) + len(srv.events.OfType("proxy.response"))
	if n != 4 || field(e, "events_skipped") != int64(16) || field(e, "chunks_in") != int64(10) {
		t.Errorf("%d chunk events; end %+v", n, e.Fields)
	}
}

// TestNoGoroutineLeak: after many connections ending every way (normal close, reset,
// half-close, a backend that is down, open when the server stops) no relay goroutine is
// left: the service's counter is back at zero and so is the process's goroutine count.
func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	var svc, downSvc *service
	t.Run("traffic", func(t *testing.T) {
		back := startBackend(t, echoBackend(""))
		var srv *server
		svc, srv = oneProxy(t, back.Addr.String(), "", nil)
		for i := range 30 {
			c := srv.dial(t, 1025)
			c.Write([]byte("ping"))
			ioReadFull(c, make([]byte, 4))
			switch i % 3 {
			case 0:
				c.SetLinger(0) // reset
				c.Close()
			case 1:
				c.CloseWrite()
				readAll(c)
			default:
				c.Close()
			}
		}
		var down *server
		downSvc, down = oneProxy(t, closedPort(t).String(), "", nil)
		for range 5 {
			readAll(down.dial(t, 1025))
		}
		// These are still relaying when the test's servers stop.
		for range 5 {
			c := srv.dial(t, 1025)
			c.Write([]byte("ping"))
			ioReadFull(c, make([]byte, 4))
		}
		eventually(t, "only the open relays left", func() bool { return svc.running.Load() == 2*5 })
	})
	if n := svc.running.Load() + downSvc.running.Load(); n != 0 {
		t.Fatalf("%d relay goroutines left", n)
	}
	eventually(t, "goroutines back to the start", func() bool { return runtime.NumGoroutine() <= before })
}

// TestLogLimiter: one line per interval, the rest counted.
func TestLogLimiter(t *testing.T) {
	var l logLimiter
	if n, ok := l.allow(); !ok || n != 0 {
		t.Fatal("first line held")
	}
	for range 5 {
		if _, ok := l.allow(); ok {
			t.Fatal("a second line within the interval")
		}
	}
	l.last.Store(time.Now().Add(-logInterval).UnixNano())
	if n, ok := l.allow(); !ok || n != 5 {
		t.Fatalf("after the interval: %d, %v", n, ok)
	}
}
