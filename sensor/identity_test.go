package sensor

import (
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/icsnare/icsnare/bpf"
)

// TestIdentityPickMatchesRegistry: the identity programs' draw of a host's profile and
// liveness (bpf.HostPrefix.Pick, which the kernel computes alike) is the registry's.
func TestIdentityPickMatchesRegistry(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Hosts = []HostRule{{Addresses: []string{"198.18.38.0/24"}, Profiles: map[string]float64{"default": 3, "bmc": 7}, Density: 0.5}}
	cfg.Metrics.Listen = ""
	cfg.Privileges.User = ""
	s, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	prefixes, _, warnings := s.identityPrefixes(nil, true)
	if len(prefixes) != 1 || len(prefixes[0].Profiles) != 2 || len(warnings) != 0 {
		t.Fatalf("prefixes %+v warnings %v", prefixes, warnings)
	}
	live := 0
	for i := 1; i < 255; i++ {
		addr := netip.AddrFrom4([4]byte{198, 18, 38, byte(i)})
		dev, ok := s.hosts.match(addr)
		pr, kok := prefixes[0].Pick(s.hosts.seed, addr)
		if ok != kok || ok && dev.profile.Name != pr.Profile {
			t.Fatalf("%s: registry %v %v, identity %v %+v", addr, ok, dev, kok, pr)
		}
		if ok {
			live++
		}
	}
	if live < 90 || live > 165 {
		t.Fatalf("%d live of 254 at density 0.5", live)
	}
	for _, a := range []string{"198.18.37.5", "fd00:37::5", "10.1.2.3"} {
		addr := netip.MustParseAddr(a)
		for _, p := range []string{"default", "bmc", "", "\x00live"} {
			if hostSeed(12345, addr, p) != bpf.HostSeed(12345, addr, p) {
				t.Fatalf("%s %q: seeds differ", a, p)
			}
		}
	}
}

// TestIdentityConfigValidate: the [xdp.identity] keys of production NICs and the answer
// bucket are checked with a clear error; the bucket's defaults and the off switch.
func TestIdentityConfigValidate(t *testing.T) {
	xdp := XDPConfig{Interface: "eth0"}
	for _, tt := range []struct {
		c    IdentityConfig
		want string
	}{
		{IdentityConfig{Enabled: true, VLAN: 72, Promisc: "auto", Announce: true, AnnounceRate: 50, AnnounceMax: 100}, ""},
		{IdentityConfig{VLAN: 4095}, "vlan 4095"},
		{IdentityConfig{VLAN: -1}, "vlan -1"},
		{IdentityConfig{Promisc: "yes"}, `promisc "yes"`},
		{IdentityConfig{AnnounceRate: 5000}, "announce_rate 5000"},
		{IdentityConfig{AnnounceMax: -1}, "announce_max -1"},
		{IdentityConfig{AnswerBytesPerSecond: 1 << 31}, "answer_bytes_per_second"},
		{IdentityConfig{AnswerBurst: -5}, "answer_burst -5"},
		{IdentityConfig{ClosedPorts: "maybe"}, "closed_ports"},
	} {
		err := tt.c.validate(xdp)
		if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%+v: %v, want %q", tt.c, err, tt.want)
		}
	}
	for _, tt := range []struct {
		rate, burst         int
		wantRate, wantBurst uint64
	}{{0, 0, 64 << 10, 1 << 20}, {1000, 0, 1000, 16000}, {1000, 500, 1000, 500}, {-1, 0, 0, 0}} {
		r, b := IdentityConfig{AnswerBytesPerSecond: tt.rate, AnswerBurst: tt.burst}.answer()
		if r != tt.wantRate || b != tt.wantBurst {
			t.Errorf("answer(%d, %d) = %d, %d", tt.rate, tt.burst, r, b)
		}
	}
}
