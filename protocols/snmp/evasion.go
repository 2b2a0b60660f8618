package snmp

import (
	"fmt"
	"net/netip"
	"sync/atomic"

	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/ratelimit"
)

// limiter enforces Conpot's SNMP "evasion" limits in userspace with the sensor's shared
// limiter (protocols/ratelimit): per command class, a token bucket per source and one
// overall, refilled at the given requests per minute, exactly as the XDP program does.
// Classes the kernel enforces are skipped.
type limiter struct {
	rl     *ratelimit.Limiter // nil: no limits
	kernel [numClasses]atomic.Bool
}

func newLimiter(limits [numClasses][2]int) (*limiter, error) {
	var rules []ratelimit.Rule
	for c, lim := range limits {
		if lim[0] > 0 || lim[1] > 0 {
			rules = append(rules, ratelimit.Rule{Port: Port, Class: classNames[c], PerSource: lim[0], Global: lim[1]})
		}
	}
	l := &limiter{}
	if len(rules) == 0 {
		return l, nil
	}
	rl, err := ratelimit.New(rules, ratelimit.Config{})
	if err != nil {
		return nil, fmt.Errorf("snmp evasion: %w", err)
	}
	l.rl = rl
	return l, nil
}

// allow counts one request of class from src and reports whether it is within the limits.
func (l *limiter) allow(class int, src netip.Addr) bool {
	if l.rl == nil || l.kernel[class].Load() {
		return true
	}
	return l.rl.AllowClass(Port, classNames[class], src).Allowed()
}

// RateLimits implements protocols.RateLimiter: the profile's evasion limits, as SNMP's
// built-in (BER-parsed) classes.
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
