package protocols

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// scriptConn is a net.Conn whose reads and writes follow a script and which records the
// deadlines set on it.
type scriptConn struct {
	net.Conn
	reads  []scriptStep
	writes []scriptStep
	rdl    []time.Time
	wdl    []time.Time
}

type scriptStep struct {
	n   int
	err error
}

func (c *scriptConn) Read(b []byte) (int, error) {
	if len(c.reads) == 0 {
		return 0, errors.New("script: no more reads")
	}
	s := c.reads[0]
	c.reads = c.reads[1:]
	return s.n, s.err
}

func (c *scriptConn) Write(b []byte) (int, error) {
	if len(c.writes) == 0 {
		return len(b), nil
	}
	s := c.writes[0]
	c.writes = c.writes[1:]
	return min(s.n, len(b)), s.err
}

func (c *scriptConn) SetReadDeadline(t time.Time) error  { c.rdl = append(c.rdl, t); return nil }
func (c *scriptConn) SetWriteDeadline(t time.Time) error { c.wdl = append(c.wdl, t); return nil }
func (c *scriptConn) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

func TestTimeoutConnArmsLazily(t *testing.T) {
	sc := &scriptConn{}
	for range 100 {
		sc.reads = append(sc.reads, scriptStep{n: 1})
	}
	c := &TimeoutConn{Conn: sc, Idle: time.Hour, WriteTimeout: time.Hour}
	buf := make([]byte, 8)
	for range 100 {
		if _, err := c.Read(buf); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(buf); err != nil {
			t.Fatal(err)
		}
	}
	if len(sc.rdl) != 1 || len(sc.wdl) != 1 {
		t.Fatalf("100 reads and writes set %d read and %d write deadlines, want 1 each", len(sc.rdl), len(sc.wdl))
	}
	if d := time.Until(sc.rdl[0]); d <= 0 || d > time.Hour {
		t.Fatalf("read deadline %v from now, want within the idle timeout", d)
	}
}

func TestTimeoutConnEarlyDeadlineRetries(t *testing.T) {
	// A kept deadline that passes before the call's own bound is not the call's timeout.
	sc := &scriptConn{reads: []scriptStep{{err: os.ErrDeadlineExceeded}, {n: 3}},
		writes: []scriptStep{{n: 2, err: os.ErrDeadlineExceeded}, {n: 6}}}
	c := &TimeoutConn{Conn: sc, Idle: time.Hour, WriteTimeout: time.Hour}
	if n, err := c.Read(make([]byte, 8)); n != 3 || err != nil {
		t.Fatalf("read: %d, %v; want 3 bytes after the early deadline", n, err)
	}
	if len(sc.rdl) != 2 {
		t.Fatalf("read deadlines %v: want one re-arm after the early one", sc.rdl)
	}
	if n, err := c.Write(make([]byte, 8)); n != 8 || err != nil {
		t.Fatalf("write: %d, %v; want all 8 bytes, the rest after the early deadline", n, err)
	}
}

func TestTimeoutConnRequestDeadline(t *testing.T) {
	sc := &scriptConn{reads: []scriptStep{{n: 1}, {n: 1}, {n: 1}}}
	var progress int64
	c := &TimeoutConn{Conn: sc, Idle: time.Hour, RequestTimeout: time.Minute, Progress: func() int64 { return progress }}
	buf := make([]byte, 1)
	c.Read(buf) // the request's first byte
	before := time.Now()
	c.Read(buf) // mid-request: the deadline must come within the request timeout
	if len(sc.rdl) != 2 || sc.rdl[1].After(before.Add(time.Minute)) {
		t.Fatalf("deadlines %v: the second read must be bound by the request timeout", sc.rdl)
	}
	progress++ // the request completed: the idle bound applies again, the armed deadline is kept
	c.Read(buf)
	if len(sc.rdl) != 2 {
		t.Fatalf("deadlines %v: an earlier armed deadline is kept between requests", sc.rdl)
	}
}

func TestTimeoutConnHandlerDeadlineWins(t *testing.T) {
	sc := &scriptConn{reads: []scriptStep{{n: 1}, {err: os.ErrDeadlineExceeded}}}
	c := &TimeoutConn{Conn: sc, Idle: time.Hour}
	c.Read(make([]byte, 1))
	past := time.Now().Add(-time.Second)
	c.SetReadDeadline(past)
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the handler's deadline: %v, want the deadline error", err)
	}
	if last := sc.rdl[len(sc.rdl)-1]; !last.Equal(past) {
		t.Fatalf("last deadline %v, want the handler's %v", last, past)
	}
}

// TestTimeoutConnSession: reads tell the session when data came (its RequestTime) without
// renewing its standing (LastActive): only a completed request (Request) does, at the time
// its last bytes came.
func TestTimeoutConnSession(t *testing.T) {
	s := &Session{}
	s.Touch()
	before := s.LastActive()
	c := &TimeoutConn{Conn: &scriptConn{reads: []scriptStep{{n: 3}, {n: 2}}}, Idle: time.Minute, Session: s}
	b := make([]byte, 8)
	if _, err := c.Read(b); err != nil {
		t.Fatal(err)
	}
	if !s.LastActive().Equal(before) {
		t.Fatalf("a read renewed the session's standing: %v, was %v", s.LastActive(), before)
	}
	heard := s.RequestTime()
	if heard.UnixNano() != c.ReadAt() || heard.Before(before) {
		t.Fatalf("RequestTime %v, ReadAt %d, session touched at %v", heard, c.ReadAt(), before)
	}
	if _, err := c.Read(b); err != nil {
		t.Fatal(err)
	}
	s.Request("read", false)
	if got := s.LastActive().UnixNano(); got != c.ReadAt() {
		t.Fatalf("Request marked the session active at %d, want the last read's %d", got, c.ReadAt())
	}
}

// TestTimeoutConnIdleFromWrite: a Read right after a Write counts its idle bound from the
// Write's start (the clock reading it took); a Read with no Write since the last one reads
// the clock itself.
func TestTimeoutConnIdleFromWrite(t *testing.T) {
	cases := []struct {
		name      string
		write     bool
		fromWrite bool
	}{
		{"after a write", true, true},
		{"after a read", false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sc := &scriptConn{reads: []scriptStep{{n: 1}, {n: 1}}}
			c := &TimeoutConn{Conn: sc, Idle: time.Hour, WriteTimeout: time.Hour, Session: &Session{}}
			b := make([]byte, 1)
			c.Read(b)
			if tc.write {
				c.Write(b)
			}
			c.SetReadDeadline(time.Time{}) // what is armed is no longer known: the next Read arms its bound
			c.Read(b)
			got := sc.rdl[len(sc.rdl)-1]
			if fromWrite := got.Equal(time.Unix(0, c.WroteAt()).Add(time.Hour)); fromWrite != tc.fromWrite {
				t.Errorf("deadline %v, write began %v: from the write %v, want %v", got, time.Unix(0, c.WroteAt()), fromWrite, tc.fromWrite)
			}
			if got.Before(time.Unix(0, c.ReadAt()).Add(time.Hour - time.Minute)) {
				t.Errorf("deadline %v long before an hour after the first read %v", got, time.Unix(0, c.ReadAt()))
			}
		})
	}
}
