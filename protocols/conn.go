package protocols

import (
	"errors"
	"net"
	"sync/atomic"
	"time"
)

// TimeoutConn wraps a connection so that every Read must complete within Idle and every
// Write within WriteTimeout. Handlers then need no deadline code of their own; a deadline a
// handler sets itself (net/http's header timeout, say) still applies when it is earlier.
//
// With RequestTimeout and Progress set, a request must also be complete within
// RequestTimeout of its first byte: the clock starts when a Read returns data and stops
// when Progress (the session's count of completed requests) moves on, so a client trickling
// a byte at a time cannot hold the connection past that bound.
type TimeoutConn struct {
	net.Conn
	Idle           time.Duration
	WriteTimeout   time.Duration
	RequestTimeout time.Duration
	Progress       func() int64

	readDL, writeDL atomic.Int64 // deadlines the handler set, unix nanoseconds; 0 for none
	reqStart        int64        // when the current request's first byte came; 0 between requests
	seen            int64        // Progress at the last Read
}

// Read implements net.Conn with an idle deadline and, if configured, a request deadline.
// Reads of one connection come from one goroutine at a time, as net.Conn users do.
func (c *TimeoutConn) Read(b []byte) (int, error) {
	timed := c.RequestTimeout > 0 && c.Progress != nil
	if c.Idle > 0 || timed {
		now := time.Now()
		dl := c.readDL.Load()
		if c.Idle > 0 {
			dl = earliest(now.Add(c.Idle), dl).UnixNano()
		}
		if timed {
			if p := c.Progress(); p != c.seen {
				c.seen, c.reqStart = p, 0
			}
			if c.reqStart != 0 {
				dl = earliest(time.Unix(0, c.reqStart+int64(c.RequestTimeout)), dl).UnixNano()
			}
		}
		var t time.Time // none: clears a request deadline set for the previous request
		if dl != 0 {
			t = time.Unix(0, dl)
		}
		if err := c.Conn.SetReadDeadline(t); err != nil {
			return 0, err
		}
	}
	n, err := c.Conn.Read(b)
	if timed && n > 0 && c.reqStart == 0 {
		c.reqStart = time.Now().UnixNano()
	}
	return n, err
}

// Write implements net.Conn with a write deadline.
func (c *TimeoutConn) Write(b []byte) (int, error) {
	if c.WriteTimeout > 0 {
		if err := c.Conn.SetWriteDeadline(earliest(time.Now().Add(c.WriteTimeout), c.writeDL.Load())); err != nil {
			return 0, err
		}
	}
	return c.Conn.Write(b)
}

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
	return c.Conn.SetDeadline(t)
}

// SetReadDeadline implements net.Conn.
func (c *TimeoutConn) SetReadDeadline(t time.Time) error {
	c.readDL.Store(nanos(t))
	return c.Conn.SetReadDeadline(t)
}

// SetWriteDeadline implements net.Conn.
func (c *TimeoutConn) SetWriteDeadline(t time.Time) error {
	c.writeDL.Store(nanos(t))
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

func earliest(t time.Time, dl int64) time.Time {
	if dl != 0 && dl < t.UnixNano() {
		return time.Unix(0, dl)
	}
	return t
}
