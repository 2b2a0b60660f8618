package netcfg

import (
	"net"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		if !strings.Contains(s, "/") {
			a := netip.MustParseAddr(s)
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func TestPlanFor(t *testing.T) {
	tests := []struct {
		name    string
		hosts   []netip.Prefix
		opts    PlanOptions
		routes  []string // "prefix dev"
		aliases []string // "addr dev"
		err     string
	}{
		{name: "empty"},
		{
			name:   "prefixes become lo routes, masked",
			hosts:  prefixes("198.18.0.77/24", "fd00:19::1/64"),
			routes: []string{"198.18.0.0/24 ", "fd00:19::/64 "},
		},
		{
			name:   "route device",
			hosts:  prefixes("198.18.0.0/16"),
			opts:   PlanOptions{RouteDevice: "eth1"},
			routes: []string{"198.18.0.0/16 eth1"},
		},
		{
			name:   "contained prefixes and duplicates dropped",
			hosts:  prefixes("198.18.5.0/24", "198.18.0.0/16", "198.18.0.0/16", "198.18.9.9", "198.19.0.1", "198.19.0.1"),
			routes: []string{"198.18.0.0/16 ", "198.19.0.1/32 "},
		},
		{
			name:    "singles become aliases on the alias device",
			hosts:   prefixes("198.18.0.0/24", "198.19.0.2", "198.19.0.1", "fd00::5"),
			opts:    PlanOptions{AliasDevice: "eth0"},
			routes:  []string{"198.18.0.0/24 "},
			aliases: []string{"198.19.0.1 eth0", "198.19.0.2 eth0", "fd00::5 eth0"},
		},
		{
			name:   "a long list becomes routes",
			hosts:  prefixes("198.19.0.1", "198.19.0.2", "198.19.0.3"),
			opts:   PlanOptions{AliasDevice: "eth0", AliasLimit: 2},
			routes: []string{"198.19.0.1/32 ", "198.19.0.2/32 ", "198.19.0.3/32 "},
		},
		{
			name:    "IPv4-mapped IPv6 counts as IPv4",
			hosts:   prefixes("::ffff:198.19.0.1", "::ffff:198.18.0.0/112"),
			opts:    PlanOptions{AliasDevice: "eth0"},
			routes:  []string{"198.18.0.0/16 "},
			aliases: []string{"198.19.0.1 eth0"},
		},
		{name: "too large v4", hosts: prefixes("10.0.0.0/7"), err: "prefix too large"},
		{name: "too large v6", hosts: prefixes("fd00::/8"), err: "prefix too large"},
		{name: "default route", hosts: prefixes("0.0.0.0/0"), err: "prefix too large"},
		{name: "unspecified", hosts: prefixes("0.0.0.0"), err: "unspecified"},
		{name: "this network", hosts: prefixes("0.0.0.0/8"), err: "unspecified"},
		{name: "unspecified v6", hosts: prefixes("::/16"), err: "unspecified"},
		{name: "multicast", hosts: prefixes("239.1.2.0/24"), err: "multicast"},
		{name: "invalid", hosts: []netip.Prefix{{}}, err: "invalid prefix"},
		{name: "bad alias device", hosts: prefixes("198.19.0.1"), opts: PlanOptions{AliasDevice: "a/b"}, err: "bad device name"},
		{name: "long route device", hosts: prefixes("198.19.0.0/24"), opts: PlanOptions{RouteDevice: "0123456789abcdef"}, err: "longer than 15"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := PlanFor(tc.hosts, tc.opts)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var routes, aliases []string
			for _, r := range p.Routes {
				routes = append(routes, r.Prefix.String()+" "+r.Device)
			}
			for _, a := range p.Aliases {
				aliases = append(aliases, a.Addr.String()+" "+a.Device)
			}
			if !reflect.DeepEqual(routes, tc.routes) || !reflect.DeepEqual(aliases, tc.aliases) {
				t.Fatalf("routes %q aliases %q, want %q %q", routes, aliases, tc.routes, tc.aliases)
			}
		})
	}
}

func TestPlanValidate(t *testing.T) {
	mac := net.HardwareAddr{0x02, 0x1c, 0x06, 0, 0, 1}
	tests := []struct {
		name string
		plan Plan
		err  string
	}{
		{name: "ok", plan: Plan{
			Routes:  []Route{{Prefix: netip.MustParsePrefix("198.18.0.0/16")}},
			Aliases: []Alias{{Addr: netip.MustParseAddr("198.19.0.1"), Device: "eth0"}},
			MACs:    []MAC{{Device: "eth0", Addr: mac}},
			Sysctls: append(ARPSysctls("eth0.100"), NonlocalBindSysctls()...),
		}},
		{name: "route not masked", plan: Plan{Routes: []Route{{Prefix: netip.MustParsePrefix("198.18.0.1/16")}}}, err: "not canonical"},
		{name: "alias without device", plan: Plan{Aliases: []Alias{{Addr: netip.MustParseAddr("198.19.0.1")}}}, err: "no device named"},
		{name: "alias mapped", plan: Plan{Aliases: []Alias{{Addr: netip.MustParseAddr("::ffff:198.19.0.1"), Device: "eth0"}}}, err: "IPv4 form"},
		{name: "mac twice", plan: Plan{MACs: []MAC{{Device: "eth0", Addr: mac}, {Device: "eth0", Addr: mac}}}, err: "given twice"},
		{name: "mac broadcast", plan: Plan{MACs: []MAC{{Device: "eth0", Addr: net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}}}, err: "multicast or broadcast"},
		{name: "sysctl outside net", plan: Plan{Sysctls: []Sysctl{{Key: "kernel.panic", Value: "1"}}}, err: "only net.*"},
		{name: "sysctl traversal", plan: Plan{Sysctls: []Sysctl{{Key: "net/../kernel/panic", Value: "1"}}}, err: "bad key"},
		{name: "sysctl twice", plan: Plan{Sysctls: []Sysctl{{Key: "net.ipv4.ip_forward", Value: "0"}, {Key: "net/ipv4/ip_forward", Value: "0"}}}, err: "given twice"},
		{name: "sysctl empty value", plan: Plan{Sysctls: []Sysctl{{Key: "net.ipv4.ip_forward"}}}, err: "one line"},
		{name: "sysctl newline", plan: Plan{Sysctls: []Sysctl{{Key: "net.ipv4.ip_forward", Value: "0\n1"}}}, err: "one line"},
		{name: "too many aliases", plan: func() Plan {
			var p Plan
			for i := range MaxAliases + 1 {
				p.Aliases = append(p.Aliases, Alias{Addr: netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), Device: "eth0"})
			}
			return p
		}(), err: "use an AnyIP route"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.plan.Validate()
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v, want %q", err, tc.err)
			}
		})
	}
}

func TestSysctlPath(t *testing.T) {
	tests := []struct{ key, path, err string }{
		{key: "net.ipv4.conf.all.arp_ignore", path: "/proc/sys/net/ipv4/conf/all/arp_ignore"},
		{key: "net/ipv4/conf/eth0.100/arp_ignore", path: "/proc/sys/net/ipv4/conf/eth0.100/arp_ignore"},
		{key: "net.ipv6.ip_nonlocal_bind", path: "/proc/sys/net/ipv6/ip_nonlocal_bind"},
		{key: "kernel.hostname", err: "only net.*"},
		{key: "net", err: "only net.*"},
		{key: "net..ipv4", err: "bad key"},
		{key: "net/ipv4/../../kernel", err: "bad key"},
	}
	for _, tc := range tests {
		got, err := sysctlPath(tc.key)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.key, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.path {
			t.Errorf("%s: %q, %v; want %q", tc.key, got, err, tc.path)
		}
	}
}

func TestChangeString(t *testing.T) {
	cs := Changes{
		{Op: OpAdd, Kind: KindRoute, Target: "198.18.0.0/16 dev lo"},
		{Op: OpSet, Kind: KindMAC, Target: "eth0", Value: "02:1c:06:00:00:01", Prev: "52:54:00:12:34:56"},
		{Op: OpKeep, Kind: KindRoute, Target: "127.64.0.0/10 dev lo", Reason: "already local (127.0.0.0/8 dev lo)"},
	}
	want := "add route 198.18.0.0/16 dev lo\n" +
		"set mac eth0 = 02:1c:06:00:00:01 (was 52:54:00:12:34:56)\n" +
		"keep route 127.64.0.0/10 dev lo: already local (127.0.0.0/8 dev lo)\n"
	if got := cs.String(); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	if n := len(cs.Pending()); n != 2 {
		t.Fatalf("pending %d, want 2", n)
	}
}
