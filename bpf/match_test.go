package bpf

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/ratelimit"
)

// pat parses patterns in protocols/ratelimit syntax.
func pat(t testing.TB, ss ...string) []Pattern {
	t.Helper()
	var out []Pattern
	for _, s := range ss {
		p, err := ratelimit.ParsePattern(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, toBPF(p))
	}
	return out
}

func toBPF(p protocols.Pattern) Pattern {
	out := make(Pattern, len(p))
	for i, m := range p {
		out[i] = ByteMatch(m)
	}
	return out
}

func hexb(t testing.TB, s string) []byte {
	t.Helper()
	var b []byte
	if _, err := fmt.Sscanf(strings.ReplaceAll(s, " ", ""), "%x", &b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPatternClasses feeds crafted BACnet/IP, IPMI (RMCP/ASF) and TFTP requests to
// pattern classes: each class has its own buckets, the first matching class wins, and
// anything else uses the port's rule.
func TestPatternClasses(t *testing.T) {
	rules := []Rule{
		{Port: 47808, PerSource: 60, Burst: 1},
		{Port: 47808, Class: "who-is", Match: pat(t, "0:810b 4:01 5:00/f8 6:1008", "0:810b 4:01 5:20/f8 6:ffff 8:00 10:1008"), PerSource: 60, Burst: 2},
		{Port: 47808, Class: "bvlc", Match: pat(t, "0:81"), PerSource: 60, Burst: 3},
		{Port: 623, Class: "ping", Match: pat(t, "0:0600ff06 4:000011be 8:80"), PerSource: 60, Burst: 2},
		{Port: 623, Class: "ipmi", Match: pat(t, "0:0600ff07"), PerSource: 60, Burst: 4},
		{Port: 69, Class: "read", Match: pat(t, "0:0001"), PerSource: 60, Burst: 2},
		{Port: 69, Class: "write", Match: pat(t, "0:0002"), PerSource: 60, Burst: 3},
		{Port: 69, Class: "long", Match: pat(t, "0:0003 40:00/00"), PerSource: 60, Burst: 4}, // DATA of 41+ bytes
	}
	cases := []struct {
		name    string
		port    uint16
		payload []byte
		class   string
		passed  int // of 10
	}{
		{"who-is", 47808, hexb(t, "810b000801001008"), "who-is", 2},
		{"who-is expecting reply", 47808, hexb(t, "810b000801041008"), "who-is", 2},
		{"who-is to DNET ffff", 47808, hexb(t, "810b000c0120ffff00ff1008"), "who-is", 2},
		{"who-is with range", 47808, hexb(t, "810b000c010010080900190a"), "who-is", 2},
		{"i-am: the second class", 47808, hexb(t, "810b001801001000c4020003e82201e0910022"), "bvlc", 3},
		{"who-is one byte short", 47808, hexb(t, "810b0008010010"), "bvlc", 3},
		{"not BVLC", 47808, hexb(t, "820b000801001008"), "", 1},
		{"empty", 47808, []byte{}, "", 1},
		{"presence ping", 623, hexb(t, "0600ff06000011be80100000"), "ping", 2},
		{"rmcp ipmi", 623, hexb(t, "0600ff0700000000000000000009200018c8"), "ipmi", 4},
		{"asf other message", 623, hexb(t, "0600ff06000011be40100000"), "", 10},
		{"tftp rrq", 69, append(hexb(t, "0001"), "boot.bin\x00octet\x00"...), "read", 2},
		{"tftp wrq", 69, append(hexb(t, "0002"), "x\x00octet\x00"...), "write", 3},
		{"tftp data, 41 bytes", 69, append(hexb(t, "0003"), make([]byte, 39)...), "long", 4},
		{"tftp data, 40 bytes", 69, append(hexb(t, "0003"), make([]byte, 38)...), "", 10},
		{"tftp one byte", 69, hexb(t, "00"), "", 10},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := loadTest(t, rules...)
			f := udp4(t, "198.18.20.10", tc.port, frameOpt{payload: tc.payload})
			if got := runN(t, l, f, 10); got != tc.passed {
				t.Errorf("passed %d of 10, want %d", got, tc.passed)
			}
			cs, err := l.Counters()
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]uint64{}
			for _, c := range cs {
				if c.Packets > 0 {
					got[fmt.Sprintf("%d/%s/%s", c.Port, c.Class, c.Reason)] = c.Packets
				}
			}
			want := map[string]uint64{fmt.Sprintf("%d/%s/ok", tc.port, tc.class): uint64(tc.passed)}
			if tc.passed < 10 {
				want[fmt.Sprintf("%d/%s/per_source", tc.port, tc.class)] = uint64(10 - tc.passed)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("counters %v, want %v", got, want)
			}
			if tc.passed < 10 {
				top, _, _, err := l.TopSources(1)
				if err != nil || len(top) != 1 || top[0].Class != tc.class {
					t.Errorf("top source %+v, %v; want class %q", top, err, tc.class)
				}
			}
		})
	}

	// The UDP length bounds the payload: padding after it does not count.
	l := loadTest(t, rules...)
	f := udp4(t, "198.18.20.10", 69, frameOpt{payload: append(hexb(t, "0003"), make([]byte, 39)...)})
	f[38], f[39] = 0, 8+40 // UDP length: 40 payload bytes, 1 byte of padding
	if got := runN(t, l, f, 10); got != 10 {
		t.Errorf("payload shortened by the UDP length: %d of 10 passed, want all (port rule)", got)
	}
	// Frames shorter than the window (and IPv6 with extension headers) still classify.
	f = udp6(t, "fd00:20::10", 47808, frameOpt{next6: 0, ext6: nil, payload: hexb(t, "810b000801001008")})
	if got := runN(t, l, f, 10); got != 2 {
		t.Errorf("IPv6 who-is: %d of 10 passed, want 2", got)
	}
}

// TestPatternRules: rule changes at run time, read-back, limits of the program.
func TestPatternRules(t *testing.T) {
	l := loadTest(t)
	rrq := udp4(t, "198.18.20.10", 69, frameOpt{payload: hexb(t, "0001 6600 6f00")})
	wrq := udp4(t, "198.18.20.10", 69, frameOpt{payload: hexb(t, "0002 6600 6f00")})
	if err := l.SetRule(Rule{Port: 69, Class: "read", Match: pat(t, "0:0001"), PerSource: 60, Burst: 1}); err != nil {
		t.Fatal(err)
	}
	if got := runN(t, l, rrq, 3) + runN(t, l, wrq, 3); got != 4 {
		t.Errorf("passed %d, want 1 read + 3 unlimited", got)
	}
	// A second class catching both opcodes comes after "read": reads stay in "read".
	if err := l.SetRule(Rule{Port: 69, Class: "any", Match: pat(t, "0:0000/fffc"), PerSource: 60, Burst: 2}); err != nil {
		t.Fatal(err)
	}
	if got := runN(t, l, rrq, 3) + runN(t, l, wrq, 3); got != 2 {
		t.Errorf("passed %d, want 0 read + 2 any", got)
	}
	// Replacing "read" keeps its place; its new pattern no longer takes RRQs, so "any" does.
	if err := l.SetRule(Rule{Port: 69, Class: "read", Match: pat(t, "0:0009"), PerSource: 60, Burst: 1}); err != nil {
		t.Fatal(err)
	}
	if got := runN(t, l, rrq, 3); got != 0 {
		t.Errorf("RRQ in exhausted 'any': %d passed", got)
	}
	rs, err := l.Rules()
	if err != nil {
		t.Fatal(err)
	}
	got := ""
	for _, r := range rs {
		got += fmt.Sprintf("%d/%s/%v;", r.Port, r.Class, r.Match)
	}
	if want := "69//[];69/read/[0:0009];69/any/[0:0000/fffc];"; got != want {
		t.Errorf("rules %s, want %s", got, want)
	}
	var buf bytes.Buffer
	if err := l.WriteStats(&buf, 5); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"read   60", "0:0000/fffc", "69    any    drop    per_source  4"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("stats lack %q:\n%s", want, buf.String())
		}
	}

	// What the program cannot express is refused with ErrNotExpressible and changes nothing.
	for _, r := range []Rule{
		{Port: 69, Class: "far", Match: pat(t, "32:01")},
		{Port: 69, Class: "many", Match: pat(t, "0:01", "0:02", "0:03", "0:04", "0:05", "0:06", "0:07", "0:08", "0:09", "0:0a", "0:0b", "0:0c", "0:0d", "0:0e", "0:0f")},
		{Port: 69, Class: "unknown"},
	} {
		if err := l.SetRule(r); !errors.Is(err, ErrNotExpressible) {
			t.Errorf("%s: error %v, want ErrNotExpressible", r.Class, err)
		}
	}
	for _, r := range []Rule{
		{Port: 69, Class: "Bad", Match: pat(t, "0:01")},
		{Port: 69, Match: pat(t, "0:01")},
		{Port: 69, Class: "x", Match: []Pattern{{{Offset: 0, Value: []byte{1}}, {Offset: 0, Value: []byte{2}}}}},
	} {
		if err := l.SetRule(r); err == nil || errors.Is(err, ErrNotExpressible) {
			t.Errorf("%+v: error %v, want a plain error", r, err)
		}
	}
	if rs2, _ := l.Rules(); len(rs2) != len(rs) {
		t.Errorf("refused rules changed the kernel: %+v", rs2)
	}
	// A length-only byte match beyond the window is fine (need only).
	if err := l.SetRule(Rule{Port: 69, Class: "big", Match: pat(t, "0:0003 511:00/00"), Global: 1}); err != nil {
		t.Errorf("length beyond the window: %v", err)
	}
	if err := l.DeleteRule(69); err != nil {
		t.Fatal(err)
	}
	if got := runN(t, l, rrq, 5); got != 5 {
		t.Errorf("after delete: %d of 5", got)
	}
	// Per-source buckets outlive rule changes (they are keyed by class id, which the
	// new class reuses): one second refills one token.
	l.setClock(t, t0+1e9)
	if err := l.SetRule(Rule{Port: 69, Class: "again", Match: pat(t, "0:0001"), PerSource: 60, Burst: 1}); err != nil {
		t.Fatal(err)
	}
	if got := runN(t, l, rrq, 3); got != 1 {
		t.Errorf("after re-adding: %d of 3, want 1", got)
	}
}

// TestMatchesUserspace checks that the program and protocols/ratelimit agree on every
// decision: random patterns and payloads, several sources, a clock stepping forward.
func TestMatchesUserspace(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 10))
	randPattern := func() protocols.Pattern {
		var p protocols.Pattern
		for j := 0; j < 1+rng.IntN(3); j++ {
			n := 1 + rng.IntN(3)
			m := protocols.ByteMatch{Offset: rng.IntN(MatchBytes - n + 1), Value: make([]byte, n)}
			if rng.IntN(2) == 0 {
				m.Mask = make([]byte, n)
			}
			for k := range m.Value {
				m.Value[k] = byte(rng.IntN(4))
				if m.Mask != nil {
					m.Mask[k] = byte(rng.IntN(4))
					m.Value[k] &= m.Mask[k]
				}
			}
			if ratelimit.CheckPatterns([]protocols.Pattern{append(p, m)}) == nil && overlapOK(append(p, m)) {
				p = append(p, m)
			}
		}
		if len(p) == 0 {
			p = protocols.Pattern{{Offset: 0, Value: []byte{1}}}
		}
		return p
	}
	for round := 0; round < 4; round++ {
		var urules []ratelimit.Rule
		var krules []Rule
		add := func(class string, match []protocols.Pattern, ps, g, burst, gburst int) {
			u := ratelimit.Rule{Port: 69, Class: class, Match: match, PerSource: ps, Global: g, Burst: burst, GlobalBurst: gburst}
			k := Rule{Port: 69, Class: class, PerSource: ps, Global: g, Burst: burst, GlobalBurst: gburst}
			for _, p := range match {
				k.Match = append(k.Match, toBPF(p))
			}
			urules, krules = append(urules, u), append(krules, k)
		}
		add("", nil, 120, 600, 3, 8)
		for c := 0; c < 3; c++ {
			add(fmt.Sprintf("c%d", c), []protocols.Pattern{randPattern(), randPattern()}, 60+rng.IntN(600), rng.IntN(2)*(60+rng.IntN(600)), 1+rng.IntN(3), 4+rng.IntN(4))
		}
		clock := int64(t0)
		u, err := ratelimit.New(urules, ratelimit.Config{Now: func() int64 { return clock }})
		if err != nil {
			t.Fatal(err)
		}
		l := loadTest(t, krules...)
		var srcs []string
		for i := 0; i < 24; i++ {
			srcs = append(srcs, fmt.Sprintf("198.18.20.%d", 10+i))
		}
		seen := map[string]int{}
		for i := 0; i < 600; i++ {
			if rng.IntN(8) == 0 {
				clock += rng.Int64N(2e9)
				l.setClock(t, uint64(clock))
			}
			payload := make([]byte, rng.IntN(40))
			for k := range payload {
				payload[k] = byte(rng.IntN(4))
			}
			src := srcs[rng.IntN(len(srcs))]
			d := u.Allow(69, netip.MustParseAddr(src), payload)
			kernel := run(t, l, udp4(t, src, 69, frameOpt{payload: payload})) == xdpPass
			seen[d.Class+"/"+d.Reason.String()]++
			if kernel != d.Allowed() {
				t.Fatalf("round %d packet %d (% x from %s): kernel pass=%v, userspace %+v; rules %+v", round, i, payload, src, kernel, d, urules)
			}
		}
		t.Logf("round %d: decisions %v", round, seen)
		if len(seen) < 6 {
			t.Errorf("round %d: too few kinds of decision to compare: %v", round, seen)
		}
	}
}

// overlapOK rejects patterns whose byte matches contradict each other (never match).
func overlapOK(p protocols.Pattern) bool {
	_, err := compilePattern(toBPF(p))
	return err == nil
}
