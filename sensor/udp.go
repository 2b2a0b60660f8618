package sensor

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/icsnare/icsnare/protocols"
)

// maxDatagram bounds a received datagram; larger ones are truncated by the kernel.
const maxDatagram = 9216

// udpListener is one socket serving every host on one port. The destination address of
// each datagram (IP_PKTINFO / IPV6_PKTINFO) picks the host, and the reply leaves from it.
type udpListener struct {
	conn *net.UDPConn
	raw  syscall.RawConn // for recvmmsg and sendmmsg
	v6   bool
	port uint16
}

func newUDPListener(c *net.UDPConn, v6 bool, port uint16) (*udpListener, error) {
	l := &udpListener{conn: c, v6: v6, port: port}
	c.SetReadBuffer(4 << 20)
	c.SetWriteBuffer(4 << 20)
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	l.raw = rc
	var serr error
	err = rc.Control(func(fd uintptr) {
		if v6 {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1)
		} else {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
		}
	})
	if err == nil {
		err = serr
	}
	return l, err
}

// oobSize holds one IPv4 or IPv6 packet-info control message.
var oobSize = unix.CmsgSpace(unix.SizeofInet6Pktinfo)

// pktinfoDst finds the datagram's destination address in its control messages.
func pktinfoDst(oob []byte) (netip.Addr, bool) {
	for len(oob) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		if h.Len < unix.SizeofCmsghdr || int(h.Len) > len(oob) {
			return netip.Addr{}, false
		}
		data := oob[unix.CmsgLen(0):h.Len]
		switch {
		case h.Level == unix.IPPROTO_IP && h.Type == unix.IP_PKTINFO && len(data) >= unix.SizeofInet4Pktinfo:
			// struct in_pktinfo { int ifindex; in_addr spec_dst; in_addr addr; }: addr is the header's destination.
			return netip.AddrFrom4([4]byte(data[8:12])), true
		case h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_PKTINFO && len(data) >= unix.SizeofInet6Pktinfo:
			return netip.AddrFrom16([16]byte(data[0:16])), true
		}
		next := unix.CmsgSpace(int(h.Len) - unix.CmsgLen(0))
		if next > len(oob) {
			break
		}
		oob = oob[next:]
	}
	return netip.Addr{}, false
}

// write sends resp to dst from the emulated host's address src.
func (l *udpListener) write(resp []byte, src netip.Addr, dst netip.AddrPort, timeout time.Duration) error {
	l.conn.SetWriteDeadline(time.Now().Add(timeout))
	var oob [64]byte
	var n int
	if l.v6 {
		n = unix.CmsgSpace(unix.SizeofInet6Pktinfo)
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		h.Level, h.Type = unix.IPPROTO_IPV6, unix.IPV6_PKTINFO
		h.SetLen(unix.CmsgLen(unix.SizeofInet6Pktinfo))
		a := src.As16()
		copy(oob[unix.CmsgLen(0):], a[:])
	} else {
		n = unix.CmsgSpace(unix.SizeofInet4Pktinfo)
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		h.Level, h.Type = unix.IPPROTO_IP, unix.IP_PKTINFO
		h.SetLen(unix.CmsgLen(unix.SizeofInet4Pktinfo))
		a := src.Unmap().As4()
		copy(oob[unix.CmsgLen(0)+4:], a[:]) // ipi_spec_dst: the source address to use
	}
	_, _, err := l.conn.WriteMsgUDPAddrPort(resp, oob[:n], dst)
	return err
}

// readLoop is one of the socket's readers. It takes up to udpBatchSize datagrams with one
// recvmmsg, serves them, and sends their answers together with one sendmmsg; at low rates a
// batch is one datagram, so answers are not held back.
func (s *Sensor) readLoop(ctx context.Context, l *udpListener) {
	defer s.wg.Done()
	in := newMmsgBatch(maxDatagram, oobSize)
	out := newUDPOut(l, s.cfg.Limits.WriteTimeout.Duration, func(err error) { s.log.Debug("udp reply failed", "port", l.port, "err", err) })
	for {
		n, err := l.readBatch(in)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Debug("udp read failed", "port", l.port, "err", err)
			continue
		}
		// One clock reading serves the batch: every datagram in it arrived by now, and
		// it is each one's arrival for its host, session, answer budgets and latency.
		now := time.Now()
		for i := 0; i < n; i++ {
			m := &in.msgs[i]
			from := in.from(i)
			dst, ok := pktinfoDst(in.oobs[i][:m.hdr.Controllen])
			if !ok {
				// No packet info (a socket bound to one address): the bound address is the host.
				dst = l.conn.LocalAddr().(*net.UDPAddr).AddrPort().Addr()
			}
			if !from.IsValid() {
				continue
			}
			s.handleDatagram(ctx, l, in.bufs[i][:min(int(m.n), maxDatagram)], from, dst.Unmap(), out, now)
		}
		out.flush()
	}
}

// handleDatagram serves one datagram that arrived at now; answers go into out (nil: sent
// at once).
func (s *Sensor) handleDatagram(ctx context.Context, l *udpListener, req []byte, from netip.AddrPort, dst netip.Addr, out *udpOut, now time.Time) {
	if s.isBroadcast(dst) {
		if s.allowDatagram("none", l.port, from.Addr(), req) { // one request, however many answer
			s.fanOut(ctx, l, req, from, dst)
		}
		return
	}
	h, ok := s.hosts.getAt(dst, now.UnixNano())
	if !ok {
		s.m.rejected.WithLabelValues("none", "unknown_host").Inc()
		return
	}
	var ds deviceService
	var ps protocols.PacketService
	var pc *protoCounters
	prompt := false
	if out != nil && out.last.dev == h.dev && h.dev != nil { // the reader's last lookup
		ds, ps, pc, prompt = out.last.ds, out.last.ps, out.last.pc, out.last.prompt
	} else {
		ds, ok = h.dev.services[protocols.Endpoint{Transport: protocols.UDP, Port: int(l.port)}]
		if !ok {
			s.m.rejected.WithLabelValues("none", "no_service").Inc()
			return
		}
		ps, ok = ds.svc.(protocols.PacketService)
		if !ok {
			s.m.rejected.WithLabelValues(ds.protocol, "no_service").Inc()
			return
		}
		pc = s.protoCounters(ds.protocol)
		prompt = protocols.RepliesPromptly(ps)
		if out != nil {
			out.last = serviceLookup{dev: h.dev, ds: ds, ps: ps, pc: pc, prompt: prompt}
		}
	}
	if !s.allowDatagram(ds.protocol, l.port, from.Addr(), req) {
		return
	}
	sess := s.flows.session(ctx, s, l, ds.protocol, h, netip.AddrPortFrom(dst, l.port), from)
	pc.in.Inc(sess.Stripe)
	pc.bytesIn.Add(sess.Stripe, uint64(len(req)))
	sess.ReceivedAt(len(req), now)
	// Answers given while ServePacket runs join the reader's batch; later ones (from a
	// goroutine of the handler) are sent at once, since the batch may already have gone.
	// A service that replies only while ServePacket runs gets the reader's reply, reset for
	// this request; the others get one of their own, which they may keep.
	var r *udpReply
	if prompt && out != nil {
		r = out.reply
	} else {
		r = newUDPReply()
	}
	r.reset(s, ctx, l, sess, pc, out, now)
	r.serving.Store(true)
	defer r.serving.Store(false)
	defer s.recoverHandler(ds.protocol, sess)
	ps.ServePacket(ctx, sess, req, r.sendFn)
}

// serviceLookup is a reader's last lookup of its port's service on a host's device
// profile: the datagrams of one port mostly go to hosts of one profile, so a reader spares
// a map lookup, a type assertion and a locked counter lookup per datagram.
type serviceLookup struct {
	dev    *deviceProfile
	ds     deviceService
	ps     protocols.PacketService
	pc     *protoCounters
	prompt bool // ps replies only while ServePacket runs (protocols.PromptReplier)
}

// replier returns the reply function of one request: it sends from the session's host
// address to its source, at most MaxRepliesPerRequest times, never after the session or the
// sensor has stopped, and within budget (nil: unbounded) when the request was a broadcast.
// Each answer is sent at once.
func (s *Sensor) replier(ctx context.Context, l *udpListener, sess *protocols.Session, pc *protoCounters, budget *fanBudget) func([]byte) {
	r := &udpReply{s: s, ctx: ctx, l: l, sess: sess, pc: pc, budget: budget}
	return r.send
}

// udpReply is one request's reply function and its state, in one allocation. With out,
// answers are queued for the reader's next sendmmsg while serving is true.
type udpReply struct {
	s       *Sensor
	ctx     context.Context
	l       *udpListener
	sess    *protocols.Session
	pc      *protoCounters
	budget  *fanBudget
	out     *udpOut
	n       atomic.Int32
	serving atomic.Bool
	asked   time.Time    // when the request came, for the latency of its first answer (zero: not observed)
	sendFn  func([]byte) // send, bound once: what ServePacket gets
}

// newUDPReply returns a reply with its send function bound, for reset to make the reply of
// a request (a reader keeps one and reuses it for the requests of prompt repliers).
func newUDPReply() *udpReply {
	r := &udpReply{}
	r.sendFn = r.send
	return r
}

// reset makes r the reply of one request.
func (r *udpReply) reset(s *Sensor, ctx context.Context, l *udpListener, sess *protocols.Session, pc *protoCounters, out *udpOut, asked time.Time) {
	r.s, r.ctx, r.l, r.sess, r.pc, r.budget, r.out, r.asked = s, ctx, l, sess, pc, nil, out, asked
	r.n.Store(0)
}

func (r *udpReply) send(resp []byte) {
	s, sess := r.s, r.sess
	if r.ctx.Err() != nil || sess.Closed() {
		return
	}
	n := r.n.Add(1)
	if n > protocols.MaxRepliesPerRequest {
		s.m.repliesDropped.WithLabelValues(sess.Protocol, "replies").Inc()
		return
	}
	now := r.asked // an answer given while the request is served is charged at its arrival
	if now.IsZero() || !r.serving.Load() {
		now = time.Now()
	}
	if why := s.mayAnswerAt(sess, len(resp), now); why != "" {
		s.m.repliesDropped.WithLabelValues(sess.Protocol, why).Inc()
		return
	}
	if r.budget != nil && !r.budget.take(len(resp)) {
		s.m.broadcastCapped.WithLabelValues(sess.Protocol, "bytes").Inc()
		return
	}
	if r.out != nil && r.serving.Load() {
		r.out.add(resp, sess.Local.Addr(), sess.Remote)
	} else if err := r.l.write(resp, sess.Local.Addr(), sess.Remote, s.cfg.Limits.WriteTimeout.Duration); err != nil {
		s.log.Debug("udp reply failed", "protocol", sess.Protocol, "err", err)
		return
	}
	r.pc.out.Inc(sess.Stripe)
	r.pc.bytesOut.Add(sess.Stripe, uint64(len(resp)))
	if n == 1 && !r.asked.IsZero() {
		r.pc.latency.Observe(sess.Stripe, time.Since(r.asked).Seconds())
	}
}

// mayAnswer checks one answer datagram of n bytes against the request's amplification
// bound and the per-source and per-port byte budgets; it returns "" or why it must be
// dropped.
func (s *Sensor) mayAnswer(sess *protocols.Session, n int) string {
	return s.mayAnswerAt(sess, n, time.Now())
}

// mayAnswerAt is mayAnswer at time now.
func (s *Sensor) mayAnswerAt(sess *protocols.Session, n int, now time.Time) string {
	if !sess.TakeReply(n) {
		return "amplification"
	}
	return s.udpBytes.take(sess.Remote.Addr(), sess.Local.Port(), n, now)
}

// amplification is the bound for a protocol's unverified UDP sessions.
func (s *Sensor) amplification(proto string) float64 {
	if a, ok := s.cfg.Limits.UDPAmplificationPer[proto]; ok {
		return a
	}
	return s.cfg.Limits.UDPAmplification
}
