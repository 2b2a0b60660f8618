package pipe

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fake is a peer that takes messages while up.
type fake struct {
	up    bool
	dials int
	got   []string
}

type fakeConn struct {
	f      *fake
	closed bool
}

func (f *fake) dial(context.Context) (Conn, error) {
	f.dials++
	if !f.up {
		return nil, errors.New("connection refused")
	}
	return &fakeConn{f: f}, nil
}

func (c *fakeConn) Send(m []byte) error {
	if !c.f.up || c.closed {
		return errors.New("broken pipe")
	}
	c.f.got = append(c.f.got, string(m))
	return nil
}
func (c *fakeConn) Alive() bool  { return c.f.up && !c.closed }
func (c *fakeConn) Close() error { c.closed = true; return nil }

func TestPipe(t *testing.T) {
	f := &fake{up: true}
	p := New(f.dial, Options{Name: "test", BackoffMin: time.Hour, BackoffMax: time.Hour, MaxBacklog: 1 << 10, MaxBacklogMessages: 3})
	buf := []byte("m0")
	if err := p.Send(buf); err != nil {
		t.Fatal(err)
	}
	buf[1] = 'X' // the caller reuses its buffer
	f.up = false
	for i := 1; i <= 5; i++ {
		err := p.Send([]byte("m" + strconv.Itoa(i)))
		if (i > 3) != (err != nil) || (err != nil && !errors.Is(err, ErrDropped)) {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	st := p.Stats()
	if st.Sent != 1 || st.Dropped != 2 || st.Backlog != 3 || f.dials != 1 || st.DialFails != 0 {
		t.Fatalf("stats %+v, %d dials: want no dial inside the back-off that the lost connection started", st, f.dials)
	}
	f.up = true
	p.Flush() // still inside the back-off
	if p.Backlog() != 3 {
		t.Fatal("Flush dialled inside the back-off")
	}
	if err := p.Close(); err != nil { // Close dials regardless
		t.Fatal(err)
	}
	if got := strings.Join(f.got, ","); got != "m0,m3,m4,m5" {
		t.Fatalf("peer got %s, want the first and the newest three, in order", got)
	}
}

func TestPipeTooLarge(t *testing.T) {
	f := &fake{}
	p := New(f.dial, Options{MaxBacklog: 4})
	if err := p.Send([]byte("12345")); !errors.Is(err, ErrDropped) || !strings.Contains(err.Error(), "exceeds the backlog") {
		t.Fatalf("Send = %v", err)
	}
	if st := p.Stats(); st.Dropped != 1 || st.Backlog != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestPipeCloseReportsLoss(t *testing.T) {
	f := &fake{}
	p := New(f.dial, Options{MaxBacklog: 1 << 10, CloseTimeout: 100 * time.Millisecond})
	p.Send([]byte("a"))
	p.Send([]byte("b"))
	err := p.Close()
	if !errors.Is(err, ErrDropped) || !strings.Contains(err.Error(), "2 undelivered") || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("Close = %v", err)
	}
	if st := p.Stats(); st.Dropped != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// TestPeerClosed: a TCP peer's close shows before the next write; an idle open connection
// does not look closed, and the check consumes nothing.
func TestPeerClosed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.75.53.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if PeerClosed(c) {
		t.Fatal("an open connection looks closed")
	}
	s.Write([]byte("x"))
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if _, pending := Peek(c); pending {
			break
		}
	}
	if PeerClosed(c) {
		t.Fatal("pending data looks like a close")
	}
	var b [1]byte
	if n, err := c.Read(b[:]); n != 1 || b[0] != 'x' || err != nil {
		t.Fatalf("the peek consumed the data: %d %v", n, err)
	}
	s.Close()
	for deadline := time.Now().Add(5 * time.Second); !PeerClosed(c); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the peer's close never showed")
		}
	}
}
