package sensor

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/icsnare/icsnare/protocols"
)

// portTries bounds the ports tried from the range before opening an endpoint fails.
const portTries = 32

// maxRefusedAccepts bounds the connections from other addresses an ephemeral TCP endpoint
// refuses before it gives up.
const maxRefusedAccepts = 16

// PortRange is an inclusive range of ports, read from TOML as "49152-65535".
type PortRange struct{ Lo, Hi int }

// UnmarshalText implements encoding.TextUnmarshaler.
func (r *PortRange) UnmarshalText(b []byte) error {
	lo, hi, ok := strings.Cut(strings.TrimSpace(string(b)), "-")
	if !ok {
		return fmt.Errorf("port range %q: want LOW-HIGH", b)
	}
	l, err1 := strconv.Atoi(strings.TrimSpace(lo))
	h, err2 := strconv.Atoi(strings.TrimSpace(hi))
	if err1 != nil || err2 != nil || l < 1 || h > 65535 || l > h {
		return fmt.Errorf("port range %q: want LOW-HIGH within 1-65535", b)
	}
	r.Lo, r.Hi = l, h
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (r PortRange) MarshalText() ([]byte, error) { return fmt.Appendf(nil, "%d-%d", r.Lo, r.Hi), nil }

// endpointOpener opens ephemeral endpoints for the sessions of one host.
type endpointOpener struct {
	s *Sensor
	h *host
}

// OpenUDP implements protocols.EndpointOpener.
func (o *endpointOpener) OpenUDP(sess *protocols.Session) (protocols.PacketEndpoint, error) {
	release, err := o.s.acquireEndpoint(o.h, sess.Protocol, protocols.UDP)
	if err != nil {
		return nil, err
	}
	var pc net.PacketConn
	port, err := o.s.bindEphemeral(func(lc *net.ListenConfig, addr string) error {
		var err error
		pc, err = lc.ListenPacket(sess.Context(), udpNet(sess.Local.Addr()), addr)
		return err
	}, sess.Local.Addr())
	if err != nil {
		release()
		return nil, err
	}
	ep := &udpEndpoint{conn: pc.(*net.UDPConn), port: port, sess: sess, release: release,
		idle: o.s.cfg.Limits.IdleTimeout.Duration, write: o.s.cfg.Limits.WriteTimeout.Duration,
		pc: o.s.protoCounters(sess.Protocol), budget: o.s.udpBytes, dropped: o.s.m.repliesDropped}
	ep.hook = sess.NewCloseHook(func() { ep.Close() })
	if !ep.hook.Add() {
		ep.Close()
		return nil, errors.New("too many endpoints for one session")
	}
	return ep, nil
}

// OpenTCP implements protocols.EndpointOpener.
func (o *endpointOpener) OpenTCP(sess *protocols.Session) (protocols.StreamEndpoint, error) {
	release, err := o.s.acquireEndpoint(o.h, sess.Protocol, protocols.TCP)
	if err != nil {
		return nil, err
	}
	var ln net.Listener
	port, err := o.s.bindEphemeral(func(lc *net.ListenConfig, addr string) error {
		var err error
		ln, err = lc.Listen(sess.Context(), tcpNet(sess.Local.Addr()), addr)
		return err
	}, sess.Local.Addr())
	if err != nil {
		release()
		return nil, err
	}
	ep := &tcpEndpoint{s: o.s, ln: ln.(*net.TCPListener), port: port, sess: sess, release: release}
	ep.hook = sess.NewCloseHook(func() { ep.Close() })
	if !ep.hook.Add() {
		ep.Close()
		return nil, errors.New("too many endpoints for one session")
	}
	return ep, nil
}

func udpNet(a netip.Addr) string {
	if a.Is4() {
		return "udp4"
	}
	return "udp6"
}

func tcpNet(a netip.Addr) string {
	if a.Is4() {
		return "tcp4"
	}
	return "tcp6"
}

// acquireEndpoint counts an endpoint against the global and the host's connection caps.
// The returned release gives the slots back; it is safe to call more than once.
func (s *Sensor) acquireEndpoint(h *host, proto, transport string) (func(), error) {
	if s.activeConns.Add(1) > int64(s.cfg.Limits.MaxConnections) {
		s.activeConns.Add(-1)
		s.m.rejected.WithLabelValues(proto, "global_cap").Inc()
		return nil, errors.New("ephemeral endpoint: the sensor's connection cap is reached")
	}
	if h.conns.Add(1) > int32(s.cfg.Limits.MaxConnsPerHost) {
		h.conns.Add(-1)
		s.activeConns.Add(-1)
		s.m.rejected.WithLabelValues(proto, "host_cap").Inc()
		return nil, errors.New("ephemeral endpoint: the host's connection cap is reached")
	}
	gauge := s.m.endpointsActive.WithLabelValues(transport)
	gauge.Inc()
	s.m.endpoints.WithLabelValues(proto, transport).Inc()
	var once sync.Once
	return func() {
		once.Do(func() {
			gauge.Dec()
			h.conns.Add(-1)
			s.activeConns.Add(-1)
		})
	}, nil
}

// bindEphemeral binds on addr at a random port of bind.ephemeral_ports, trying other ports
// when one is taken. The sockets are freebind so addresses routed to the sensor but not
// configured on it (XDP-steered prefixes) can be used too.
func (s *Sensor) bindEphemeral(listen func(lc *net.ListenConfig, addr string) error, addr netip.Addr) (int, error) {
	r := s.cfg.Bind.EphemeralPorts
	lc := &net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if strings.HasSuffix(network, "6") {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_FREEBIND, 1)
			} else {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_FREEBIND, 1)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	var err error
	for range portTries {
		port := r.Lo + rand.IntN(r.Hi-r.Lo+1)
		if err = listen(lc, net.JoinHostPort(addr.String(), strconv.Itoa(port))); err == nil {
			return port, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
	}
	return 0, fmt.Errorf("ephemeral endpoint on %s: %w", addr, err)
}

// udpEndpoint is an ephemeral UDP socket of one session.
type udpEndpoint struct {
	conn        *net.UDPConn
	port        int
	sess        *protocols.Session
	release     func()
	idle, write time.Duration
	pc          *protoCounters
	budget      *byteBudget
	dropped     *prometheus.CounterVec

	readDL atomic.Int64 // a deadline the service set, unix nanoseconds; 0 for none
	once   sync.Once
	// hook closes the endpoint with its session; Close takes it back, so a flow that opens
	// endpoints all its life (one per TFTP transfer) holds hooks for the open ones only.
	hook *protocols.CloseHook
}

func (e *udpEndpoint) Port() int { return e.port }

func (e *udpEndpoint) ReadFrom(b []byte) (int, netip.AddrPort, error) {
	dl := time.Now().Add(e.idle)
	if t := e.readDL.Load(); t != 0 && t < dl.UnixNano() {
		dl = time.Unix(0, t)
	}
	if err := e.conn.SetReadDeadline(dl); err != nil {
		return 0, netip.AddrPort{}, err
	}
	n, from, err := e.conn.ReadFromUDPAddrPort(b)
	if err != nil {
		return 0, netip.AddrPort{}, err
	}
	e.sess.Touch()
	e.pc.in.Inc(e.sess.Stripe)
	e.pc.bytesIn.Add(e.sess.Stripe, uint64(n))
	return n, netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), nil
}

func (e *udpEndpoint) WriteTo(b []byte, to netip.AddrPort) (int, error) {
	if why := e.budget.take(to.Addr(), e.sess.Local.Port(), len(b), time.Now()); why != "" {
		e.dropped.WithLabelValues(e.sess.Protocol, why).Inc()
		return 0, errors.New("answer dropped: " + why)
	}
	if err := e.conn.SetWriteDeadline(time.Now().Add(e.write)); err != nil {
		return 0, err
	}
	n, err := e.conn.WriteToUDPAddrPort(b, to)
	if err == nil {
		e.sess.Touch()
		e.pc.out.Inc(e.sess.Stripe)
		e.pc.bytesOut.Add(e.sess.Stripe, uint64(n))
	}
	return n, err
}

func (e *udpEndpoint) SetReadDeadline(t time.Time) error {
	if t.IsZero() {
		e.readDL.Store(0)
	} else {
		e.readDL.Store(t.UnixNano())
	}
	return nil
}

func (e *udpEndpoint) Close() error {
	var err error
	e.once.Do(func() {
		err = e.conn.Close()
		e.release()
		e.hook.Remove()
	})
	return err
}

// tcpEndpoint is an ephemeral TCP listener of one session that takes one connection.
type tcpEndpoint struct {
	s       *Sensor
	ln      *net.TCPListener
	port    int
	sess    *protocols.Session
	release func()

	mu        sync.Mutex
	conn      *net.TCPConn
	closed    bool
	closeOnce sync.Once // concurrent Close calls return only once the slot is free
	closeErr  error
	hook      *protocols.CloseHook // as udpEndpoint's
}

func (e *tcpEndpoint) Port() int { return e.port }

func (e *tcpEndpoint) Accept(ctx context.Context) (net.Conn, error) {
	stop := context.AfterFunc(ctx, func() { e.ln.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	stopSess := context.AfterFunc(e.sess.Context(), func() { e.ln.SetDeadline(time.Unix(1, 0)) })
	defer stopSess()
	if err := e.ln.SetDeadline(time.Now().Add(e.s.cfg.Limits.IdleTimeout.Duration)); err != nil {
		e.Close()
		return nil, err
	}
	want := e.sess.Remote.Addr()
	for range maxRefusedAccepts {
		c, err := e.ln.AcceptTCP()
		if err != nil {
			e.Close()
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("ephemeral endpoint %d: %w", e.port, err)
		}
		from := c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
		if from != want {
			e.s.m.rejected.WithLabelValues(e.sess.Protocol, "endpoint_foreign_source").Inc()
			c.SetLinger(0)
			c.Close()
			continue
		}
		e.ln.Close()
		e.mu.Lock()
		if e.closed {
			e.mu.Unlock()
			c.SetLinger(0)
			c.Close()
			return nil, net.ErrClosed
		}
		e.conn = c
		e.mu.Unlock()
		e.s.trackConn(c, &connEntry{c: c})
		e.sess.Touch()
		return &endpointConn{countingConn: countingConn{TimeoutConn: protocols.TimeoutConn{Conn: c,
			Idle: e.s.cfg.Limits.IdleTimeout.Duration, WriteTimeout: e.s.cfg.Limits.WriteTimeout.Duration}},
			ep: e}, nil
	}
	e.Close()
	return nil, fmt.Errorf("ephemeral endpoint %d: %d connections from other addresses refused", e.port, maxRefusedAccepts)
}

// Close closes the listener and the accepted connection, if any, and frees the slot.
// Every caller returns only once that is done.
func (e *tcpEndpoint) Close() error {
	e.closeOnce.Do(func() {
		e.mu.Lock()
		e.closed = true
		c := e.conn
		e.mu.Unlock()
		if err := e.ln.Close(); !errors.Is(err, net.ErrClosed) {
			e.closeErr = err
		}
		if c != nil {
			c.Close()
			e.s.trackConn(c, nil)
		}
		e.release()
		e.hook.Remove()
	})
	return e.closeErr
}

// endpointConn is the connection an ephemeral TCP endpoint accepted; closing it closes the
// endpoint. It keeps the owning session active while data flows.
type endpointConn struct {
	countingConn
	ep *tcpEndpoint
}

func (c *endpointConn) Read(b []byte) (int, error) {
	n, err := c.countingConn.Read(b)
	if n > 0 {
		c.ep.sess.Touch()
	}
	return n, err
}

func (c *endpointConn) Write(b []byte) (int, error) {
	n, err := c.countingConn.Write(b)
	if n > 0 {
		c.ep.sess.Touch()
	}
	return n, err
}

func (c *endpointConn) Close() error { return c.ep.Close() }
