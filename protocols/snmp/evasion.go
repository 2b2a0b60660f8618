package snmp

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/icsnare/icsnare/protocols"
)

// maxTrackedSources bounds the per-source counters of one minute; sources beyond it are
// refused until the next minute (a flood of spoofed sources must not grow memory).
const maxTrackedSources = 1 << 16

// limiter enforces Conpot's SNMP "evasion" limits: requests per calendar minute, per source
// and overall, for each command class. Classes the kernel enforces are skipped.
type limiter struct {
	limits [numClasses][2]int
	kernel [numClasses]atomic.Bool
	any    bool

	mu      sync.Mutex
	minute  int64
	global  [numClasses]int
	sources [numClasses]map[netip.Addr]int
}

func newLimiter(limits [numClasses][2]int) *limiter {
	l := &limiter{limits: limits}
	for c := range limits {
		if limits[c][0] > 0 || limits[c][1] > 0 {
			l.any = true
		}
		l.sources[c] = map[netip.Addr]int{}
	}
	return l
}

// allow counts one request of class from src and reports whether it is within the limits.
func (l *limiter) allow(class int, src netip.Addr, now time.Time) bool {
	if !l.any {
		return true
	}
	lim := l.limits[class]
	if (lim[0] == 0 && lim[1] == 0) || l.kernel[class].Load() {
		return true
	}
	minute := now.Unix() / 60
	l.mu.Lock()
	defer l.mu.Unlock()
	if minute != l.minute {
		l.minute = minute
		for c := range l.sources {
			l.global[c] = 0
			clear(l.sources[c])
		}
	}
	if lim[1] > 0 && l.global[class] >= lim[1] {
		return false
	}
	if lim[0] > 0 {
		src = src.Unmap()
		n, ok := l.sources[class][src]
		if !ok && len(l.sources[class]) >= maxTrackedSources {
			return false
		}
		if n >= lim[0] {
			return false
		}
		l.sources[class][src] = n + 1
	}
	l.global[class]++
	return true
}

// RateLimits implements protocols.RateLimiter: the profile's evasion limits.
func (s *service) RateLimits() []protocols.RateLimit {
	var out []protocols.RateLimit
	for c, lim := range s.cfg.evasion {
		if lim[0] > 0 || lim[1] > 0 {
			out = append(out, protocols.RateLimit{Port: Port, Class: classNames[c], PerSource: lim[0], Global: lim[1]})
		}
	}
	return out
}

// KernelEnforced implements protocols.RateLimiter: limits the kernel enforces are no longer
// counted here. A limit with an empty class covers every class.
func (s *service) KernelEnforced(limits []protocols.RateLimit) {
	var on [numClasses]bool
	for _, l := range limits {
		if l.Port != 0 && l.Port != Port {
			continue
		}
		for c, n := range classNames {
			if l.Class == "" || l.Class == n {
				on[c] = true
			}
		}
	}
	for c := range on {
		s.lim.kernel[c].Store(on[c])
	}
}
