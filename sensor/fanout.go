package sensor

import (
	"context"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/icsnare/icsnare/protocols"
)

// limitedBroadcast is 255.255.255.255.
var limitedBroadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// broadcastAddr returns the directed broadcast address of an IPv4 prefix shorter than /31
// (whose first and last addresses are the network and broadcast addresses, not hosts).
func broadcastAddr(p netip.Prefix) (netip.Addr, bool) {
	if !p.Addr().Is4() || p.Bits() >= 31 || p.Bits() < 1 {
		return netip.Addr{}, false
	}
	a := p.Masked().Addr().As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v |= (1 << (32 - p.Bits())) - 1
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}

// isBroadcast reports whether dst is the limited broadcast address or the directed
// broadcast address of a served prefix.
func (s *Sensor) isBroadcast(dst netip.Addr) bool {
	if !dst.Is4() {
		return false
	}
	if dst == limitedBroadcast {
		return true
	}
	for _, ru := range s.hosts.rules {
		if b, ok := broadcastAddr(ru.prefix); ok && b == dst {
			return true
		}
	}
	return false
}

// fanPrefixes returns the prefixes a broadcast to dst reaches: the one whose broadcast
// address it is, or for 255.255.255.255 every served IPv4 prefix from /8 to /30 (a /0 rule
// means "every local address", not a network, and is never fanned out to).
func (s *Sensor) fanPrefixes(dst netip.Addr) []netip.Prefix {
	var out []netip.Prefix
	for _, ru := range s.hosts.rules {
		b, ok := broadcastAddr(ru.prefix)
		if !ok {
			continue
		}
		if dst == b {
			return []netip.Prefix{ru.prefix}
		}
		if dst == limitedBroadcast && ru.prefix.Bits() >= 8 {
			out = append(out, ru.prefix)
		}
	}
	return out
}

// fanBudget is the answer bytes one broadcast request may still cause.
type fanBudget struct{ left atomic.Int64 }

func (b *fanBudget) take(n int) bool {
	if b.left.Add(-int64(n)) < 0 {
		b.left.Add(int64(n))
		return false
	}
	return true
}

// fanOut serves a datagram sent to a broadcast address: every host of the addressed prefix
// whose profile runs a BroadcastService on the port answers from its own address, in its
// own session, up to limits.broadcast_max_hosts hosts and limits.broadcast_max_bytes answer
// bytes per request, and only limits.broadcast_per_source_per_minute requests per source.
func (s *Sensor) fanOut(ctx context.Context, l *udpListener, req []byte, from netip.AddrPort, dst netip.Addr) {
	lim := &s.cfg.Limits
	prefixes := s.fanPrefixes(dst)
	if len(prefixes) == 0 {
		s.m.rejected.WithLabelValues("none", "unknown_host").Inc()
		return
	}
	if !s.fanRate.allow(from.Addr(), time.Now()) {
		s.m.broadcastCapped.WithLabelValues("none", "rate").Inc()
		return
	}
	budget := &fanBudget{}
	budget.left.Store(int64(lim.BroadcastMaxBytes))
	ep := protocols.Endpoint{Transport: protocols.UDP, Port: int(l.port)}
	answered, examined := 0, 0
	proto := "none"
	for _, p := range prefixes {
		last, _ := broadcastAddr(p)
		for a := p.Masked().Addr().Next(); a.IsValid() && a != last; a = a.Next() {
			// Bounded work per request, even in a big prefix whose hosts mostly do not answer.
			if answered >= lim.BroadcastMaxHosts || examined >= 4*lim.BroadcastMaxHosts {
				s.m.broadcastCapped.WithLabelValues(proto, "hosts").Inc()
				return
			}
			if budget.left.Load() <= 0 {
				return // the reply that ran out counted it
			}
			examined++
			// Look at the profile first so hosts that would not answer are not materialised.
			dev, ok := s.hosts.match(a)
			if !ok {
				continue
			}
			ds, ok := dev.services[ep]
			if !ok {
				continue
			}
			bs, ok := ds.svc.(protocols.BroadcastService)
			if !ok {
				continue
			}
			h, ok := s.hosts.get(a)
			if !ok {
				continue
			}
			if answered == 0 {
				proto = ds.protocol
				s.m.broadcasts.WithLabelValues(proto).Inc()
			}
			answered++
			s.serveBroadcast(ctx, l, bs, ds.protocol, h, req, from, dst, budget)
		}
	}
}

func (s *Sensor) serveBroadcast(ctx context.Context, l *udpListener, bs protocols.BroadcastService, proto string, h *host,
	req []byte, from netip.AddrPort, dst netip.Addr, budget *fanBudget) {
	pc := s.protoCounters(proto)
	s.m.broadcastHosts.WithLabelValues(proto).Inc()
	sess := s.flows.session(ctx, s, l, proto, h, netip.AddrPortFrom(h.Addr, l.port), from)
	pc.in.Inc(sess.Stripe)
	pc.bytesIn.Add(sess.Stripe, uint64(len(req)))
	sess.Received(len(req))
	defer s.recoverHandler(proto, sess)
	bs.ServeBroadcast(ctx, sess, dst, req, s.replier(ctx, l, sess, pc, budget))
}

// maxRateSources bounds the sources a minuteCounter tracks in one minute; sources beyond it
// are refused until the next minute, so spoofed floods cannot grow memory.
const maxRateSources = 1 << 16

// minuteCounter allows a number of events per source per calendar minute, and a number
// from all sources together (0: no limit for that part).
type minuteCounter struct {
	perSource, global int

	mu      sync.Mutex
	minute  int64
	total   int
	sources map[netip.Addr]int
}

func newMinuteCounter(perSource, global int) *minuteCounter {
	return &minuteCounter{perSource: perSource, global: global, sources: map[netip.Addr]int{}}
}

func (c *minuteCounter) allow(src netip.Addr, now time.Time) bool {
	if c.perSource <= 0 && c.global <= 0 {
		return true
	}
	m := now.Unix() / 60
	c.mu.Lock()
	defer c.mu.Unlock()
	if m != c.minute {
		c.minute, c.total = m, 0
		clear(c.sources)
	}
	if c.global > 0 && c.total >= c.global {
		return false
	}
	if c.perSource > 0 {
		n, seen := c.sources[src]
		if n >= c.perSource || (!seen && len(c.sources) >= maxRateSources) {
			return false
		}
		c.sources[src] = n + 1
	}
	c.total++
	return true
}
