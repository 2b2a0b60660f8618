package sensor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/icsnare/icsnare/protocols"
)

// tcpListener is one socket serving every host on one port.
type tcpListener struct {
	ln   *net.TCPListener
	port uint16
}

// acceptLoop accepts until the listener closes, backing off on errors such as EMFILE.
func (s *Sensor) acceptLoop(ctx context.Context, l *tcpListener) {
	defer s.wg.Done()
	var backoff time.Duration
	for {
		c, err := l.ln.AcceptTCP()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			backoff = min(max(backoff*2, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed", "port", l.port, "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return
			}
			continue
		}
		backoff = 0
		s.handleConn(ctx, c, l.port)
	}
}

// handleConn dispatches a connection on its destination address, enforcing the caps.
func (s *Sensor) handleConn(ctx context.Context, c *net.TCPConn, port uint16) {
	local := c.LocalAddr().(*net.TCPAddr).AddrPort()
	remote := c.RemoteAddr().(*net.TCPAddr).AddrPort()
	local = netip.AddrPortFrom(local.Addr().Unmap(), local.Port())
	remote = netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port())
	reject := func(proto, reason string) {
		s.m.rejected.WithLabelValues(proto, reason).Inc()
		c.SetLinger(0)
		c.Close()
	}
	h, ok := s.hosts.get(local.Addr())
	if !ok {
		reject("none", "unknown_host")
		return
	}
	ds, ok := h.dev.services[protocols.Endpoint{Transport: protocols.TCP, Port: int(port)}]
	if !ok {
		reject("none", "no_service")
		return
	}
	stream, ok := ds.svc.(protocols.StreamService)
	if !ok {
		reject(ds.protocol, "no_service")
		return
	}
	// Caps: a full sensor or host first drops its stalest idle connection, as a device with
	// few slots drops stale sessions; only when every connection is busy is the new one refused.
	if s.activeConns.Add(1) > int64(s.cfg.Limits.MaxConnections) && !s.evictIdle(nil, ds.protocol, "global_cap") {
		s.activeConns.Add(-1)
		reject(ds.protocol, "global_cap")
		return
	}
	if h.conns.Add(1) > int32(s.cfg.Limits.MaxConnsPerHost) && !s.evictIdle(h, ds.protocol, "host_cap") {
		h.conns.Add(-1)
		s.activeConns.Add(-1)
		reject(ds.protocol, "host_cap")
		return
	}
	if why := s.sources.acquire(remote.Addr()); why != "" {
		h.conns.Add(-1)
		s.activeConns.Add(-1)
		reject(ds.protocol, why)
		return
	}
	sess := s.newSession(ds.protocol, protocols.TCP, h, local, remote)
	sess.Endpoint = ds.ep
	sess.Open(ctx, nil)
	entry := &connEntry{c: c, h: h, sess: sess}
	s.trackConn(c, entry)
	tc := s.tcpCounters(ds.protocol)
	tc.conns.Inc()
	tc.active.Inc()
	reqTimeout := s.cfg.Limits.RequestTimeout.Duration
	if rt, ok := ds.svc.(protocols.RequestTimeouter); ok {
		reqTimeout = rt.RequestTimeout(reqTimeout)
	}
	s.wg.Add(1)
	s.handlers.run(ctx, func() {
		defer s.wg.Done()
		defer func() {
			c.Close()
			s.trackConn(c, nil)
			s.sources.release(remote.Addr())
			h.conns.Add(-1)
			s.activeConns.Add(-1)
			tc.active.Dec()
		}()
		defer sess.Close() // runs after the disconnect event: ephemeral endpoints close with it
		cc := &countingConn{TimeoutConn: protocols.TimeoutConn{Conn: c,
			Idle: s.cfg.Limits.IdleTimeout.Duration, WriteTimeout: s.cfg.Limits.WriteTimeout.Duration,
			RequestTimeout: reqTimeout, Progress: sess.Requests, Session: sess},
			latency: tc.latency.Observer(sess.Stripe)}
		started := time.Now()
		sess.EmitPhase(protocols.PhaseStart, "connect")
		defer func() {
			in, out := cc.in.Load(), cc.out.Load()
			tc.bytesIn.Add(sess.Stripe, uint64(in))
			tc.bytesOut.Add(sess.Stripe, uint64(out))
			fields := []protocols.Field{protocols.F("duration_ms", time.Since(started).Milliseconds()),
				protocols.F("bytes_in", in), protocols.F("bytes_out", out), protocols.F("requests", sess.Requests())}
			switch {
			case entry.evicted.Load():
				fields = append(fields, protocols.F("closed_by", "eviction"))
			case cc.RequestTimedOut():
				s.m.closed.WithLabelValues(ds.protocol, "request_timeout").Inc()
				fields = append(fields, protocols.F("closed_by", "request_timeout"))
			}
			if sum := sess.Summary(); sum != nil {
				fields = append(fields, protocols.F("summarised", sum))
			}
			sess.EmitPhase(protocols.PhaseEnd, "disconnect", fields...)
		}()
		defer s.recoverHandler(ds.protocol, sess)
		stream.ServeConn(ctx, sess, cc)
	})
}

// recoverHandler turns a handler panic into a log line with a stack and a counter; only
// the one connection (or datagram) is lost.
func (s *Sensor) recoverHandler(proto string, sess *protocols.Session) {
	if r := recover(); r != nil {
		s.m.panics.WithLabelValues(proto).Inc()
		s.log.Error("protocol handler panicked; connection closed", "protocol", proto, "session", sess.ID,
			"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		sess.Emit("error", nil, nil, protocols.F("error", "internal error (handler panic)"))
	}
}

// countingConn counts payload bytes on top of the timeouts, and observes the response
// latency: from the first byte read after an answer to the next answer's first write.
type countingConn struct {
	protocols.TimeoutConn
	in, out atomic.Int64
	latency prometheus.Observer // nil: not observed
	asked   atomic.Int64        // when the unanswered request's first byte came (unix ns); 0: none
}

func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.TimeoutConn.Read(b)
	c.in.Add(int64(n))
	if n > 0 && c.latency != nil && c.asked.Load() == 0 {
		t := c.ReadAt() // the clock Read took, if it took one
		if t == 0 {
			t = time.Now().UnixNano()
		}
		c.asked.CompareAndSwap(0, t)
	}
	return n, err
}

// Write may run on another goroutine than Read (an answer a timer sends after the
// persona's latency, a relay's other direction): the request time is handed over
// atomically, and an answer observes at most one request.
func (c *countingConn) Write(b []byte) (int, error) {
	t := c.asked.Load()
	if t != 0 && !c.asked.CompareAndSwap(t, 0) {
		t = 0
	}
	n, err := c.TimeoutConn.Write(b)
	c.out.Add(int64(n))
	if t != 0 { // the answer began when Write did: its clock reading, if it took one
		at := c.WroteAt()
		if at == 0 {
			at = time.Now().UnixNano()
		}
		c.latency.Observe(float64(at-t) / 1e9)
	}
	return n, err
}
