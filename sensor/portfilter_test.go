package sensor

import (
	"net/netip"
	"testing"
	"time"

	"github.com/icsnare/icsnare/bpf"
	"github.com/icsnare/icsnare/protocols"
)

// TestPortFilterConfig checks the kernel port filter's tables against the host registry: for
// every address of the rules, the longest prefix entry names the profile match gives (or
// silences dark addresses and subnet edges), and the profiles' ports are their services'.
func TestPortFilterConfig(t *testing.T) {
	a, b := defaultDev(t), defaultDev(t)
	a.services = map[protocols.Endpoint]deviceService{{Transport: protocols.TCP, Port: 502}: {}, {Transport: protocols.UDP, Port: 161}: {}}
	b.services = map[protocols.Endpoint]deviceService{{Transport: protocols.TCP, Port: 102}: {}}
	mix := newRule(netip.MustParsePrefix("198.18.71.0/24"), HostRule{Profiles: map[string]float64{"a": 1, "b": 1}, Density: 0.5},
		map[string]*deviceProfile{"a": a, "b": b})
	r := newHostRegistry([]rule{
		{prefix: netip.MustParsePrefix("198.18.64.0/21"), dev: a},
		mix,
		{prefix: netip.MustParsePrefix("198.18.71.0/32"), dev: b}, // the /24's network address, as its own host
		{prefix: netip.MustParsePrefix("2001:db8::/64"), dev: a},
	}, 7, 1<<16, time.Hour)
	s := &Sensor{hosts: r, profiles: map[string]*deviceProfile{"a": a, "b": b}}
	cfg, warnings := s.portFilterConfig()
	if len(warnings) > 0 {
		t.Fatal(warnings)
	}
	if len(cfg.Listened) != 3 || len(cfg.Profiles) != 2 || len(cfg.Profiles[0]) != 2 || len(cfg.Profiles[1]) != 1 {
		t.Fatalf("listened %v profiles %v", cfg.Listened, cfg.Profiles)
	}
	lookup := func(addr netip.Addr) int {
		best, prof := -1, bpf.PortPass
		for _, p := range cfg.Prefixes {
			if p.Prefix.Contains(addr) && p.Prefix.Bits() > best {
				best, prof = p.Prefix.Bits(), p.Profile
			}
		}
		return prof
	}
	index := map[*deviceProfile]int{a: 0, b: 1}
	live := 0
	for i := 0; i < 8*256; i++ {
		addr := netip.AddrFrom4([4]byte{198, 18, byte(64 + i/256), byte(i)})
		want := bpf.PortSilent // dark addresses and subnet edges
		if d, ok := r.match(addr); ok {
			want = index[d]
			live++
		}
		got := lookup(addr)
		if got == bpf.PortSilentTCP && (addr.As4()[3] == 255) { // a broadcast address: UDP for fan-out
			got = bpf.PortSilent
		}
		if got != want {
			t.Fatalf("%v: filter profile %d, registry %d", addr, got, want)
		}
	}
	t.Logf("%d prefixes describe %d live hosts of 2048 addresses", len(cfg.Prefixes), live)
	for _, p := range cfg.Prefixes {
		if !p.Prefix.Addr().Is4() {
			t.Fatalf("IPv6 prefix %v in the table", p.Prefix)
		}
	}
}
