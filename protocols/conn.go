package protocols

import (
	"errors"
	"net"
	"os"
	"sync/atomic"
	"time"
)

// TimeoutConn wraps a connection so that every Read must complete within Idle (counted
// from its start, or from the start of a Write since the last Read) and every Write within
// WriteTimeout. Handlers then need no deadline code of their own; a deadline a
// handler sets itself (net/http's header timeout, say) still applies when it is earlier.
//
// With RequestTimeout and Progress set, a request must also be complete within
// RequestTimeout of its first byte: the clock starts when a Read returns data and stops
// when Progress (the session's count of completed requests) moves on, so a client trickling
// a byte at a time cannot hold the connection past that bound.
//
// The deadlines are armed lazily: a deadline already set on the connection is kept while it
// is no later than the bound the call must honour and not about to pass, so a busy
// connection re-arms its timers every few seconds rather than on every call (each re-arm
// is a timer-heap update). A kept deadline may fire before the call's own bound; the call
// then re-arms and goes on, so the bounds are exact and only the wake-ups are early.
type TimeoutConn struct {
	net.Conn
	Idle           time.Duration
	WriteTimeout   time.Duration
	RequestTimeout time.Duration
	Progress       func() int64
	// Session, when set, is told when every Read that returns data returned, with the clock
	// reading Read takes anyway: its Request marks it active at that time and its
	// RequestTime returns it, with no clock reading of their own.
	Session *Session

	readAt  int64        // when the last Read that returned data returned (unix ns); 0: not read
	wroteAt atomic.Int64 // when the last Write began (unix ns); 0: not read

	readDL, writeDL atomic.Int64 // deadlines the handler set, unix nanoseconds; 0 for none
	// rStale and wStale say the handler set a deadline on the connection since Read or
	// Write last armed one: what is armed there is no longer known.
	rStale, wStale atomic.Bool
	reqStart       int64 // when the current request's first byte came; 0 between requests
	seen           int64 // Progress at the last Read
	// The deadlines Read and Write last set on the connection (unix nanoseconds, 0: none)
	// and whether they are known; each is touched by its own caller only.
	armedR, armedW int64
	knownR, knownW bool
}

// Read implements net.Conn with an idle deadline and, if configured, a request deadline.
// Reads of one connection come from one goroutine at a time, as net.Conn users do.
func (c *TimeoutConn) Read(b []byte) (int, error) {
	timed := c.RequestTimeout > 0 && c.Progress != nil
	if c.Idle <= 0 && !timed && c.Session == nil {
		return c.Conn.Read(b)
	}
	// The idle timeout runs from when this Read began. A Write that began after the last
	// Read returned stands in for that clock reading (a request-response loop reads right
	// after it wrote its answer), which spares one per request; the bound is then early by
	// how long that Write took, at most WriteTimeout with a client that stopped reading.
	start := c.wroteAt.Load()
	if start == 0 || start < c.readAt {
		start = time.Now().UnixNano()
	}
	if timed {
		if p := c.Progress(); p != c.seen {
			c.seen, c.reqStart = p, 0
		}
	}
	lead := c.readLead(timed)
	now := start
	for {
		bound := c.readBound(start, timed)
		if err := c.arm(&c.armedR, &c.knownR, &c.rStale, bound, now, lead, c.Conn.SetReadDeadline); err != nil {
			return 0, err
		}
		if c.rStale.Load() {
			continue // the handler set a deadline meanwhile: honour it
		}
		n, err := c.Conn.Read(b)
		if n > 0 && (timed && c.reqStart == 0 || c.Session != nil) {
			c.readAt = time.Now().UnixNano()
			if timed && c.reqStart == 0 {
				c.reqStart = c.readAt
			}
			if c.Session != nil {
				c.Session.heardAt(c.readAt)
			}
		}
		if n == 0 && err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
			// A kept deadline fired early, or the handler moved its own: go on while the
			// call's bound is ahead.
			now = time.Now().UnixNano()
			if bound = c.readBound(start, timed); bound == 0 || bound > now {
				c.knownR = false
				continue
			}
		}
		return n, err
	}
}

// readBound is the deadline a Read that began at start must honour: the idle timeout, the
// request timeout and the handler's deadline, whichever is first (0: none).
func (c *TimeoutConn) readBound(start int64, timed bool) int64 {
	var dl int64
	if c.Idle > 0 {
		dl = start + int64(c.Idle)
	}
	if timed && c.reqStart != 0 {
		dl = first(dl, c.reqStart+int64(c.RequestTimeout))
	}
	return first(dl, c.readDL.Load())
}

// readLead is how close to passing an armed read deadline may come before a Read re-arms
// it: a quarter of the shortest timeout.
func (c *TimeoutConn) readLead(timed bool) int64 {
	d := c.Idle
	if timed && (d <= 0 || c.RequestTimeout < d) {
		d = c.RequestTimeout
	}
	return int64(d / 4)
}

// arm makes sure the deadline on the connection is no later than bound (0: none) and not
// within lead of now, setting it to bound when it is not.
func (c *TimeoutConn) arm(armed *int64, known *bool, stale *atomic.Bool, bound, now, lead int64, set func(time.Time) error) error {
	if stale.Load() {
		*known = false
	}
	if *known {
		if bound == 0 && *armed == 0 {
			return nil
		}
		if bound != 0 && *armed != 0 && *armed <= bound && *armed-now > lead {
			return nil
		}
	}
	stale.Store(false)
	var t time.Time // none
	if bound != 0 {
		t = time.Unix(0, bound)
	}
	if err := set(t); err != nil {
		*known = false
		return err
	}
	*armed, *known = bound, !stale.Load() // a handler's deadline set meanwhile wins
	return nil
}

// Write implements net.Conn with a write deadline.
func (c *TimeoutConn) Write(b []byte) (int, error) {
	if c.WriteTimeout <= 0 {
		return c.Conn.Write(b)
	}
	start := time.Now().UnixNano()
	c.wroteAt.Store(start)
	now, lead := start, int64(c.WriteTimeout/4)
	total := 0
	for {
		bound := first(start+int64(c.WriteTimeout), c.writeDL.Load())
		if err := c.arm(&c.armedW, &c.knownW, &c.wStale, bound, now, lead, c.Conn.SetWriteDeadline); err != nil {
			return total, err
		}
		if c.wStale.Load() {
			continue
		}
		n, err := c.Conn.Write(b[total:])
		total += n
		if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
			now = time.Now().UnixNano()
			if first(start+int64(c.WriteTimeout), c.writeDL.Load()) > now {
				c.knownW = false
				continue
			}
		}
		return total, err
	}
}

// ReadAt returns when the last Read that returned data returned (unix nanoseconds), if Read
// read the clock for it (a request timeout or a Session to mark); 0 otherwise. Call it from
// the goroutine that reads.
func (c *TimeoutConn) ReadAt() int64 { return c.readAt }

// WroteAt returns when the last Write began (unix nanoseconds), if Write read the clock for
// it (a write timeout); 0 otherwise.
func (c *TimeoutConn) WroteAt() int64 { return c.wroteAt.Load() }

// CloseWrite half-closes the connection (a TCP FIN) when the wrapped connection can, so
// a relay can pass a client's or a backend's end of stream on; errors.ErrUnsupported
// otherwise.
func (c *TimeoutConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// SetDeadline implements net.Conn.
func (c *TimeoutConn) SetDeadline(t time.Time) error {
	c.readDL.Store(nanos(t))
	c.writeDL.Store(nanos(t))
	c.rStale.Store(true)
	c.wStale.Store(true)
	return c.Conn.SetDeadline(t)
}

// SetReadDeadline implements net.Conn.
func (c *TimeoutConn) SetReadDeadline(t time.Time) error {
	c.readDL.Store(nanos(t))
	c.rStale.Store(true)
	return c.Conn.SetReadDeadline(t)
}

// SetWriteDeadline implements net.Conn.
func (c *TimeoutConn) SetWriteDeadline(t time.Time) error {
	c.writeDL.Store(nanos(t))
	c.wStale.Store(true)
	return c.Conn.SetWriteDeadline(t)
}

// RequestTimedOut reports whether the request deadline has passed with a request
// incomplete: the connection was (or is about to be) closed for trickling.
func (c *TimeoutConn) RequestTimedOut() bool {
	return c.RequestTimeout > 0 && c.reqStart != 0 && time.Since(time.Unix(0, c.reqStart)) >= c.RequestTimeout
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// first returns the earlier of two deadlines in unix nanoseconds, 0 standing for none.
func first(a, b int64) int64 {
	if a == 0 || b != 0 && b < a {
		return b
	}
	return a
}
