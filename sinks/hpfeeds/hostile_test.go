package hpfeeds

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/sinks/internal/pipe"
)

// hostile runs a listener on the test address whose connections get serve.
func hostile(t *testing.T, serve func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", brokerAddr+":0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var conns []net.Conn
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
			go serve(c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// TestHostileBrokers: a peer that is not a broker, or a broken one, costs a clear dial
// error within dial_timeout, never a hang or an unbounded read; the event waits in the
// backlog.
func TestHostileBrokers(t *testing.T) {
	for _, tc := range []struct {
		name  string
		serve func(c net.Conn)
		want  string
	}{
		{"silent", func(c net.Conn) {}, "reading OP_INFO: read tcp"},
		{"huge length", func(c net.Conn) { c.Write([]byte{0x7f, 0xff, 0xff, 0xff, OpInfo}) }, "hpfeeds: too long: message of 2147483647 bytes (at most 65536)"},
		{"short length", func(c net.Conn) { c.Write([]byte{0, 0, 0, 1, OpInfo}) }, "length 1 is shorter than the header"},
		{"not info", func(c net.Conn) { m, _ := AppendMessage(nil, OpPublish, []byte{0, 0}); c.Write(m) }, "opcode 3 instead of OP_INFO"},
		{"error first", func(c net.Conn) { m, _ := AppendMessage(nil, OpError, []byte("go away")); c.Write(m) }, `OP_ERROR instead of OP_INFO: "go away"`},
		{"bad info", func(c net.Conn) { m, _ := AppendMessage(nil, OpInfo, []byte{200, 'x'}); c.Write(m) }, "OP_INFO: hpfeeds: malformed message: string runs past the message"},
		{"http server", func(c net.Conn) { c.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n")); c.Close() }, "too long"},
		{"close after auth", func(c net.Conn) {
			m, _ := AppendInfo(nil, "b", []byte{1})
			c.Write(m)
			ReadMessage(c, nil, MaxMessage)
			c.Close()
		}, `hpfeeds broker "b" closed the connection after OP_AUTH: ident "sensor-1" or its secret is wrong`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := hostile(t, tc.serve)
			s, _ := openSink(t, addr, func(o *Options) {
				// dial_timeout bounds the silent peer; auth_wait leaves a loaded machine time
				// to deliver the close after OP_AUTH.
				o.DialTimeout, o.AuthWait, o.CloseTimeout = 3*time.Second, 2*time.Second, 100*time.Millisecond
				o.ReconnectMin, o.ReconnectMax = time.Hour, time.Hour
			})
			if err := s.Write(testEvent(1)); err != nil {
				t.Fatal(err)
			}
			if st := s.Stats(); st.DialFails != 1 || st.Backlog != 1 || !strings.Contains(st.LastError, tc.want) {
				t.Fatalf("stats %+v, want a dial error containing %q", st, tc.want)
			}
			s.Close()
		})
	}
}

// TestStalledBroker: a broker that authenticates and then stops reading costs each publish
// at most write_timeout; what it did not take waits in the bounded backlog, and nothing
// blocks for good.
func TestStalledBroker(t *testing.T) {
	addr := hostile(t, func(c net.Conn) {
		m, _ := AppendInfo(nil, "stalled", []byte{1, 2, 3, 4})
		c.Write(m)
		ReadMessage(c, nil, MaxMessage)
		// and never read again
	})
	s, _ := openSink(t, addr, func(o *Options) {
		o.AuthWait, o.WriteTimeout, o.CloseTimeout = 100*time.Millisecond, 100*time.Millisecond, 100*time.Millisecond
		o.ReconnectMin, o.ReconnectMax = time.Hour, time.Hour
		o.Backlog = 1 << 20
	})
	e := testEvent(1)
	e.Request = make([]byte, 256<<10) // 512 KiB of hex per event: the socket buffers fill fast
	var dropped int
	for range 64 {
		if err := s.Write(e); errors.Is(err, pipe.ErrDropped) {
			dropped++
		} else if err != nil {
			t.Fatal(err)
		}
		if st := s.Stats(); strings.Contains(st.LastError, "i/o timeout") {
			break
		}
	}
	st := s.Stats()
	if !strings.Contains(st.LastError, "i/o timeout") || st.Backlog < 1 || st.BacklogSize > 1<<20 {
		t.Fatalf("stats %+v: want a write timeout and the event in the backlog, within its bound", st)
	}
	s.Close() // returns: it dials once more (the listener still accepts) and writes within write_timeout
}

// TestOversize: an event larger than one hpfeeds message is counted and reported, not sent.
func TestOversize(t *testing.T) {
	b := startBroker(t, "", testUsers)
	s, _ := openSink(t, b.addr(), nil)
	defer s.Close()
	e := &protocols.Event{Type: "http.request", Protocol: "http", Request: make([]byte, MaxMessage)}
	err := s.Write(e)
	if !errors.Is(err, ErrTooLong) || s.Stats().Oversize != 1 {
		t.Fatalf("Write = %v, stats %+v", err, s.Stats())
	}
	if err := s.Write(testEvent(1)); err != nil {
		t.Fatal(err)
	}
	if got := b.wait(1); len(got) != 1 {
		t.Fatalf("%d publications", len(got))
	}
}
