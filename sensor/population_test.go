package sensor

import (
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestPopulation checks the density and mix of a /16: the share of live addresses and of
// each profile is close to the configuration, the same seed gives the same population and
// another seed another one.
func TestPopulation(t *testing.T) {
	a, b, c := defaultDev(t), defaultDev(t), defaultDev(t)
	devs := map[string]*deviceProfile{"a": a, "b": b, "c": c}
	prefix := netip.MustParsePrefix("198.18.0.0/16")
	hr := HostRule{Addresses: []string{prefix.String()}, Profiles: map[string]float64{"a": 6, "b": 3, "c": 1}, Density: 0.25}
	count := func(seed uint64) (map[*deviceProfile]int, []bool) {
		r := newHostRegistry([]rule{newRule(prefix, hr, devs)}, seed, 1<<20, time.Hour)
		n := map[*deviceProfile]int{}
		var live []bool
		for i := 1; i < 1<<16-1; i++ {
			d, ok := r.match(netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}))
			live = append(live, ok)
			if ok {
				n[d]++
			}
		}
		return n, live
	}
	n, live1 := count(1)
	total := n[a] + n[b] + n[c]
	t.Logf("of 65,534 addresses at density 0.25: %d live; a %d, b %d, c %d", total, n[a], n[b], n[c])
	// 4 standard deviations of a binomial at these sizes.
	near := func(got int, p float64, of int) bool {
		mean := p * float64(of)
		return math.Abs(float64(got)-mean) <= 4*math.Sqrt(mean*(1-p))
	}
	if !near(total, 0.25, 65534) {
		t.Errorf("%d live addresses, want about %d", total, 65534/4)
	}
	for _, c := range []struct {
		d *deviceProfile
		p float64
	}{{a, 0.6}, {b, 0.3}, {c, 0.1}} {
		if !near(n[c.d], c.p, total) {
			t.Errorf("profile share %d of %d, want about %.0f", n[c.d], total, c.p*float64(total))
		}
	}
	_, again := count(1)
	_, other := count(2)
	same, diff := 0, 0
	for i := range live1 {
		if live1[i] == again[i] {
			same++
		}
		if live1[i] != other[i] {
			diff++
		}
	}
	if same != len(live1) {
		t.Errorf("the same seed gave another population (%d of %d the same)", same, len(live1))
	}
	if diff < len(live1)/10 {
		t.Errorf("another seed gave nearly the same population (%d of %d differ)", diff, len(live1))
	}
}

func TestHostRuleValidation(t *testing.T) {
	for _, c := range []struct {
		name string
		hr   HostRule
		ok   bool
	}{
		{"profile", HostRule{Addresses: []string{"10.0.0.0/24"}, Profile: "default"}, true},
		{"mix", HostRule{Addresses: []string{"10.0.0.0/24"}, Profiles: map[string]float64{"default": 1, "bmc": 2}, Density: 0.3}, true},
		{"both", HostRule{Addresses: []string{"10.0.0.0/24"}, Profile: "default", Profiles: map[string]float64{"bmc": 1}}, false},
		{"neither", HostRule{Addresses: []string{"10.0.0.0/24"}}, false},
		{"zero weight", HostRule{Addresses: []string{"10.0.0.0/24"}, Profiles: map[string]float64{"default": 0}}, false},
		{"negative weight", HostRule{Addresses: []string{"10.0.0.0/24"}, Profiles: map[string]float64{"default": -1}}, false},
		{"density above 1", HostRule{Addresses: []string{"10.0.0.0/24"}, Profile: "default", Density: 1.5}, false},
		{"negative density", HostRule{Addresses: []string{"10.0.0.0/24"}, Profile: "default", Density: -0.1}, false},
		{"NaN density", HostRule{Addresses: []string{"10.0.0.0/24"}, Profile: "default", Density: math.NaN()}, false},
	} {
		cfg := DefaultConfig()
		cfg.Hosts = []HostRule{c.hr}
		if err := cfg.Validate(); (err == nil) != c.ok {
			t.Errorf("%s: Validate() = %v, want ok %v", c.name, err, c.ok)
		}
	}
}

// TestPopulationServed serves a mix of two profiles at density 0.5 on a /24 and dials every
// address: about half answer, with both profiles present; the others refuse.
func TestPopulationServed(t *testing.T) {
	alpha, bravo := writeProfile(t, "alpha"), writeProfile(t, "bravo")
	r := startSensor(t, func(c *Config) {
		net24 := c.Hosts[0].Addresses[0]
		c.Hosts = []HostRule{{Addresses: []string{net24[:len(net24)-3] + "/24"}, Profiles: map[string]float64{alpha: 1, bravo: 1}, Density: 0.5}}
	})
	seen := map[string]int{}
	refused := 0
	for last := 1; last < 255; last++ {
		resp, err := dialLine(t, r.addr(t, last), "hello")
		if err != nil {
			refused++
			continue
		}
		seen[strings.Fields(resp)[0]]++
	}
	t.Logf("254 addresses: %d alpha, %d bravo, %d refused", seen["alpha"], seen["bravo"], refused)
	if seen["alpha"] == 0 || seen["bravo"] == 0 || refused == 0 {
		t.Fatalf("want both profiles and dark addresses: %v, %d refused", seen, refused)
	}
	if live := seen["alpha"] + seen["bravo"]; live < 127-4*8 || live > 127+4*8 {
		t.Errorf("%d live addresses of 254 at density 0.5", live)
	}
}
