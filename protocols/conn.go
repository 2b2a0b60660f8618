package protocols

import (
	"net"
	"time"
)

// TimeoutConn wraps a connection so that every Read must complete within Idle and every
// Write within WriteTimeout. Handlers then need no deadline code of their own.
type TimeoutConn struct {
	net.Conn
	Idle         time.Duration
	WriteTimeout time.Duration
}

// Read implements net.Conn with an idle deadline.
func (c *TimeoutConn) Read(b []byte) (int, error) {
	if c.Idle > 0 {
		if err := c.Conn.SetReadDeadline(time.Now().Add(c.Idle)); err != nil {
			return 0, err
		}
	}
	return c.Conn.Read(b)
}

// Write implements net.Conn with a write deadline.
func (c *TimeoutConn) Write(b []byte) (int, error) {
	if c.WriteTimeout > 0 {
		if err := c.Conn.SetWriteDeadline(time.Now().Add(c.WriteTimeout)); err != nil {
			return 0, err
		}
	}
	return c.Conn.Write(b)
}
