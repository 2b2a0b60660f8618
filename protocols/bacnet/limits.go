package bacnet

import (
	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/ratelimit"
)

// rateClass is a request class of 47808/udp, told apart by the first bytes of the datagram
// (BVLC Original-Unicast or -Broadcast-NPDU, an NPDU without routing information or with
// the global DNET, then the APDU), so the XDP program can limit it before it reaches the
// sensor. Requests in other shapes (routed, forwarded, Segment-ACKs, BVLC functions) fall in
// the port's default class, which is not limited.
type rateClass = ratelimit.ProfileClass

// rateClasses are the classes and their default limits: a sweep of a /24 with unicast
// Who-Is stays under the discovery limit; a tool reading a device takes a few dozen
// confirmed requests.
var rateClasses = []rateClass{
	// Who-Is and Who-Has, unicast or broadcast, local or to every network.
	{Name: "discovery", Patterns: []string{
		"0:810a/fffe 4:01 5:00/f8 6:1008", "0:810a/fffe 4:01 5:00/f8 6:1007",
		"0:810a/fffe 4:01 5:20/f8 6:ffff 8:00 10:1008", "0:810a/fffe 4:01 5:20/f8 6:ffff 8:00 10:1007",
	}, PerSource: 600, Global: 60000},
	// Confirmed requests (ReadProperty, ReadPropertyMultiple, WriteProperty …).
	{Name: "confirmed", Patterns: []string{"0:810a/fffe 4:01 5:00/f8 6:00/f0"}, PerSource: 1200, Global: 120000},
}

// parseRateLimits reads the profile's <rate_limit> elements over the classes' defaults.
func parseRateLimits(root *profiles.Node, c *config) error {
	var err error
	c.limits, err = ratelimit.ParseProfileLimits(root, rateClasses)
	return err
}

// RateLimits implements protocols.RateLimited: the sensor enforces them, in the kernel when
// the XDP program is attached, else in userspace before ServePacket.
func (sv *service) RateLimits() []protocols.RateLimit {
	return sv.cfg.limits.RateLimits(Port, rateClasses)
}
