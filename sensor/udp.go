package sensor

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/icsnare/icsnare/protocols"
)

// maxDatagram bounds a received datagram; larger ones are truncated by the kernel.
const maxDatagram = 9216

// udpListener is one socket serving every host on one port. The destination address of
// each datagram (IP_PKTINFO / IPV6_PKTINFO) picks the host, and the reply leaves from it.
type udpListener struct {
	conn *net.UDPConn
	p4   *ipv4.PacketConn // set for IPv4 sockets
	p6   *ipv6.PacketConn // set for IPv6 sockets
	port uint16
}

func newUDPListener(c *net.UDPConn, v6 bool, port uint16) (*udpListener, error) {
	l := &udpListener{conn: c, port: port}
	c.SetReadBuffer(4 << 20)
	c.SetWriteBuffer(4 << 20)
	if v6 {
		l.p6 = ipv6.NewPacketConn(c)
		if err := l.p6.SetControlMessage(ipv6.FlagDst, true); err != nil {
			return nil, err
		}
	} else {
		l.p4 = ipv4.NewPacketConn(c)
		if err := l.p4.SetControlMessage(ipv4.FlagDst, true); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// read returns one datagram with its source and destination.
func (l *udpListener) read(buf []byte) (int, netip.AddrPort, netip.Addr, error) {
	var (
		n   int
		src net.Addr
		dst net.IP
		err error
	)
	if l.p4 != nil {
		var cm *ipv4.ControlMessage
		n, cm, src, err = l.p4.ReadFrom(buf)
		if cm != nil {
			dst = cm.Dst
		}
	} else {
		var cm *ipv6.ControlMessage
		n, cm, src, err = l.p6.ReadFrom(buf)
		if cm != nil {
			dst = cm.Dst
		}
	}
	if err != nil {
		return 0, netip.AddrPort{}, netip.Addr{}, err
	}
	ua, ok := src.(*net.UDPAddr)
	if !ok {
		return 0, netip.AddrPort{}, netip.Addr{}, errors.New("datagram without a UDP source")
	}
	from := ua.AddrPort()
	from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	d, ok := netip.AddrFromSlice(dst)
	if !ok {
		// No packet info (a socket bound to one address): the bound address is the host.
		d = l.conn.LocalAddr().(*net.UDPAddr).AddrPort().Addr()
	}
	return n, from, d.Unmap(), nil
}

// write sends resp to dst from the emulated host's address src.
func (l *udpListener) write(resp []byte, src netip.Addr, dst netip.AddrPort, timeout time.Duration) error {
	l.conn.SetWriteDeadline(time.Now().Add(timeout))
	to := net.UDPAddrFromAddrPort(dst)
	if l.p4 != nil {
		_, err := l.p4.WriteTo(resp, &ipv4.ControlMessage{Src: src.AsSlice()}, to)
		return err
	}
	_, err := l.p6.WriteTo(resp, &ipv6.ControlMessage{Src: src.AsSlice()}, to)
	return err
}

// readLoop is one of the socket's readers.
func (s *Sensor) readLoop(ctx context.Context, l *udpListener) {
	defer s.wg.Done()
	buf := make([]byte, maxDatagram)
	for {
		n, from, dst, err := l.read(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Debug("udp read failed", "port", l.port, "err", err)
			continue
		}
		s.handleDatagram(ctx, l, buf[:n], from, dst)
	}
}

func (s *Sensor) handleDatagram(ctx context.Context, l *udpListener, req []byte, from netip.AddrPort, dst netip.Addr) {
	h, ok := s.hosts.get(dst)
	if !ok {
		s.m.rejected.WithLabelValues("none", "unknown_host").Inc()
		return
	}
	ds, ok := h.dev.services[protocols.Endpoint{Transport: protocols.UDP, Port: int(l.port)}]
	if !ok {
		s.m.rejected.WithLabelValues("none", "no_service").Inc()
		return
	}
	ps, ok := ds.svc.(protocols.PacketService)
	if !ok {
		s.m.rejected.WithLabelValues(ds.protocol, "no_service").Inc()
		return
	}
	pc := s.protoCounters(ds.protocol)
	pc.in.Inc()
	pc.bytesIn.Add(float64(len(req)))
	local := netip.AddrPortFrom(dst, l.port)
	sess := s.flows.session(s, ds.protocol, h, local, from)
	var replied atomic.Bool
	reply := func(resp []byte) {
		if ctx.Err() != nil || replied.Swap(true) {
			return
		}
		if err := l.write(resp, dst, from, s.cfg.Limits.WriteTimeout.Duration); err != nil {
			s.log.Debug("udp reply failed", "protocol", ds.protocol, "err", err)
			return
		}
		pc.out.Inc()
		pc.bytesOut.Add(float64(len(resp)))
	}
	defer s.recoverHandler(ds.protocol, sess)
	ps.ServePacket(ctx, sess, req, reply)
}

// flowTable gives UDP datagrams of one (source, host, protocol) flow one session id until
// the flow is idle. It is bounded: past the cap, datagrams get a fresh session each.
type flowTable struct {
	mu    sync.Mutex
	flows map[flowKey]*flow
	max   int
	idle  time.Duration
}

type flowKey struct {
	src, dst netip.AddrPort
	proto    string
}

type flow struct {
	sess *protocols.Session
	last int64
}

func newFlowTable(max int, idle time.Duration) *flowTable {
	return &flowTable{flows: make(map[flowKey]*flow), max: max, idle: idle}
}

func (t *flowTable) session(s *Sensor, proto string, h *host, local, remote netip.AddrPort) *protocols.Session {
	k := flowKey{remote, local, proto}
	now := time.Now().UnixNano()
	t.mu.Lock()
	f, ok := t.flows[k]
	if ok {
		f.last = now
		t.mu.Unlock()
		return f.sess
	}
	full := len(t.flows) >= t.max
	t.mu.Unlock()
	sess := s.newSession(proto, protocols.UDP, h, local, remote)
	s.m.connections.WithLabelValues(proto, protocols.UDP).Inc()
	if full {
		return sess
	}
	t.mu.Lock()
	if f, ok := t.flows[k]; ok { // a concurrent reader created it
		t.mu.Unlock()
		return f.sess
	}
	t.flows[k] = &flow{sess: sess, last: now}
	t.mu.Unlock()
	return sess
}

// sweep forgets idle flows and returns how many remain.
func (t *flowTable) sweep() int {
	cut := time.Now().Add(-t.idle).UnixNano()
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, f := range t.flows {
		if f.last < cut {
			delete(t.flows, k)
		}
	}
	return len(t.flows)
}
