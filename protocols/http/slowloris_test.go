package http

import (
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// TestSlowloris holds 1,000 connections that trickle header lines forever and checks that
// another client is still served at once, and that the server cuts every trickling
// connection off when the request head timeout ends.
func TestSlowloris(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	const conns = 1000
	srv, _ := startProfile(t, protocoltest.Profile(t, protocoltest.Station), "127.0.0.1:0", func(s *service) { s.headerTimeout = 2 * time.Second })
	addr := srv.Addr.String()

	cs := make([]net.Conn, 0, conns)
	defer func() {
		for _, c := range cs {
			c.Close()
		}
	}()
	for range conns {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("dial %d: %v", len(cs), err)
		}
		cs = append(cs, c)
		if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	// One goroutine trickles a header line to every connection every 300 ms.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tk := time.NewTicker(300 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
			}
			for _, c := range cs {
				_ = c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
				_, _ = c.Write([]byte("X-a: b\r\n"))
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()

	// Another client is served while all of them are held.
	time.Sleep(500 * time.Millisecond)
	out := curl(t, "--max-time", "5", "-i", "http://"+addr+"/Login.htm")
	if !strings.HasPrefix(out, "HTTP/1.1 200 OK\r\n") {
		t.Fatalf("other client not served:\n%s", out)
	}

	// Every trickling connection is closed by the server (EOF or reset), none answered.
	var closed, answered atomic.Int64
	var rg sync.WaitGroup
	for _, c := range cs {
		rg.Add(1)
		go func(c net.Conn) {
			defer rg.Done()
			_ = c.SetReadDeadline(time.Now().Add(8 * time.Second))
			buf := make([]byte, 64)
			n, err := c.Read(buf)
			if n > 0 {
				answered.Add(1)
			}
			if err != nil && !isTimeout(err) {
				closed.Add(1)
			}
		}(c)
	}
	rg.Wait()
	if closed.Load() != conns || answered.Load() != 0 {
		t.Fatalf("%d of %d trickling connections closed, %d answered", closed.Load(), conns, answered.Load())
	}
	if n := len(srv.Events.OfType("http.timeout")); n != conns {
		t.Errorf("%d http.timeout events, want %d", n, conns)
	}
}
