package sensor

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/icsnare/icsnare/protocols"
)

// connEntry is one open connection: tracked for shutdown and, when a cap is reached, as a
// candidate for eviction.
type connEntry struct {
	c       net.Conn
	h       *host              // nil for connections that are never evicted (ephemeral data)
	sess    *protocols.Session // set once the session exists
	evicted atomic.Bool
}

func (s *Sensor) trackConn(c net.Conn, e *connEntry) {
	s.connMu.Lock()
	if e != nil {
		s.conns[c] = e
	} else {
		delete(s.conns, c)
	}
	s.connMu.Unlock()
}

func (s *Sensor) closeConns() {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	for c := range s.conns {
		c.Close()
	}
}

// evictIdle makes room for a new connection when a cap is reached, as a device with few
// connection slots drops its stale sessions: it closes the connection (of host h, or of any
// host when h is nil) whose last complete request is the oldest, provided that was at least
// limits.evict_idle_after ago. It reports whether it closed one. The victim's slot frees
// when its handler returns, an instant later, so the caps overshoot by at most the
// admissions in progress.
func (s *Sensor) evictIdle(h *host, proto, reason string) bool {
	cut := time.Now().Add(-s.cfg.Limits.EvictIdleAfter.Duration)
	s.connMu.Lock()
	var victim *connEntry
	var oldest time.Time
	for _, e := range s.conns {
		if e.h == nil || e.sess == nil || e.evicted.Load() || (h != nil && e.h != h) {
			continue
		}
		if last := e.sess.LastActive(); last.Before(cut) && (victim == nil || last.Before(oldest)) {
			victim, oldest = e, last
		}
	}
	if victim != nil {
		victim.evicted.Store(true)
	}
	s.connMu.Unlock()
	if victim == nil {
		return false
	}
	s.m.evicted.WithLabelValues(proto, reason).Inc()
	if tc, ok := victim.c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	victim.c.Close()
	return true
}

// sourceCaps bounds the connections one source address, and one source prefix (/24 for
// IPv4, /64 for IPv6), may hold, so that a few sources cannot take every slot.
type sourceCaps struct {
	perAddr, perPrefix int
	mu                 sync.Mutex
	addrs              map[netip.Addr]int
	prefixes           map[netip.Prefix]int
}

func newSourceCaps(perAddr, perPrefix int) *sourceCaps {
	return &sourceCaps{perAddr: perAddr, perPrefix: perPrefix, addrs: map[netip.Addr]int{}, prefixes: map[netip.Prefix]int{}}
}

// sourcePrefix is the network a source address counts against.
func sourcePrefix(a netip.Addr) netip.Prefix {
	bits := 24
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return p
}

// acquire counts a connection from a; it returns "" or the cap that refuses it.
func (c *sourceCaps) acquire(a netip.Addr) string {
	p := sourcePrefix(a)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.perAddr > 0 && c.addrs[a] >= c.perAddr {
		return "source_cap"
	}
	if c.perPrefix > 0 && c.prefixes[p] >= c.perPrefix {
		return "source_prefix_cap"
	}
	c.addrs[a]++
	c.prefixes[p]++
	return ""
}

func (c *sourceCaps) release(a netip.Addr) {
	p := sourcePrefix(a)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.addrs[a] <= 1 {
		delete(c.addrs, a)
	} else {
		c.addrs[a]--
	}
	if c.prefixes[p] <= 1 {
		delete(c.prefixes, p)
	} else {
		c.prefixes[p]--
	}
}
