package ipmi

import (
	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/ratelimit"
)

// rateClass is a request class of 623/udp, told apart by the first bytes of the datagram,
// so the XDP program can limit it before it reaches the sensor.
type rateClass = ratelimit.ProfileClass

// rateClasses are the classes and their default limits. Session traffic (the port's default
// class) is not limited: a BMC's clients send bursts (sdr list is a few dozen requests).
var rateClasses = []rateClass{
	// ASF presence ping, any RMCP sequence number.
	{Name: "ping", Patterns: []string{"0:06 3:06 4:000011be 8:80"}, PerSource: 120, Global: 6000},
	// RMCP+ Open Session Request, RAKP 1 and RAKP 3: what password guessing and hash
	// collection cost. A login takes three.
	{Name: "handshake", Patterns: []string{"0:06 3:07 4:06 5:10", "0:06 3:07 4:06 5:12", "0:06 3:07 4:06 5:14"},
		PerSource: 300, Global: 6000},
	// Session-less IPMI: v1.5 framing with session id 0 (Get Channel Authentication
	// Capabilities, Get Session Challenge …) and RMCP+ session-less messages.
	{Name: "presession", Patterns: []string{"0:06 3:07 4:00 9:00000000", "0:06 3:07 4:06 5:00 6:00000000"},
		PerSource: 300, Global: 6000},
}

// parseRateLimits reads the profile's <rate_limit> elements over the classes' defaults.
func parseRateLimits(root *profiles.Node, c *config) error {
	var err error
	c.limits, err = ratelimit.ParseProfileLimits(root, rateClasses)
	return err
}

// RateLimits implements protocols.RateLimited: the sensor enforces them, in the kernel when
// the XDP program is attached.
func (s *service) RateLimits() []protocols.RateLimit {
	return s.cfg.limits.RateLimits(Port, rateClasses)
}
