package sensor

import (
	"net/netip"
	"sync"
	"time"
)

// byteBudget bounds the UDP answer bytes the sensor sends to one source address and from
// one port, so that spoofed requests cannot turn the sensor into a reflector: past the
// budget, answers are dropped and counted. Each budget is a token bucket holding a minute's
// worth of bytes and refilling at the per-minute rate, so no burst exceeds one minute's
// budget (a calendar-minute counter would let twice the budget through at the turn of a
// minute, a moment an attacker can choose).
type byteBudget struct {
	perSource, perPort int64 // bytes per minute; 0: no bound

	mu        sync.Mutex
	sources   map[netip.Addr]bucket
	ports     map[uint16]bucket
	lastSweep int64
}

// bucket is one token bucket: tokens at time last (unix nanoseconds).
type bucket struct {
	tokens float64
	last   int64
}

// level returns the bucket's tokens at now, for a bucket of capacity capBytes refilled at
// capBytes a minute; a bucket never seen is full.
func (b bucket) level(now int64, capBytes int64, seen bool) float64 {
	if !seen {
		return float64(capBytes)
	}
	t := b.tokens + float64(now-b.last)*float64(capBytes)/float64(time.Minute)
	return min(t, float64(capBytes))
}

func newByteBudget(perSource, perPort int64) *byteBudget {
	return &byteBudget{perSource: perSource, perPort: perPort, sources: map[netip.Addr]bucket{}, ports: map[uint16]bucket{}}
}

// take charges n bytes to dst and port; it returns "" or the budget that refuses them.
func (b *byteBudget) take(dst netip.Addr, port uint16, n int, now time.Time) string {
	if b.perSource <= 0 && b.perPort <= 0 {
		return ""
	}
	t := now.UnixNano()
	b.mu.Lock()
	defer b.mu.Unlock()
	var pl float64
	if b.perPort > 0 {
		pb, seen := b.ports[port]
		if pl = pb.level(t, b.perPort, seen); pl < float64(n) {
			return "port_bytes"
		}
	}
	if b.perSource > 0 {
		sb, seen := b.sources[dst]
		if !seen && len(b.sources) >= maxRateSources {
			b.sweep(t)
		}
		// A spoofed flood from more sources than the table holds is refused, not tracked.
		if !seen && len(b.sources) >= maxRateSources {
			return "source_bytes"
		}
		sl := sb.level(t, b.perSource, seen)
		if sl < float64(n) {
			return "source_bytes"
		}
		b.sources[dst] = bucket{tokens: sl - float64(n), last: t}
	}
	if b.perPort > 0 {
		b.ports[port] = bucket{tokens: pl - float64(n), last: t}
	}
	return ""
}

// sweep forgets sources whose buckets have refilled (a full bucket is what an unseen source
// gets), at most once a second.
func (b *byteBudget) sweep(now int64) {
	if now-b.lastSweep < int64(time.Second) {
		return
	}
	b.lastSweep = now
	for a, sb := range b.sources {
		if sb.level(now, b.perSource, true) >= float64(b.perSource) {
			delete(b.sources, a)
		}
	}
}
