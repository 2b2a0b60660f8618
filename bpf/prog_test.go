package bpf

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/icsnare/icsnare/protocols/protocoltest"
	"github.com/icsnare/icsnare/protocols/ratelimit"
	"golang.org/x/sys/unix"
)

const (
	xdpDrop = 1
	xdpPass = 2
	t0      = uint64(1_000_000_000_000) // test clock start: 1000 s
)

// loadTest loads a limiter with the test clock frozen at t0.
func loadTest(t testing.TB, rules ...Rule) *Limiter {
	t.Helper()
	protocoltest.NeedRoot(t)
	l, err := Load(Config{Rules: rules, MaxSources: 1024, QuietPeriod: 10 * time.Second, NotifyRate: 1000, NotifyBurst: 1000, SweepInterval: time.Hour})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	l.setClock(t, t0)
	return l
}

// setClock sets the program's test clock (0: back to bpf_ktime_get_ns).
func (l *Limiter) setClock(t testing.TB, ns uint64) {
	t.Helper()
	if err := l.objs.ClockNs.Set(ns); err != nil {
		t.Fatalf("set clock: %v", err)
	}
}

// run feeds one frame to the program with BPF_PROG_TEST_RUN.
func run(t testing.TB, l *Limiter, frame []byte) uint32 {
	t.Helper()
	ret, err := l.objs.XdpRatelimit.Run(&ebpf.RunOptions{Data: frame})
	if err != nil {
		t.Fatalf("test run: %v", err)
	}
	return ret
}

// runN feeds the frame n times and returns how many passed.
func runN(t testing.TB, l *Limiter, frame []byte, n int) (passed int) {
	t.Helper()
	for i := 0; i < n; i++ {
		switch ret := run(t, l, frame); ret {
		case xdpPass:
			passed++
		case xdpDrop:
		default:
			t.Fatalf("unexpected XDP action %d", ret)
		}
	}
	return passed
}

// counts returns the counters as "port/reason" -> packets.
func counts(t testing.TB, l *Limiter) map[string]uint64 {
	t.Helper()
	cs, err := l.Counters()
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]uint64{}
	for _, c := range cs {
		if c.Packets > 0 {
			m[fmt.Sprintf("%d/%s", c.Port, c.Reason)] += c.Packets
		}
	}
	return m
}

func equalCounts(t testing.TB, got, want map[string]uint64) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("counters = %v, want %v", got, want)
	}
}

// TestParse checks which frames the limiter recognises: with a per-source burst of 2,
// a recognised frame passes twice and is then dropped; any other frame always passes
// and, where the program says so, is counted as a fragment or a truncated header.
func TestParse(t *testing.T) {
	const port = 161
	rule := Rule{Port: port, PerSource: 60, Burst: 2}
	v6ext := append(append(ext(layers.IPProtocolIPv6Routing, 0), ext(layers.IPProtocolIPv6Destination, 2)...), ext(layers.IPProtocolUDP, 1)...)
	full4 := func(t *testing.T) []byte { return udp4(t, "198.18.0.10", port, frameOpt{}) }
	cases := []struct {
		name    string
		frame   func(t *testing.T) []byte
		limited bool   // recognised and limited
		counter string // for unlimited frames: the slot-0 counter it must bump ("" none)
	}{
		{"ipv4", full4, true, ""},
		{"ipv4 options", func(t *testing.T) []byte {
			return udp4(t, "198.18.0.10", port, frameOpt{ipOpts: []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 1},
				{OptionType: 7, OptionLength: 11, OptionData: make([]byte, 9)}, {OptionType: 0}}})
		}, true, ""},
		{"802.1Q", func(t *testing.T) []byte {
			return udp4(t, "198.18.0.10", port, frameOpt{vlans: []layers.EthernetType{layers.EthernetTypeDot1Q}})
		}, true, ""},
		{"QinQ 802.1ad", func(t *testing.T) []byte {
			return udp4(t, "198.18.0.10", port, frameOpt{vlans: []layers.EthernetType{layers.EthernetTypeQinQ, layers.EthernetTypeDot1Q}})
		}, true, ""},
		{"double 802.1Q", func(t *testing.T) []byte {
			return udp6(t, "2001:db8::10", port, frameOpt{vlans: []layers.EthernetType{layers.EthernetTypeDot1Q, layers.EthernetTypeDot1Q}})
		}, true, ""},
		{"three tags not walked", func(t *testing.T) []byte {
			return udp4(t, "198.18.0.10", port, frameOpt{vlans: []layers.EthernetType{layers.EthernetTypeQinQ, layers.EthernetTypeDot1Q, layers.EthernetTypeDot1Q}})
		}, false, ""},
		{"ipv6", func(t *testing.T) []byte { return udp6(t, "2001:db8::10", port, frameOpt{}) }, true, ""},
		{"ipv6 hop-by-hop routing dstopts", func(t *testing.T) []byte {
			return udp6(t, "2001:db8::10", port, frameOpt{next6: layers.IPProtocolIPv6HopByHop, ext6: v6ext})
		}, true, ""},
		{"ipv6 in QinQ with ext", func(t *testing.T) []byte {
			return udp6(t, "2001:db8::10", port, frameOpt{vlans: []layers.EthernetType{layers.EthernetTypeQinQ, layers.EthernetTypeDot1Q},
				next6: layers.IPProtocolIPv6Destination, ext6: ext(layers.IPProtocolUDP, 0)})
		}, true, ""},
		{"ipv6 seven ext headers not walked", func(t *testing.T) []byte {
			var e []byte
			for i := 0; i < 6; i++ {
				e = append(e, ext(layers.IPProtocolIPv6Destination, 0)...)
			}
			e = append(e, ext(layers.IPProtocolUDP, 0)...)
			return udp6(t, "2001:db8::10", port, frameOpt{next6: layers.IPProtocolIPv6Destination, ext6: e})
		}, false, ""},
		{"ipv6 fragment", func(t *testing.T) []byte {
			return udp6(t, "2001:db8::10", port, frameOpt{next6: layers.IPProtocolIPv6Fragment, ext6: fragHdr(layers.IPProtocolUDP, 0, true)})
		}, false, "0/fragment"},
		{"ipv6 later fragment after hop-by-hop", func(t *testing.T) []byte {
			return udp6(t, "2001:db8::10", port, frameOpt{next6: layers.IPProtocolIPv6HopByHop,
				ext6: append(ext(layers.IPProtocolIPv6Fragment, 0), fragHdr(layers.IPProtocolUDP, 185, false)...)})
		}, false, "0/fragment"},
		{"ipv6 TCP fragment not counted", func(t *testing.T) []byte {
			return udp6(t, "2001:db8::10", port, frameOpt{next6: layers.IPProtocolIPv6Fragment, ext6: fragHdr(layers.IPProtocolTCP, 0, true)})
		}, false, ""},
		{"ipv4 first fragment", func(t *testing.T) []byte {
			return udp4(t, "198.18.0.10", port, frameOpt{flags: layers.IPv4MoreFragments})
		}, false, "0/fragment"},
		{"ipv4 later fragment", func(t *testing.T) []byte {
			return udp4(t, "198.18.0.10", port, frameOpt{fragOff: 185})
		}, false, "0/fragment"},
		{"ipv4 DF is not a fragment", func(t *testing.T) []byte {
			return udp4(t, "198.18.0.10", port, frameOpt{flags: layers.IPv4DontFragment})
		}, true, ""},
		{"tcp to the port", func(t *testing.T) []byte { return udp4(t, "198.18.0.10", port, frameOpt{proto: layers.IPProtocolTCP}) }, false, ""},
		{"tcp6 to the port", func(t *testing.T) []byte { return udp6(t, "2001:db8::10", port, frameOpt{proto: layers.IPProtocolTCP}) }, false, ""},
		{"icmp", func(t *testing.T) []byte {
			return udp4(t, "198.18.0.10", port, frameOpt{proto: layers.IPProtocolICMPv4})
		}, false, ""},
		{"other udp port", func(t *testing.T) []byte { return udp4(t, "198.18.0.10", 162, frameOpt{}) }, false, ""},
		{"other udp6 port", func(t *testing.T) []byte { return udp6(t, "2001:db8::10", 16100, frameOpt{}) }, false, ""},
		{"arp", func(t *testing.T) []byte {
			return serialize(t, &layers.Ethernet{SrcMAC: macA, DstMAC: macB, EthernetType: layers.EthernetTypeARP},
				&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
					Operation: layers.ARPRequest, SourceHwAddress: macA, SourceProtAddress: []byte{198, 18, 0, 1},
					DstHwAddress: make([]byte, 6), DstProtAddress: []byte{198, 18, 0, 2}})
		}, false, ""},
		{"truncated: ethernet only", func(t *testing.T) []byte { return full4(t)[:14] }, false, "0/truncated"},
		{"truncated: half an IPv4 header", func(t *testing.T) []byte { return full4(t)[:14+10] }, false, "0/truncated"},
		{"truncated: half a UDP header", func(t *testing.T) []byte { return full4(t)[:14+20+4] }, false, "0/truncated"},
		{"truncated: IPv4 options", func(t *testing.T) []byte {
			return udp4(t, "198.18.0.10", port, frameOpt{ipOpts: []layers.IPv4Option{{OptionType: 7, OptionLength: 11, OptionData: make([]byte, 9)}, {OptionType: 0}}})[:14+22]
		}, false, "0/truncated"},
		{"malformed: IHL 4", func(t *testing.T) []byte { f := full4(t); f[14] = 0x44; return f }, false, "0/truncated"},
		{"truncated: VLAN tag", func(t *testing.T) []byte {
			return udp4(t, "198.18.0.10", port, frameOpt{vlans: []layers.EthernetType{layers.EthernetTypeDot1Q}})[:16]
		}, false, ""},
		{"truncated: IPv6 header", func(t *testing.T) []byte { return udp6(t, "2001:db8::10", port, frameOpt{})[:14+30] }, false, "0/truncated"},
		{"truncated: IPv6 ext header", func(t *testing.T) []byte {
			return udp6(t, "2001:db8::10", port, frameOpt{next6: layers.IPProtocolIPv6HopByHop, ext6: v6ext})[:14+40+8+1]
		}, false, "0/truncated"},
		{"truncated: UDP after IPv6 ext", func(t *testing.T) []byte {
			return udp6(t, "2001:db8::10", port, frameOpt{next6: layers.IPProtocolIPv6HopByHop, ext6: v6ext})[:14+40+len(v6ext)+6]
		}, false, "0/truncated"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := loadTest(t, rule)
			frame := tc.frame(t)
			passed := runN(t, l, frame, 5)
			got := counts(t, l)
			if tc.limited {
				if passed != 2 {
					t.Errorf("passed %d of 5, want the burst of 2", passed)
				}
				equalCounts(t, got, map[string]uint64{"161/ok": 2, "161/per_source": 3})
				return
			}
			if passed != 5 {
				t.Errorf("passed %d of 5, want all", passed)
			}
			want := map[string]uint64{}
			if tc.counter != "" {
				want[tc.counter] = 5
			}
			equalCounts(t, got, want)
		})
	}
}

// TestFramesAreReal checks that gopacket itself decodes the crafted frames down to
// UDP, so the parser is tested against well-formed encapsulations.
func TestFramesAreReal(t *testing.T) {
	v6ext := append(append(ext(layers.IPProtocolIPv6Routing, 0), ext(layers.IPProtocolIPv6Destination, 2)...), ext(layers.IPProtocolUDP, 1)...)
	for name, f := range map[string][]byte{
		"qinq4":  udp4(t, "198.18.0.10", 161, frameOpt{vlans: []layers.EthernetType{layers.EthernetTypeQinQ, layers.EthernetTypeDot1Q}}),
		"opts4":  udp4(t, "198.18.0.10", 161, frameOpt{ipOpts: []layers.IPv4Option{{OptionType: 7, OptionLength: 11, OptionData: make([]byte, 9)}, {OptionType: 0}}}),
		"ext6":   udp6(t, "2001:db8::10", 161, frameOpt{next6: layers.IPProtocolIPv6HopByHop, ext6: v6ext}),
		"vlan6x": udp6(t, "2001:db8::10", 161, frameOpt{vlans: []layers.EthernetType{layers.EthernetTypeDot1Q}, next6: layers.IPProtocolIPv6Destination, ext6: ext(layers.IPProtocolUDP, 0)}),
	} {
		p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
		if el := p.ErrorLayer(); el != nil {
			t.Errorf("%s: gopacket: %v", name, el.Error())
		}
		u, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if !ok || u.DstPort != 161 || string(u.Payload) != "0123456789abcdef" {
			t.Errorf("%s: gopacket did not find the UDP datagram: %v", name, p)
		}
	}
}

// TestTokenBucket checks the exact bucket arithmetic over simulated time.
func TestTokenBucket(t *testing.T) {
	l := loadTest(t, Rule{Port: 161, PerSource: 120, Burst: 3}, Rule{Port: 623, PerSource: 7, Burst: 1})
	f := udp4(t, "198.18.0.10", 161, frameOpt{})
	steps := []struct {
		at     uint64 // ns after t0
		send   int
		passed int
	}{
		{0, 5, 3},                               // the burst
		{499_999_999, 1, 0},                     // one token every 500 ms: 1 ns short
		{500_000_000, 2, 1},                     // exactly one
		{500_000_000 + 1_500_000_000, 4, 3},     // exactly three more
		{2_000_000_000 + 3_600e9, 5, 3},         // an hour later: capped at the burst
		{2_000_000_000 + 3_600e9 + 250e6, 1, 0}, // half a token
		{2_000_000_000 + 3_600e9 + 750e6, 1, 1}, // the half and another half
	}
	total, passed := 0, 0
	for _, s := range steps {
		l.setClock(t, t0+s.at)
		got := runN(t, l, f, s.send)
		if got != s.passed {
			t.Errorf("at +%v: %d of %d passed, want %d", time.Duration(s.at), got, s.send, s.passed)
		}
		total += s.send
		passed += got
	}
	equalCounts(t, counts(t, l), map[string]uint64{"161/ok": uint64(passed), "161/per_source": uint64(total - passed)})

	// 7 per minute: one token every 8.571428571428... s, never rounded.
	g := udp6(t, "2001:db8::10", 623, frameOpt{})
	l.setClock(t, t0)
	if got := runN(t, l, g, 2); got != 1 {
		t.Fatalf("623: %d passed, want 1", got)
	}
	l.setClock(t, t0+8_571_428_571) // 7 * 8571428571 = 59999999997 units: short by 3
	if got := runN(t, l, g, 1); got != 0 {
		t.Errorf("623 at 8.571428571 s: passed, want drop")
	}
	l.setClock(t, t0+8_571_428_572)
	if got := runN(t, l, g, 2); got != 1 {
		t.Errorf("623 at 8.571428572 s: %d passed, want 1", got)
	}
}

// TestGlobalBucket checks the global bucket, the reserve that unknown sources cannot
// take, and that a per-source drop does not spend global tokens.
func TestGlobalBucket(t *testing.T) {
	l := loadTest(t, Rule{Port: 47808, PerSource: 600, Burst: 100, Global: 60, GlobalBurst: 8, Reserve: 2})
	src := func(i int) []byte { return udp4(t, fmt.Sprintf("10.0.0.%d", i), 47808, frameOpt{}) }
	// Four new sources take the global tokens down to the reserve; 1 and 2 are
	// answered twice, which makes them known, 3 and 4 once.
	for i, n := range []int{2, 2, 1, 1} {
		if got := runN(t, l, src(i+1), n); got != n {
			t.Fatalf("new source %d: %d of %d passed", i+1, got, n)
		}
	}
	if got := runN(t, l, src(7), 3); got != 0 {
		t.Errorf("new source 7: %d passed with only the reserve left, want 0", got)
	}
	if got := runN(t, l, src(3), 1); got != 0 {
		t.Errorf("source 3, answered once: passed with only the reserve left")
	}
	if got := runN(t, l, src(1), 4); got != 2 {
		t.Errorf("known source 1: %d passed, want the 2 reserved tokens", got)
	}
	l.setClock(t, t0+1e9) // one token
	if got := runN(t, l, src(8), 1); got != 0 {
		t.Errorf("new source 8 passed below the reserve")
	}
	if got := runN(t, l, src(2), 2); got != 1 {
		t.Errorf("known source 2: %d passed, want 1", got)
	}
	l.setClock(t, t0+4e9) // three tokens: one new source fits above the reserve of 2
	if got := runN(t, l, src(9), 1) + runN(t, l, src(10), 1); got != 1 {
		t.Errorf("new sources 9, 10: %d passed, want 1", got)
	}
	equalCounts(t, counts(t, l), map[string]uint64{"47808/ok": 10, "47808/global_new": 6, "47808/global": 3})

	// Per-source drops do not spend global tokens.
	l2 := loadTest(t, Rule{Port: 161, PerSource: 60, Burst: 1, Global: 60, GlobalBurst: 3, Reserve: -1})
	a, b := udp4(t, "10.0.0.1", 161, frameOpt{}), udp4(t, "10.0.0.2", 161, frameOpt{})
	if got := runN(t, l2, a, 10) + runN(t, l2, b, 3); got != 2 {
		t.Errorf("passed %d, want one per source", got)
	}
	if got := runN(t, l2, udp4(t, "10.0.0.3", 161, frameOpt{}), 1); got != 1 {
		t.Errorf("third source dropped although the global bucket has a token left")
	}
	equalCounts(t, counts(t, l2), map[string]uint64{"161/ok": 3, "161/per_source": 11})
}

// TestRuntimeRules changes, adds and deletes rules without reloading.
func TestRuntimeRules(t *testing.T) {
	l := loadTest(t, Rule{Port: 161, PerSource: 60, Burst: 1})
	f := udp4(t, "10.0.0.1", 161, frameOpt{})
	if got := runN(t, l, f, 3); got != 1 {
		t.Fatalf("passed %d, want 1", got)
	}
	if err := l.SetRule(Rule{Port: 161, PerSource: 6000, Burst: 10}); err != nil {
		t.Fatal(err)
	}
	if got := runN(t, l, f, 1); got != 0 {
		t.Errorf("an empty bucket passed without time passing")
	}
	l.setClock(t, t0+30e6) // 6000/min = one token per 10 ms
	if got := runN(t, l, f, 5); got != 3 {
		t.Errorf("after 30 ms at the new rate: %d passed, want 3", got)
	}
	g := udp4(t, "10.0.0.1", 47808, frameOpt{})
	if got := runN(t, l, g, 4); got != 4 {
		t.Errorf("unconfigured port: %d of 4 passed", got)
	}
	if err := l.SetRule(Rule{Port: 47808, Global: 60, GlobalBurst: 2}); err != nil {
		t.Fatal(err)
	}
	if got := runN(t, l, g, 4); got != 2 {
		t.Errorf("new global rule: %d passed, want 2", got)
	}
	if err := l.DeleteRule(161); err != nil {
		t.Fatal(err)
	}
	if got := runN(t, l, f, 20); got != 20 {
		t.Errorf("deleted rule: %d of 20 passed", got)
	}
	rules, err := l.Rules()
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != 1 || rules[0].Port != 47808 || rules[0].Global != 60 || rules[0].GlobalBurst != 2 {
		t.Errorf("rules = %+v", rules)
	}
	for _, bad := range []Rule{{Port: 0, PerSource: 1}, {Port: 1, PerSource: -1}, {Port: 1, Global: 10, Reserve: 10}, {Port: 1, PerSource: maxPerMinute + 1}} {
		if err := l.SetRule(bad); err == nil {
			t.Errorf("SetRule(%+v) accepted", bad)
		}
	}
}

// TestSourcesAndEvents checks the per-source table (IPv4 and IPv6 keys), TopSources,
// WriteStats and the start/stop notifications.
func TestSourcesAndEvents(t *testing.T) {
	l := loadTest(t, Rule{Port: 161, PerSource: 60, Burst: 2})
	runN(t, l, udp4(t, "198.18.0.10", 161, frameOpt{}), 7)
	runN(t, l, udp6(t, "2001:db8::10", 161, frameOpt{}), 4)
	runN(t, l, udp4(t, "198.18.0.11", 161, frameOpt{}), 1)
	top, tracked, limited, err := l.TopSources(10)
	if err != nil {
		t.Fatal(err)
	}
	if tracked != 3 || limited != 2 || len(top) != 2 {
		t.Fatalf("tracked %d limited %d top %+v", tracked, limited, top)
	}
	if top[0].Addr != netip.MustParseAddr("198.18.0.10") || top[0].Dropped != 5 || top[0].Passed != 2 ||
		top[1].Addr != netip.MustParseAddr("2001:db8::10") || top[1].Dropped != 2 || !top[1].Limited {
		t.Errorf("top = %+v", top)
	}
	starts := map[string]bool{}
	for i := 0; i < 2; i++ {
		ev := nextEvent(t, l)
		if ev.Kind != "start" || ev.Scope != "source" || ev.Port != 161 {
			t.Errorf("event %+v", ev)
		}
		starts[ev.Source.String()] = true
	}
	if !starts["198.18.0.10"] || !starts["2001:db8::10"] {
		t.Errorf("start events for %v", starts)
	}
	var sb strings.Builder
	if err := l.WriteStats(&sb, 5); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"161", "per_source", "198.18.0.10", "2001:db8::10", "sources tracked: 3 of 1024, limited now: 2"} {
		if !strings.Contains(sb.String(), want) {
			t.Errorf("stats lack %q:\n%s", want, sb.String())
		}
	}
	t.Logf("icsnare xdp stats:\n%s", sb.String())

	// More drops within the quiet period start no new episode; after it, the sweep
	// reports the end with the episode's drop count.
	l.setClock(t, t0+5e9)
	runN(t, l, udp4(t, "198.18.0.10", 161, frameOpt{}), 10) // refilled to the burst of 2, 8 dropped
	l.setClock(t, t0+5e9+10e9+1)
	l.notify.sweep()
	stops := map[string]uint64{}
	for i := 0; i < 2; i++ {
		ev := nextEvent(t, l)
		if ev.Kind != "stop" {
			t.Fatalf("event %+v, want a stop", ev)
		}
		stops[ev.Source.String()] = ev.Dropped
	}
	if stops["198.18.0.10"] != 13 || stops["2001:db8::10"] != 2 {
		t.Errorf("stops = %v", stops)
	}
	// A drop after the quiet period is a new episode.
	runN(t, l, udp4(t, "198.18.0.10", 161, frameOpt{}), 3)
	if ev := nextEvent(t, l); ev.Kind != "start" || ev.Source.String() != "198.18.0.10" {
		t.Errorf("event %+v, want a new start", ev)
	}
}

// TestGlobalEvents checks the global start/stop notifications and their rate limit.
func TestGlobalEvents(t *testing.T) {
	protocoltest.NeedRoot(t)
	l, err := Load(Config{Rules: []Rule{{Port: 623, Global: 60, GlobalBurst: 1}, {Port: 161, PerSource: 60, Burst: 1}},
		MaxSources: 1024, NotifyRate: 0.001, NotifyBurst: 2, SweepInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.setClock(t, t0)
	runN(t, l, udp4(t, "10.0.0.1", 623, frameOpt{}), 4)
	if ev := nextEvent(t, l); ev.Kind != "start" || ev.Scope != "global" || ev.Port != 623 {
		t.Errorf("event %+v", ev)
	}
	for i := 1; i <= 5; i++ { // five sources limited: only one more notification fits
		runN(t, l, udp4(t, fmt.Sprintf("10.0.1.%d", i), 161, frameOpt{}), 2)
	}
	ev := nextEvent(t, l)
	if ev.Kind != "start" || ev.Scope != "source" {
		t.Errorf("event %+v", ev)
	}
	deadline := time.Now().Add(2 * time.Second)
	for l.Suppressed() < 4 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if s := l.Suppressed(); s != 4 {
		t.Errorf("suppressed %d, want 4", s)
	}
	select {
	case ev := <-l.Events():
		t.Errorf("unexpected event %+v", ev)
	default:
	}
	lost, err := l.EventsLost()
	if err != nil || lost != 0 {
		t.Errorf("lost %d, %v", lost, err)
	}
}

func nextEvent(t testing.TB, l *Limiter) LimitEvent {
	t.Helper()
	select {
	case ev := <-l.Events():
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no limit event within 5s")
	}
	return LimitEvent{}
}

// TestKnownBitmap checks that the program and knownBit agree on the bitmap, that a
// source takes its bit when it is answered for the second time (not before), that a
// set bit alone does not let a source into the reserve, that a rebuild keeps the known
// sources' bits and drops the others, and that known sources keep the reserve across
// rebuilds.
func TestKnownBitmap(t *testing.T) {
	l := loadTest(t, Rule{Port: 161, PerSource: 600, Burst: 10, Global: 60, GlobalBurst: 9, Reserve: 2},
		Rule{Port: 161, Class: "get", PerSource: 600, Burst: 10})
	srcs := [][]byte{
		udp4(t, "10.0.0.1", 161, frameOpt{}),
		udp6(t, "2001:db8::1", 161, frameOpt{}),
		udp4(t, "10.0.0.2", 161, frameOpt{}),
	}
	for _, f := range srcs { // answered twice each: known
		if runN(t, l, f, 2) != 2 {
			t.Fatal("new source dropped with a full bucket")
		}
	}
	once := udp4(t, "10.0.0.4", 161, frameOpt{})
	if runN(t, l, once, 1) != 1 { // the global bucket is now at its reserve
		t.Fatal("source answered once: dropped with tokens above the reserve")
	}
	keys := map[string]ratelimitSrcKey{}
	if err := l.walkSources(func(k *ratelimitSrcKey, _ *ratelimitSrcState) { keys[keyAddr(k.Family, k.Addr).String()] = *k }); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 4 {
		t.Fatalf("%d sources", len(keys))
	}
	for a, k := range keys {
		want := a != "10.0.0.4"
		if l.known.has(0, &k) != want || l.known.has(1, &k) != want {
			t.Errorf("%s: bit %v/%v, want %v in both halves", a, l.known.has(0, &k), l.known.has(1, &k), want)
		}
	}
	// Only the reserve is left: sources not known are dropped (via the bitmap),
	// known ones pass.
	if runN(t, l, udp4(t, "10.0.0.3", 161, frameOpt{}), 1) != 0 {
		t.Error("unknown source passed in the reserve zone")
	}
	if runN(t, l, once, 1) != 0 {
		t.Error("source answered once passed in the reserve zone")
	}
	// A bit another source set (a hash collision) is confirmed by the table's count.
	k4 := keys["10.0.0.4"]
	b := knownBit(&k4)
	atomic.OrUint64(&l.known.words[b/64], 1<<(b%64))
	if runN(t, l, once, 1) != 0 {
		t.Error("source answered once passed in the reserve zone on a colliding bit")
	}
	// Evict 10.0.0.2 and rebuild: its bit and the stray one go, the others stay.
	evicted := keys["10.0.0.2"]
	if err := l.objs.Sources.Delete(&evicted); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ { // twice: both halves rebuilt
		if err := l.rebuildKnown(); err != nil {
			t.Fatal(err)
		}
	}
	var half uint32
	if err := l.objs.KnownHalf.Get(&half); err != nil || half != 0 {
		t.Fatalf("known half %d, %v", half, err)
	}
	for a, k := range keys {
		want := a == "10.0.0.1" || a == "2001:db8::1"
		if l.known.has(0, &k) != want || l.known.has(1, &k) != want {
			t.Errorf("%s: bit %v/%v after rebuild, want %v", a, l.known.has(0, &k), l.known.has(1, &k), want)
		}
	}
	if runN(t, l, srcs[1], 1) != 1 {
		t.Error("known IPv6 source lost the reserve after a rebuild")
	}
	if runN(t, l, srcs[2], 1) != 0 {
		t.Error("evicted source passed in the reserve zone")
	}
	// A class rule's sources are keyed with the class.
	get := udp4(t, "10.0.0.9", 161, frameOpt{payload: snmpMsg(t, 1, 0xa0)})
	l.setClock(t, t0+10e9) // refill the global bucket
	if runN(t, l, get, 2) != 2 {
		t.Fatal("get dropped")
	}
	found := false
	_ = l.walkSources(func(k *ratelimitSrcKey, _ *ratelimitSrcState) {
		if k.Class == 1 {
			found = l.known.has(0, k) && l.known.has(1, k)
		}
	})
	if !found {
		t.Error("class-keyed source not marked known")
	}
	equalCounts(t, counts(t, l), map[string]uint64{"161/ok": 10, "161/global_new": 4})
}

// TestAdmission: while a port's global bucket is limiting (it dropped within the quiet
// period), only the first and then every ratelimit.AdmitEvery-th source not in the table
// that passes is inserted; the others pass untracked (pass/unadmitted), so a second
// request of theirs is not held to the per-source bucket. After a quiet period without
// drops every new source is inserted again. The userspace twin decides every packet the
// same way.
func TestAdmission(t *testing.T) {
	rule := Rule{Port: 161, PerSource: 60, Burst: 1, Global: 6000, GlobalBurst: 4, Reserve: -1}
	l := loadTest(t, rule)
	clock := int64(t0)
	twin, err := ratelimit.New([]ratelimit.Rule{{Port: 161, PerSource: 60, Burst: 1, Global: 6000, GlobalBurst: 4, Reserve: -1}},
		ratelimit.Config{Now: func() int64 { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	addr := func(i int) string { return fmt.Sprintf("10.1.%d.%d", i/250, 1+i%250) }
	send := func(i int) bool {
		t.Helper()
		kernel := run(t, l, udp4(t, addr(i), 161, frameOpt{})) == xdpPass
		if d := twin.Allow(161, netip.MustParseAddr(addr(i)), nil); d.Allowed() != kernel {
			t.Fatalf("source %s at %d ns: kernel pass=%v, userspace %v", addr(i), clock, kernel, d.Reason)
		}
		return kernel
	}
	tick := func(ns int64) { clock += ns; l.setClock(t, uint64(clock)) }

	// The burst: four new sources pass and are inserted, the fifth finds the bucket empty.
	for i := range 5 {
		if got := send(i); got != (i < 4) {
			t.Fatalf("new source %d: passed %v in the burst", i, got)
		}
	}
	// Limiting now: one token every 10 ms, each to a new source. 40 pass; the first and
	// every 16th of them (100, 116, 132) are admitted.
	for i := 100; i < 140; i++ {
		tick(10e6)
		if !send(i) {
			t.Fatalf("new source %d dropped with a token in the bucket", i)
		}
	}
	var admitted []int
	tracked := 0
	if err := l.walkSources(func(k *ratelimitSrcKey, _ *ratelimitSrcState) {
		tracked++
		if b := keyAddr(k.Family, k.Addr).As4(); b[1] == 1 && int(b[2])*250+int(b[3])-1 >= 100 {
			admitted = append(admitted, int(b[2])*250+int(b[3])-1)
		}
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(admitted)
	if want := []int{100, 116, 132}; !slices.Equal(admitted, want) || tracked != 4+len(want) {
		t.Errorf("admitted while limiting: %v (%d tracked), want %v (and the burst's 4)", admitted, tracked, want)
	}
	// A second request 10 ms on, before a source's own bucket refills: an admitted source
	// is held to it, an unadmitted one passes with the global token (and, the 41st
	// unadmitted pass, is not admitted either).
	tick(10e6)
	if send(116) {
		t.Error("admitted source 116: second request passed its empty bucket")
	}
	if !send(101) {
		t.Error("unadmitted source 101: second request dropped with a global token left")
	}
	equalCounts(t, counts(t, l), map[string]uint64{"161/global": 1, "161/ok": 7, "161/per_source": 1, "161/unadmitted": 38})

	// A quiet period without drops ends the limiting: new sources are all inserted.
	tick(11e9)
	for i := 200; i < 204; i++ {
		if !send(i) {
			t.Fatalf("new source %d dropped after the quiet period", i)
		}
	}
	if tracked2, err := l.SourceCount(); err != nil || tracked2 != tracked+4 {
		t.Errorf("after the quiet period: %d tracked (%v), want %d", tracked2, err, tracked+4)
	}
}

// TestCoarseClockCache runs the program on the real clock: each run's time is the
// cached coarse clock (the source's last_ns equals it afterwards), it is within a second
// of CLOCK_MONOTONIC (a tick behind at most, in fact) and never goes back, and the cache
// follows the jiffies across runs tens of milliseconds apart.
func TestCoarseClockCache(t *testing.T) {
	l := loadTest(t, Rule{Port: 161, PerSource: 6_000_000, Burst: 100})
	l.setClock(t, 0)
	frame := udp4(t, "10.0.0.1", 161, frameOpt{})
	var lastNs, firstJiffies, jiffies uint64
	for i := range 6 {
		if i > 0 {
			time.Sleep(15 * time.Millisecond) // more than a tick at any HZ >= 100
		}
		if got := run(t, l, frame); got != xdpPass {
			t.Fatalf("run %d: action %d, want pass", i, got)
		}
		after := uint64(monotonicNow())
		var coarse uint64
		if err := l.objs.ClockCoarse.Get(&coarse); err != nil {
			t.Fatal(err)
		}
		if err := l.objs.ClockJiffies.Get(&jiffies); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			firstJiffies = jiffies
		}
		var st ratelimitSrcState
		n := 0
		if err := l.walkSources(func(_ *ratelimitSrcKey, s *ratelimitSrcState) { st = *s; n++ }); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Fatalf("run %d: %d sources in the table, want 1", i, n)
		}
		if st.LastNs != coarse {
			t.Errorf("run %d: the source's time %d is not the cached clock %d", i, st.LastNs, coarse)
		}
		if coarse > after || after-coarse > uint64(time.Second) {
			t.Errorf("run %d: cached clock %d, CLOCK_MONOTONIC %d after the run", i, coarse, after)
		}
		if coarse < lastNs {
			t.Errorf("run %d: the clock went back from %d to %d", i, lastNs, coarse)
		}
		lastNs = coarse
	}
	if jiffies == firstJiffies || jiffies == 0 {
		t.Errorf("cached jiffy %d after 75 ms, %d at the first run", jiffies, firstJiffies)
	}
}

// monotonicNow is CLOCK_MONOTONIC in nanoseconds.
func monotonicNow() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}
