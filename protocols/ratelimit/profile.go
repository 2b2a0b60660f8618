package ratelimit

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
)

// ProfileClass is a request class a UDP protocol declares: byte patterns in ParsePattern
// syntax (the first that matches puts a request in the class) and the default limits in
// requests per minute (0: unlimited).
type ProfileClass struct {
	Name      string
	Patterns  []string
	PerSource int
	Global    int
}

// ProfileLimits are the per-source and global limits of each class, after the profile.
type ProfileLimits map[string][2]int

// ParseProfileLimits reads the <rate_limit class="NAME">PER-SOURCE;GLOBAL</rate_limit>
// children of root (requests per minute, as Conpot's SNMP evasion entities state them;
// 0;0 turns a class off) over the classes' defaults. Errors name the element's file and line.
func ParseProfileLimits(root *profiles.Node, classes []ProfileClass) (ProfileLimits, error) {
	limits := ProfileLimits{}
	names := make([]string, len(classes))
	for i, c := range classes {
		limits[c.Name] = [2]int{c.PerSource, c.Global}
		names[i] = c.Name
	}
	for _, n := range root.ChildrenNamed("rate_limit") {
		name, _ := n.Attr("class")
		if _, ok := limits[name]; !ok {
			return nil, n.Errorf("class %q: want %s", name, oneOf(names))
		}
		src, glob, ok := strings.Cut(n.TextTrim(), ";")
		a, err1 := strconv.Atoi(strings.TrimSpace(src))
		b, err2 := strconv.Atoi(strings.TrimSpace(glob))
		if !ok || err1 != nil || err2 != nil || a < 0 || b < 0 || a > 1e6 || b > 1e7 {
			return nil, n.Errorf("%q: want PER-SOURCE;GLOBAL requests per minute, e.g. %d;%d", n.TextTrim(),
				classes[0].PerSource, classes[0].Global)
		}
		limits[name] = [2]int{a, b}
	}
	return limits, nil
}

// RateLimits returns the limits of the enabled classes on port, for protocols.RateLimited.
func (l ProfileLimits) RateLimits(port int, classes []ProfileClass) []protocols.RateLimit {
	var out []protocols.RateLimit
	for _, c := range classes {
		lim := l[c.Name]
		if lim[0] == 0 && lim[1] == 0 {
			continue
		}
		ps := make([]protocols.Pattern, len(c.Patterns))
		for i, p := range c.Patterns {
			ps[i] = MustParsePattern(p)
		}
		out = append(out, protocols.RateLimit{Port: port, Class: c.Name, Match: ps, PerSource: lim[0], Global: lim[1]})
	}
	return out
}

// oneOf writes names as "a, b or c".
func oneOf(names []string) string {
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return fmt.Sprintf("%s or %s", strings.Join(names[:len(names)-1], ", "), names[len(names)-1])
}
