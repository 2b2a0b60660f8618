package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// tlsProxy configures one TLS proxy (no key pair in the template: a generated
// certificate) on port 1234 to backend over plain TCP.
func tlsProxy(t *testing.T, backend string, tune func(*Options)) (*service, *server) {
	t.Helper()
	dir := writeTemplate(t, `<proxies enabled="True">
  <proxy name="SSL proxy" port="1234" keyfile="ssl.key" certfile="ssl.crt">
    <proxy_host>192.0.2.1</proxy_host><proxy_port>443</proxy_port>
  </proxy>
</proxies>`)
	opts := DefaultOptions()
	opts.Backends = map[string]string{"SSL proxy": backend}
	opts.BackendTLS = map[string]bool{"SSL proxy": false}
	if tune != nil {
		tune(opts)
	}
	svc, prof, warnings := configure(t, dir, opts)
	if len(warnings) != 1 || !hasWarning(warnings, "serving a self-signed certificate") {
		t.Fatalf("warnings %q", warnings)
	}
	return svc, serve(t, svc, protocols.NewHost(testAddr(), prof, 11, time.Now()))
}

// TestPlainTextOnTLSPort: a scanner speaking HTTP to the TLS port gets the close a TLS
// server gives, and the event keeps what it asked.
func TestPlainTextOnTLSPort(t *testing.T) {
	back := startBackend(t, echoBackend(""))
	svc, srv := tlsProxy(t, back.Addr.String(), nil)
	c := srv.dial(t, 1234)
	c.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
	readAll(c)
	e := srv.waitEvent(t, "tls_error")
	if string(e.Request) != "GET / HTTP/1.0\r\n\r\n" {
		t.Errorf("tls_error request %q, fields %+v", e.Request, e.Fields)
	}
	if back.accepted.Load() != 0 {
		t.Error("the backend was connected for a failed handshake")
	}
	eventually(t, "relay done", func() bool { return svc.running.Load() == 0 })
}

// TestSilentTLSClient: a client that connects to the TLS port and says nothing is closed
// after handshake_timeout.
func TestSilentTLSClient(t *testing.T) {
	back := startBackend(t, echoBackend(""))
	_, srv := tlsProxy(t, back.Addr.String(), func(o *Options) { o.HandshakeTimeout = Duration{100 * time.Millisecond} })
	c := srv.dial(t, 1234)
	if got := readAll(c); got != "" {
		t.Fatalf("got %q", got)
	}
	srv.waitEvent(t, "tls_error")
}

// TestTLSRelay: a Go TLS client through the proxy to a plain backend; the certificate is
// the host's (ECDSA with generated_key p256), and concurrent first handshakes wait for one
// generation.
func TestTLSRelay(t *testing.T) {
	back := startBackend(t, echoBackend("> "))
	svc, srv := tlsProxy(t, back.Addr.String(), func(o *Options) { o.GeneratedKey = KeyP256 })
	var wg sync.WaitGroup
	certs := make([][]byte, 4)
	for i := range certs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := tls.Dial("tcp", srv.addrs[1234].String(), &tls.Config{InsecureSkipVerify: true, ServerName: "plc"})
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(20 * time.Second))
			c.Write([]byte("hi"))
			got := make([]byte, 4)
			if _, err := ioReadFull(c, got); err != nil || string(got) != "> hi" {
				t.Errorf("got %q %v", got, err)
			}
			certs[i] = c.ConnectionState().PeerCertificates[0].Raw
		}()
	}
	wg.Wait()
	for _, c := range certs[1:] {
		if string(c) != string(certs[0]) {
			t.Fatal("hosts served different certificates")
		}
	}
	if cert, err := x509.ParseCertificate(certs[0]); err != nil || cert.PublicKeyAlgorithm != x509.ECDSA {
		t.Errorf("generated_key p256: %v", err)
	}
	if svc.certs.lru.Len() != 1 {
		t.Errorf("%d certificates cached", svc.certs.lru.Len())
	}
	eventually(t, "relays done", func() bool { return svc.running.Load() == 0 })
}

// TestResets: resets from either side end the relay without a leak.
func TestResets(t *testing.T) {
	t.Run("client resets while the backend streams", func(t *testing.T) {
		back := startBackend(t, func(c net.Conn, b *testBackend) {
			chunk := make([]byte, 32<<10)
			for {
				if _, err := c.Write(chunk); err != nil {
					return
				}
			}
		})
		svc, srv := oneProxy(t, back.Addr.String(), "", func(o *Options) { o.MaxBytesOut = 1 << 30 })
		c := srv.dial(t, 1025)
		ioReadFull(c, make([]byte, 100000))
		c.SetLinger(0)
		c.Close()
		e := srv.waitEvent(t, "end")
		if r := field(e, "closed_by"); r != "client_write_error" && r != "client_error" {
			t.Errorf("closed_by %v", r)
		}
		eventually(t, "relay done", func() bool { return svc.running.Load() == 0 })
	})
	t.Run("backend resets", func(t *testing.T) {
		back := startBackend(t, func(c net.Conn, b *testBackend) {
			ioReadFull(c, make([]byte, 1))
			c.(*net.TCPConn).SetLinger(0)
		})
		svc, srv := oneProxy(t, back.Addr.String(), "", nil)
		c := srv.dial(t, 1025)
		c.Write([]byte("x"))
		readAll(c)
		e := srv.waitEvent(t, "end")
		if r := field(e, "closed_by"); r != "backend_error" && r != "backend" {
			t.Errorf("closed_by %v", r)
		}
		eventually(t, "relay done", func() bool { return svc.running.Load() == 0 })
	})
}

// TestBusyBackendIsNotIdle: a client that only listens while the backend sends now and then
// (within idle_timeout each time) stays connected past idle_timeout.
func TestBusyBackendIsNotIdle(t *testing.T) {
	back := startBackend(t, func(c net.Conn, b *testBackend) {
		for range 10 {
			c.Write([]byte("."))
			time.Sleep(300 * time.Millisecond)
		}
	})
	_, srv := oneProxy(t, back.Addr.String(), "", func(o *Options) { o.IdleTimeout = Duration{2 * time.Second} })
	c := srv.dial(t, 1025)
	if got := readAll(c); got != ".........." {
		t.Fatalf("got %q", got)
	}
	if e := srv.waitEvent(t, "end"); field(e, "closed_by") != "backend" {
		t.Errorf("end %+v", e.Fields)
	}
}

// TestShutdown: relays open when the sensor stops end with closed_by shutdown.
func TestShutdown(t *testing.T) {
	back := startBackend(t, echoBackend(""))
	var srv *server
	outer := t
	t.Run("serve", func(t *testing.T) {
		_, srv = oneProxy(t, back.Addr.String(), "", nil)
		c, err := net.Dial("tcp", srv.addrs[1025].String())
		if err != nil {
			t.Fatal(err)
		}
		outer.Cleanup(func() { c.Close() }) // after the server stopped
		c.Write([]byte("x"))
		ioReadFull(c, make([]byte, 1))
	})
	e := srv.waitEvent(t, "end")
	if field(e, "closed_by") != "shutdown" {
		t.Errorf("end %+v", e.Fields)
	}
}

// TestMaxDuration: a relay that keeps talking is still closed at max_duration.
func TestMaxDuration(t *testing.T) {
	back := startBackend(t, echoBackend(""))
	_, srv := oneProxy(t, back.Addr.String(), "", func(o *Options) { o.MaxDuration = Duration{300 * time.Millisecond} })
	c := srv.dial(t, 1025)
	for {
		if _, err := c.Write([]byte("tick")); err != nil {
			break
		}
		if _, err := ioReadFull(c, make([]byte, 4)); err != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if e := srv.waitEvent(t, "end"); field(e, "closed_by") != "max_duration" {
		t.Errorf("end %+v", e.Fields)
	}
}

// TestIPv6Backend: a backend on an IPv6 address.
func TestIPv6Backend(t *testing.T) {
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		if protocoltest.InCI() {
			t.Fatalf("no IPv6 loopback here: %v", err)
		}
		t.Skipf("no IPv6 loopback here: %v", err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Write([]byte("v6"))
			c.Close()
		}
	}()
	_, srv := oneProxy(t, ln.Addr().String(), "", nil)
	if got := readAll(srv.dial(t, 1025)); got != "v6" {
		t.Fatalf("got %q", got)
	}
	if e := srv.waitEvent(t, "backend_connect"); field(e, "backend_addr") != ln.Addr().String() {
		t.Errorf("backend_connect %+v", e.Fields)
	}
}

// TestManyClients: a burst of parallel clients, more than max_backend_connections: each is
// either relayed in full or refused with an event, and nothing is left running.
func TestManyClients(t *testing.T) {
	back := startBackend(t, echoBackend(""))
	svc, srv := oneProxy(t, back.Addr.String(), "", func(o *Options) { o.MaxBackendConnections = 16 })
	const n = 64
	var wg sync.WaitGroup
	var relayed, refused sync.Map
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", srv.addrs[1025].String())
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(20 * time.Second))
			msg := []byte("client " + strconv.Itoa(i))
			c.Write(msg)
			got := make([]byte, len(msg))
			if _, err := ioReadFull(c, got); err == nil && string(got) == string(msg) {
				relayed.Store(i, true)
				time.Sleep(50 * time.Millisecond) // hold the slot a while
				return
			}
			refused.Store(i, true)
		}()
	}
	wg.Wait()
	var nr, nf int
	relayed.Range(func(any, any) bool { nr++; return true })
	refused.Range(func(any, any) bool { nf++; return true })
	eventually(t, "relays done", func() bool { return svc.running.Load() == 0 && srv.conns.Load() == 0 })
	errs := len(srv.events.OfType("proxy.backend_error"))
	if nr+nf != n || nr < 16 || errs != nf || back.accepted.Load() != int64(nr) {
		t.Errorf("relayed %d, refused %d, backend_error events %d, backend accepted %d", nr, nf, errs, back.accepted.Load())
	}
	t.Logf("%d relayed, %d refused at the backend cap", nr, nf)
}
