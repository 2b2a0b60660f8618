package bacnet

import (
	"strconv"
	"strings"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/ratelimit"
)

// rateClass is a request class of 47808/udp, told apart by the first bytes of the datagram
// (BVLC Original-Unicast or -Broadcast-NPDU, an NPDU without routing information or with
// the global DNET, then the APDU), so the XDP program can limit it before it reaches the
// sensor. Requests in other shapes (routed, forwarded, Segment-ACKs, BVLC functions) fall in
// the port's default class, which is not limited.
type rateClass struct {
	name      string
	patterns  []string // ratelimit.ParsePattern syntax
	perSource int      // requests per minute; 0: unlimited
	global    int
}

// rateClasses are the classes and their default limits: a sweep of a /24 with unicast
// Who-Is stays under the discovery limit; a tool reading a device takes a few dozen
// confirmed requests.
var rateClasses = []rateClass{
	// Who-Is and Who-Has, unicast or broadcast, local or to every network.
	{name: "discovery", patterns: []string{
		"0:810a/fffe 4:01 5:00/f8 6:1008", "0:810a/fffe 4:01 5:00/f8 6:1007",
		"0:810a/fffe 4:01 5:20/f8 6:ffff 8:00 10:1008", "0:810a/fffe 4:01 5:20/f8 6:ffff 8:00 10:1007",
	}, perSource: 600, global: 60000},
	// Confirmed requests (ReadProperty, ReadPropertyMultiple, WriteProperty …).
	{name: "confirmed", patterns: []string{"0:810a/fffe 4:01 5:00/f8 6:00/f0"}, perSource: 1200, global: 120000},
}

// parseRateLimits reads <rate_limit class="NAME">PER-SOURCE;GLOBAL</rate_limit> elements
// (requests per minute, as Conpot's SNMP evasion entities state them; 0;0 turns a class off).
func parseRateLimits(root *profiles.Node, c *config) error {
	c.limits = map[string][2]int{}
	for _, rc := range rateClasses {
		c.limits[rc.name] = [2]int{rc.perSource, rc.global}
	}
	for _, n := range root.ChildrenNamed("rate_limit") {
		name, _ := n.Attr("class")
		if _, ok := c.limits[name]; !ok {
			return n.Errorf("class %q: want discovery or confirmed", name)
		}
		src, glob, ok := strings.Cut(n.TextTrim(), ";")
		a, err1 := strconv.Atoi(strings.TrimSpace(src))
		b, err2 := strconv.Atoi(strings.TrimSpace(glob))
		if !ok || err1 != nil || err2 != nil || a < 0 || b < 0 || a > 1e6 || b > 1e7 {
			return n.Errorf("%q: want PER-SOURCE;GLOBAL requests per minute, e.g. 600;60000", n.TextTrim())
		}
		c.limits[name] = [2]int{a, b}
	}
	return nil
}

// RateLimits implements protocols.RateLimited: the sensor enforces them, in the kernel when
// the XDP program is attached, else in userspace before ServePacket.
func (sv *service) RateLimits() []protocols.RateLimit {
	var out []protocols.RateLimit
	for _, rc := range rateClasses {
		l := sv.cfg.limits[rc.name]
		if l[0] == 0 && l[1] == 0 {
			continue
		}
		ps := make([]protocols.Pattern, len(rc.patterns))
		for i, p := range rc.patterns {
			ps[i] = ratelimit.MustParsePattern(p)
		}
		out = append(out, protocols.RateLimit{Port: Port, Class: rc.name, Match: ps, PerSource: l[0], Global: l[1]})
	}
	return out
}
