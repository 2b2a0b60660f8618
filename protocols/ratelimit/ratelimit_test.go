package ratelimit

import (
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/icsnare/icsnare/protocols"
)

// Example classes of the protocols the issue names.
var (
	whoIs = []protocols.Pattern{
		MustParsePattern("0:810b 4:01 5:00/f8 6:1008"),              // no NPDU options; priority and expecting-reply bits ignored
		MustParsePattern("0:810b 4:01 5:20/f8 6:ffff 8:00 10:1008"), // global broadcast DNET, DLEN 0
	}
	presencePing = []protocols.Pattern{MustParsePattern("0:0600ff06 4:000011be 8:80")}
	tftpRead     = []protocols.Pattern{MustParsePattern("0:0001")}
	tftpWrite    = []protocols.Pattern{MustParsePattern("0:0002")}
)

type clock struct{ ns int64 }

func (c *clock) now() int64 { return c.ns }

func mustNew(t *testing.T, c *clock, max int, rules ...Rule) *Limiter {
	t.Helper()
	l, err := New(rules, Config{Now: c.now, MaxSources: max})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestParsePattern(t *testing.T) {
	cases := []struct{ in, out, err string }{
		{"0:810b 4:01 5:00/fc", "0:810b 4:01 5:00/fc", ""},
		{" 0:0001  ", "0:0001", ""},
		{"12:DEADbeef/ffff0000", "", "bits outside mask"},
		{"12:dead/ff", "", "mask has 1 bytes"},
		{"", "", "empty pattern"},
		{"x:00", "", "bad offset"},
		{"-1:00", "", "bad offset"},
		{"3:0g", "", "bad hex value"},
		{"3", "", "want OFFSET:HEX"},
		{"3:", "", "bad hex value"},
		{"1021:00112233", "", "beyond byte 1024"},
		{"0:00 1:00 2:00 3:00 4:00 5:00 6:00 7:00 8:00", "", "at most 8"},
		{"0:0102 1:03", "", "contradict at offset 1"},
		{"0:0102 1:02/0f 0:01", "0:0102 1:02/0f 0:01", ""},
	}
	for _, tc := range cases {
		p, err := ParsePattern(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParsePattern(%q) error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || FormatPattern(p) != tc.out {
			t.Errorf("ParsePattern(%q) = %q, %v; want %q", tc.in, FormatPattern(p), err, tc.out)
		}
	}
}

func TestRuleCheck(t *testing.T) {
	cases := []struct {
		r   Rule
		err string
	}{
		{Rule{Port: 47808, Class: "who-is", Match: whoIs, PerSource: 1}, ""},
		{Rule{Port: 161, Class: "get", PerSource: 1}, ""},
		{Rule{Port: 69, Class: "read"}, "no match and is not a built-in"},
		{Rule{Port: 69, Match: tftpRead}, "default class has no match"},
		{Rule{Port: 69, Class: "Read", Match: tftpRead}, "lower-case"},
		{Rule{Port: 69, Class: "a-very-long-class-name", Match: tftpRead}, "longer than 15"},
		{Rule{Port: 69, Class: "read", Match: []protocols.Pattern{{}}}, "empty"},
	}
	for _, tc := range cases {
		_, err := tc.r.withDefaults()
		if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%+v: error %v, want %q", tc.r, err, tc.err)
		}
	}
	if _, err := New([]Rule{{Port: 69, Class: "r", Match: tftpRead}, {Port: 69, Class: "r", Match: tftpWrite}}, Config{}); err == nil {
		t.Error("duplicate class accepted")
	}
	if _, err := New([]Rule{{Port: 69, Global: 10, Reserve: 10}}, Config{}); err == nil {
		t.Error("reserve equal to the global burst accepted")
	}
}

func TestClassify(t *testing.T) {
	l := mustNew(t, &clock{ns: 1}, 0,
		Rule{Port: 47808, Class: "who-is", Match: whoIs},
		Rule{Port: 47808, Class: "bvlc", Match: []protocols.Pattern{MustParsePattern("0:81")}},
		Rule{Port: 623, Class: "ping", Match: presencePing},
		Rule{Port: 69, Class: "read", Match: tftpRead},
		Rule{Port: 69, Class: "write", Match: tftpWrite},
		Rule{Port: 161, Class: "get"}, Rule{Port: 161, Class: "bulk"},
		Rule{Port: 161, Class: "long", Match: []protocols.Pattern{MustParsePattern("0:30")}},
	)
	hx := func(s string) []byte {
		b := make([]byte, 0, len(s)/2)
		for i := 0; i+1 < len(s); i += 2 {
			var v byte
			for _, c := range s[i : i+2] {
				v <<= 4
				switch {
				case c >= '0' && c <= '9':
					v |= byte(c - '0')
				default:
					v |= byte(c-'a') + 10
				}
			}
			b = append(b, v)
		}
		return b
	}
	v2get := hx("302602010104067075626c6963a0190204000000070201000201003000")
	cases := []struct {
		port    uint16
		payload []byte
		want    string
	}{
		{47808, hx("810b000801001008"), "who-is"},
		{47808, hx("810b000801041008"), "who-is"},           // expecting-reply bit ignored by the mask
		{47808, hx("810b000c0120ffff00ff1008"), "who-is"},   // global broadcast destination
		{47808, hx("810b000c0120ffff00ff1009"), "bvlc"},     // I-Am-ish: first class fails, second wins
		{47808, hx("810b0008010010"), "bvlc"},               // one byte short for Who-Is
		{47808, hx("820b000801001008"), ""},                 // not BVLC/IP
		{623, hx("0600ff06000011be80000000000000"), "ping"}, // RMCP, ASF, presence ping
		{623, hx("0600ff07000011be80"), ""},                 // IPMI class, not ASF
		{69, append(hx("0001"), []byte("boot.bin\x00octet\x00")...), "read"},
		{69, append(hx("0002"), []byte("x\x00octet\x00")...), "write"},
		{69, hx("0003"), ""},
		{69, hx("00"), ""},
		{161, v2get, "get"},
		{161, v2get[:14], "get"},
		{161, v2get[:13], "long"}, // BER fails, the pattern class takes it
		{161, []byte("x"), ""},
		{9999, v2get, ""},
	}
	for i, tc := range cases {
		if got := l.Classify(tc.port, tc.payload); got != tc.want {
			t.Errorf("case %d: port %d % x: class %q, want %q", i, tc.port, tc.payload, got, tc.want)
		}
	}
}

// TestBuckets replays the kernel's TestTokenBucket and TestGlobalBucket arithmetic on an
// injected clock.
func TestBuckets(t *testing.T) {
	const s = int64(1e9)
	a, b, c := netip.MustParseAddr("198.18.20.10"), netip.MustParseAddr("198.18.20.11"), netip.MustParseAddr("fd00:20::12")
	read := []byte{0, 1, 'f', 0}
	other := []byte{0, 5}
	type step struct {
		at      int64 // clock, ns
		src     netip.Addr
		payload []byte
		n       int    // requests
		passed  int    // of n
		reason  string // of the last one
		class   string
	}
	cases := []struct {
		name  string
		rules []Rule
		steps []step
	}{
		{"per source 120/min, burst 2", []Rule{{Port: 69, Class: "read", Match: tftpRead, PerSource: 120, Burst: 2}}, []step{
			{s, a, read, 5, 2, "per_source", "read"},
			{s + 499_999_999, a, read, 1, 0, "per_source", "read"},
			{s + 500_000_000, a, read, 2, 1, "per_source", "read"}, // one token every 0.5 s exactly
			{s + 500_000_000, b, read, 3, 2, "per_source", "read"}, // another source has its own bucket
			{s + 500_000_000, a, other, 10, 10, "ok", ""},          // the default class is unlimited
			{s + 100*s, a, read, 3, 2, "per_source", "read"},       // refilled to the burst, not beyond
		}},
		{"7 per minute", []Rule{{Port: 69, PerSource: 7}}, []step{
			{s, a, other, 8, 7, "per_source", ""},
			{s + 60*s/7, a, other, 1, 0, "per_source", ""}, // 8.571428571 s: one unit short
			{s + 60*s/7 + 1, a, other, 2, 1, "per_source", ""},
		}},
		{"global with reserve", []Rule{{Port: 69, Class: "read", Match: tftpRead, PerSource: 600, Burst: 10, Global: 60, GlobalBurst: 12, Reserve: 4}}, []step{
			{s, a, read, 5, 5, "ok", "read"},             // global 12 -> 7
			{s, b, read, 4, 4, "ok", "read"},             // unknown, 7 above the reserve: passes, is known, may take the reserve
			{s, c, read, 2, 0, "global_new", "read"},     // unknown, global at the reserve
			{s, a, read, 5, 3, "global", "read"},         // known: the rest, down to 0
			{s + s, c, read, 1, 0, "global_new", "read"}, // +1 token: still within the reserve
			{s + s, a, read, 1, 1, "ok", "read"},         // a known source takes it
		}},
		{"known after two answers", []Rule{{Port: 69, PerSource: 600, Burst: 10, Global: 60, GlobalBurst: 6, Reserve: 2}}, []step{
			{s, a, other, 1, 1, "ok", ""},         // global 6 -> 5; a answered once
			{s, b, other, 2, 2, "ok", ""},         // 5 -> 3; b answered twice: known
			{s, c, other, 1, 1, "ok", ""},         // 3 -> 2, the reserve
			{s, a, other, 1, 0, "global_new", ""}, // in the table but not known: not its reserve
			{s, b, other, 3, 2, "global", ""},     // known: the reserve, then the global drop
		}},
		{"global only", []Rule{{Port: 69, Global: 2}}, []step{
			{s, a, other, 2, 2, "ok", ""},
			{s, b, other, 1, 0, "global", ""},
			{s + 30*s, c, other, 2, 1, "global", ""},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clk := &clock{}
			l := mustNew(t, clk, 0, tc.rules...)
			for i, st := range tc.steps {
				clk.ns = st.at
				passed := 0
				var d Decision
				for j := 0; j < st.n; j++ {
					d = l.Allow(69, st.src, st.payload)
					if d.Allowed() {
						passed++
					}
				}
				if passed != st.passed || d.Reason.String() != st.reason || d.Class != st.class {
					t.Errorf("step %d: passed %d of %d, last %s class %q; want %d, %s, %q", i, passed, st.n, d.Reason, d.Class, st.passed, st.reason, st.class)
				}
			}
		})
	}
}

func TestKernelAndClassAPI(t *testing.T) {
	clk := &clock{ns: 1}
	l := mustNew(t, clk, 0, Rule{Port: 161, Class: "next", PerSource: 3, Global: 5})
	src := netip.MustParseAddr("::ffff:198.18.20.10") // unmapped: the same source as 198.18.20.10
	n := 0
	for i := 0; i < 5; i++ {
		if l.AllowClass(161, "next", src).Allowed() {
			n++
		}
	}
	if d := l.AllowClass(161, "next", netip.MustParseAddr("198.18.20.10")); n != 3 || d.Allowed() {
		t.Errorf("passed %d of 5 then %v, want 3 and a drop", n, d)
	}
	if !l.AllowClass(161, "get", src).Allowed() {
		t.Error("a class without a rule must use the unlimited default")
	}
	l.SetKernel(161, true)
	if !l.AllowClass(161, "next", src).Allowed() {
		t.Error("kernel-enforced port still limited in userspace")
	}
	l.SetKernel(161, false)
	if l.AllowClass(161, "next", src).Allowed() {
		t.Error("back in userspace: not limited")
	}
}

func TestSourceTableBounded(t *testing.T) {
	clk := &clock{ns: 1}
	l := mustNew(t, clk, 4, Rule{Port: 69, PerSource: 1})
	for i := 0; i < 100; i++ {
		if !l.Allow(69, netip.AddrFrom4([4]byte{198, 18, 20, byte(i)}), nil).Allowed() {
			t.Fatalf("source %d: first request dropped", i)
		}
		if len(l.sources) > 4 {
			t.Fatalf("%d sources tracked, bound 4", len(l.sources))
		}
	}
}

// TestConcurrent: many goroutines share one global bucket; exactly its burst passes.
func TestConcurrent(t *testing.T) {
	clk := &clock{ns: 1}
	l := mustNew(t, clk, 0, Rule{Port: 69, Global: 100, Reserve: -1})
	var wg sync.WaitGroup
	var mu sync.Mutex
	passed := 0
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			n := 0
			for i := 0; i < 50; i++ {
				if l.Allow(69, netip.AddrFrom4([4]byte{198, 18, 20, byte(g)}), nil).Allowed() {
					n++
				}
			}
			mu.Lock()
			passed += n
			mu.Unlock()
		}(g)
	}
	wg.Wait()
	if passed != 100 {
		t.Errorf("%d passed, want the global burst of 100", passed)
	}
}

// TestAdmission: while a class's global bucket is limiting, the first and then every
// AdmitEvery-th new source that passes is inserted, the others pass untracked; after a
// quiet period without drops every new source is inserted again.
func TestAdmission(t *testing.T) {
	clk := &clock{ns: 1e12}
	l := mustNew(t, clk, 0, Rule{Port: 161, PerSource: 60, Burst: 1, Global: 6000, GlobalBurst: 4, Reserve: -1})
	src := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 1, byte(i / 250), byte(1 + i%250)}) }
	allow := func(i int) bool { return l.Allow(161, src(i), nil).Allowed() }
	for i := range 5 { // the burst, then a global drop
		if got := allow(i); got != (i < 4) {
			t.Fatalf("new source %d in the burst: passed %v", i, got)
		}
	}
	for i := 100; i < 140; i++ { // one token every 10 ms, each to a new source
		clk.ns += 10e6
		if !allow(i) {
			t.Fatalf("new source %d dropped with a token in the bucket", i)
		}
	}
	var admitted []int
	for i := 100; i < 140; i++ {
		if l.sources[srcKey{port: 161, addr: src(i)}] != nil {
			admitted = append(admitted, i)
		}
	}
	if want := []int{100, 116, 132}; !slices.Equal(admitted, want) || len(l.sources) != 4+len(want) {
		t.Errorf("admitted %v of %d tracked, want %v and the burst's 4", admitted, len(l.sources), want)
	}
	clk.ns += 10e6
	if d := l.Allow(161, src(116), nil); d.Reason != DropPerSource {
		t.Errorf("admitted source: second request %v, want per_source", d.Reason)
	}
	if !allow(101) {
		t.Error("unadmitted source: second request dropped with a global token left")
	}
	clk.ns += 11e9 // the quiet period: no longer limiting
	for i := 200; i < 204; i++ {
		if !allow(i) || l.sources[srcKey{port: 161, addr: src(i)}] == nil {
			t.Errorf("new source %d after the quiet period: not passed and inserted", i)
		}
	}
}
