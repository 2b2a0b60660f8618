package ipmi

import (
	"strconv"
	"strings"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/ratelimit"
)

// rateClass is a request class of 623/udp, told apart by the first bytes of the datagram,
// so the XDP program can limit it before it reaches the sensor.
type rateClass struct {
	name      string
	patterns  []string // ratelimit.ParsePattern syntax
	perSource int      // requests per minute; 0: unlimited
	global    int
}

// rateClasses are the classes and their default limits. Session traffic (the port's default
// class) is not limited: a BMC's clients send bursts (sdr list is a few dozen requests).
var rateClasses = []rateClass{
	// ASF presence ping, any RMCP sequence number.
	{name: "ping", patterns: []string{"0:06 3:06 4:000011be 8:80"}, perSource: 120, global: 6000},
	// RMCP+ Open Session Request, RAKP 1 and RAKP 3: what password guessing and hash
	// collection cost. A login takes three.
	{name: "handshake", patterns: []string{"0:06 3:07 4:06 5:10", "0:06 3:07 4:06 5:12", "0:06 3:07 4:06 5:14"},
		perSource: 300, global: 6000},
	// Session-less IPMI: v1.5 framing with session id 0 (Get Channel Authentication
	// Capabilities, Get Session Challenge …) and RMCP+ session-less messages.
	{name: "presession", patterns: []string{"0:06 3:07 4:00 9:00000000", "0:06 3:07 4:06 5:00 6:00000000"},
		perSource: 300, global: 6000},
}

// parseRateLimits reads <rate_limit class="NAME">PER-SOURCE;GLOBAL</rate_limit> elements
// (requests per minute, as Conpot's SNMP evasion entities state them; 0 is unlimited).
func parseRateLimits(sec *profiles.Section, root *profiles.Node, c *config) error {
	c.limits = map[string][2]int{}
	for _, rc := range rateClasses {
		c.limits[rc.name] = [2]int{rc.perSource, rc.global}
	}
	for _, n := range root.ChildrenNamed("rate_limit") {
		name, _ := n.Attr("class")
		if _, ok := c.limits[name]; !ok {
			return n.Errorf("class %q: want ping, handshake or presession", name)
		}
		src, glob, ok := strings.Cut(n.TextTrim(), ";")
		a, err1 := strconv.Atoi(strings.TrimSpace(src))
		b, err2 := strconv.Atoi(strings.TrimSpace(glob))
		if !ok || err1 != nil || err2 != nil || a < 0 || b < 0 || a > 1e6 || b > 1e7 {
			return n.Errorf("%q: want PER-SOURCE;GLOBAL requests per minute, e.g. 60;6000", n.TextTrim())
		}
		c.limits[name] = [2]int{a, b}
	}
	return nil
}

// RateLimits implements protocols.RateLimited: the sensor enforces them, in the kernel when
// the XDP program is attached.
func (s *service) RateLimits() []protocols.RateLimit {
	var out []protocols.RateLimit
	for _, rc := range rateClasses {
		l := s.cfg.limits[rc.name]
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
