package protocols

import (
	"net"
	"sync/atomic"
	"time"
)

// TimeoutConn wraps a connection so that every Read must complete within Idle and every
// Write within WriteTimeout. Handlers then need no deadline code of their own; a deadline a
// handler sets itself (net/http's header timeout, say) still applies when it is earlier.
type TimeoutConn struct {
	net.Conn
	Idle         time.Duration
	WriteTimeout time.Duration

	readDL, writeDL atomic.Int64 // deadlines the handler set, unix nanoseconds; 0 for none
}

// Read implements net.Conn with an idle deadline.
func (c *TimeoutConn) Read(b []byte) (int, error) {
	if c.Idle > 0 {
		if err := c.Conn.SetReadDeadline(earliest(time.Now().Add(c.Idle), c.readDL.Load())); err != nil {
			return 0, err
		}
	}
	return c.Conn.Read(b)
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
