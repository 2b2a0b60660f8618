package pipe

import (
	"crypto/tls"
	"errors"
	"net"
	"syscall"
	"time"
)

// PeerClosed reports whether the peer of a TCP or TLS connection has closed it or reset
// it, without blocking on an idle connection. A sink whose peer never sends application
// data (a syslog collector) learns this way, before it writes, that a write would go
// nowhere. The socket is peeked at without consuming data; when a TLS peer has sent
// something (a session ticket, a close_notify alert), the TLS connection reads it with a
// short deadline, which processes it (application data is discarded). A UDP socket reports
// a pending ICMP refusal. Other connections report false.
func PeerClosed(c net.Conn) bool {
	tc, isTLS := c.(*tls.Conn)
	if isTLS {
		c = tc.NetConn()
	}
	closed, pending := Peek(c)
	if closed || !pending || !isTLS {
		return closed
	}
	var buf [64]byte
	if err := tc.SetReadDeadline(time.Now().Add(5 * time.Millisecond)); err != nil {
		return true
	}
	for {
		_, err := tc.Read(buf[:])
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return false
		}
		if err != nil {
			return true
		}
	}
}

// Peek looks at the socket of a TCP (or UDP) connection without consuming and without
// blocking: closed when the peer shut it down or reset it (or ICMP refused a datagram),
// pending when data waits. Other connections report neither.
func Peek(c net.Conn) (closed, pending bool) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false, false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true, false
	}
	var buf [1]byte
	err = rc.Read(func(fd uintptr) bool {
		n, _, rerr := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case rerr == nil:
			closed, pending = n == 0, n > 0 // n == 0: an orderly shutdown
		case errors.Is(rerr, syscall.EAGAIN), errors.Is(rerr, syscall.EINTR):
		default:
			closed = true // ECONNRESET and the like
		}
		return true // never wait for readiness
	})
	return closed || err != nil, pending
}
