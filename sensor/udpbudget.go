package sensor

import (
	"net/netip"
	"sync"
	"time"
)

// byteBudget bounds the UDP answer bytes the sensor sends per calendar minute to one
// source address and from one port, so that spoofed requests cannot turn the sensor into a
// reflector: past the budget, answers are dropped and counted.
type byteBudget struct {
	perSource, perPort int64 // 0: no bound

	mu      sync.Mutex
	minute  int64
	sources map[netip.Addr]int64
	ports   map[uint16]int64
}

func newByteBudget(perSource, perPort int64) *byteBudget {
	return &byteBudget{perSource: perSource, perPort: perPort, sources: map[netip.Addr]int64{}, ports: map[uint16]int64{}}
}

// take charges n bytes to dst and port; it returns "" or the budget that refuses them.
func (b *byteBudget) take(dst netip.Addr, port uint16, n int, now time.Time) string {
	if b.perSource <= 0 && b.perPort <= 0 {
		return ""
	}
	m := now.Unix() / 60
	b.mu.Lock()
	defer b.mu.Unlock()
	if m != b.minute {
		b.minute = m
		clear(b.sources)
		clear(b.ports)
	}
	if b.perPort > 0 && b.ports[port]+int64(n) > b.perPort {
		return "port_bytes"
	}
	if b.perSource > 0 {
		used, seen := b.sources[dst]
		// A spoofed flood from more sources than the table holds is refused, not tracked.
		if used+int64(n) > b.perSource || (!seen && len(b.sources) >= maxRateSources) {
			return "source_bytes"
		}
		b.sources[dst] = used + int64(n)
	}
	b.ports[port] += int64(n)
	return ""
}
