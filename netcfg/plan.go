package netcfg

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
)

// Route is an AnyIP route: a `local` route in table local, so that every address in Prefix
// is local to the host (bindable, reachable, answered to ARP) without being assigned.
type Route struct {
	Prefix netip.Prefix // masked; IPv4 or IPv6
	Device string       // "" means lo
}

// Alias is one address (a /32 or /128) assigned to a named interface.
type Alias struct {
	Addr   netip.Addr
	Device string
}

// MAC sets the hardware address of a named interface.
type MAC struct {
	Device string
	Addr   net.HardwareAddr
}

// Sysctl is one network sysctl. Key is in sysctl(8) form, dotted (net.ipv4.ip_nonlocal_bind)
// or with slashes (net/ipv4/conf/eth0.100/arp_ignore, needed when a device name has a dot).
type Sysctl struct {
	Key   string
	Value string
}

// Plan is the desired network state for the sensor's emulated hosts. The zero Plan changes
// nothing.
type Plan struct {
	Routes  []Route
	Aliases []Alias
	MACs    []MAC
	Sysctls []Sysctl
}

// Bounds that keep a plan from doing something absurd to the host.
const (
	// MaxAliases is the most aliases a Plan may hold; the kernel's per-interface address
	// list makes adding them quadratic (stack.md §2: 16384 take 11 s). Use a Route.
	MaxAliases = 4096
	// MaxRoutes bounds the number of AnyIP routes in a Plan.
	MaxRoutes = 4096
	// MinBits4 and MinBits6 are the shortest prefixes accepted for AnyIP routes.
	MinBits4 = 8
	MinBits6 = 16
)

// DefaultAliasLimit is the default PlanOptions.AliasLimit.
const DefaultAliasLimit = 1024

// PlanOptions tunes PlanFor.
type PlanOptions struct {
	// RouteDevice carries the AnyIP routes ("" means lo).
	RouteDevice string
	// AliasDevice, when set, gets single addresses (/32, /128) as aliases instead of
	// AnyIP routes, up to AliasLimit of them; beyond that they become routes.
	AliasDevice string
	// AliasLimit is the largest address list made into aliases (0 means DefaultAliasLimit).
	AliasLimit int
}

// PlanFor builds the plan that makes every address of the sensor's host prefixes local:
// prefixes become AnyIP routes, and single addresses become aliases on o.AliasDevice (when
// set and the list is short) or /32 (/128) AnyIP routes. Duplicates and prefixes inside
// other prefixes are dropped; IPv4-mapped IPv6 addresses count as IPv4.
func PlanFor(hosts []netip.Prefix, o PlanOptions) (Plan, error) {
	var ps []netip.Prefix
	for _, h := range hosts {
		p, err := canonical(h)
		if err != nil {
			return Plan{}, err
		}
		ps = append(ps, p)
	}
	ps = minimalCover(ps)

	var singles, nets []netip.Prefix
	for _, p := range ps {
		if p.IsSingleIP() {
			singles = append(singles, p)
		} else {
			nets = append(nets, p)
		}
	}
	limit := o.AliasLimit
	if limit <= 0 {
		limit = DefaultAliasLimit
	}
	limit = min(limit, MaxAliases)
	var plan Plan
	if o.AliasDevice != "" && len(singles) <= limit {
		for _, s := range singles {
			plan.Aliases = append(plan.Aliases, Alias{Addr: s.Addr(), Device: o.AliasDevice})
		}
	} else {
		nets = append(nets, singles...)
	}
	for _, n := range nets {
		plan.Routes = append(plan.Routes, Route{Prefix: n, Device: o.RouteDevice})
	}
	slices.SortFunc(plan.Routes, func(a, b Route) int { return comparePrefix(a.Prefix, b.Prefix) })
	return plan, plan.Validate()
}

// canonical masks p, unmaps IPv4-mapped addresses and refuses prefixes that must never be
// made local.
func canonical(p netip.Prefix) (netip.Prefix, error) {
	if !p.IsValid() {
		return p, fmt.Errorf("netcfg: invalid prefix %v", p)
	}
	a := p.Addr()
	bits := p.Bits()
	if a.Is4In6() {
		if bits < 96 {
			return p, fmt.Errorf("netcfg: %s: IPv4-mapped prefix shorter than /96", p)
		}
		a, bits = a.Unmap(), bits-96
	}
	p = netip.PrefixFrom(a, bits).Masked()
	a = p.Addr()
	switch {
	case a.Is4() && bits < MinBits4, a.Is6() && bits < MinBits6:
		return p, fmt.Errorf("netcfg: %s: prefix too large (shortest allowed /%d for IPv4, /%d for IPv6)", p, MinBits4, MinBits6)
	case a.IsUnspecified():
		return p, fmt.Errorf("netcfg: %s: prefixes of the unspecified address cannot be made local", p)
	case a.IsMulticast():
		return p, fmt.Errorf("netcfg: %s: multicast addresses cannot be made local", p)
	}
	return p, nil
}

// minimalCover sorts ps and drops duplicates and prefixes contained in another one.
func minimalCover(ps []netip.Prefix) []netip.Prefix {
	// Shorter prefixes first, so a containing prefix is kept before what it contains.
	slices.SortFunc(ps, func(a, b netip.Prefix) int {
		return cmp.Or(cmp.Compare(a.Bits(), b.Bits()), comparePrefix(a, b))
	})
	kept := make(map[netip.Prefix]bool, len(ps))
	var out []netip.Prefix
	for _, p := range ps {
		covered := false
		for b := 0; b <= p.Bits() && !covered; b++ {
			covered = kept[netip.PrefixFrom(p.Addr(), b).Masked()]
		}
		if !covered {
			kept[p] = true
			out = append(out, p)
		}
	}
	slices.SortFunc(out, comparePrefix)
	return out
}

func comparePrefix(a, b netip.Prefix) int {
	return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
}

// Validate checks every element of the plan: prefixes, addresses, MACs (unicast, non-zero,
// 6 bytes), sysctl keys (under net/), and the size bounds.
func (p Plan) Validate() error {
	var errs []error
	if len(p.Routes) > MaxRoutes {
		errs = append(errs, fmt.Errorf("netcfg: %d routes, at most %d", len(p.Routes), MaxRoutes))
	}
	if len(p.Aliases) > MaxAliases {
		errs = append(errs, fmt.Errorf("netcfg: %d aliases, at most %d (use an AnyIP route for a prefix)", len(p.Aliases), MaxAliases))
	}
	for _, r := range p.Routes {
		if c, err := canonical(r.Prefix); err != nil {
			errs = append(errs, err)
		} else if c != r.Prefix {
			errs = append(errs, fmt.Errorf("netcfg: route %s: not canonical (want %s)", r.Prefix, c))
		}
		if err := checkDevice(r.Device, true); err != nil {
			errs = append(errs, fmt.Errorf("netcfg: route %s: %w", r.Prefix, err))
		}
	}
	for _, a := range p.Aliases {
		if _, err := canonical(netip.PrefixFrom(a.Addr, a.Addr.BitLen())); err != nil {
			errs = append(errs, err)
		} else if a.Addr.Is4In6() {
			errs = append(errs, fmt.Errorf("netcfg: alias %s: use the IPv4 form", a.Addr))
		}
		if err := checkDevice(a.Device, false); err != nil {
			errs = append(errs, fmt.Errorf("netcfg: alias %s: %w", a.Addr, err))
		}
	}
	seen := map[string]bool{}
	for _, m := range p.MACs {
		if err := checkDevice(m.Device, false); err != nil {
			errs = append(errs, fmt.Errorf("netcfg: mac: %w", err))
		} else if seen[m.Device] {
			errs = append(errs, fmt.Errorf("netcfg: mac: %s given twice", m.Device))
		}
		seen[m.Device] = true
		if err := ValidateMAC(m.Addr); err != nil {
			errs = append(errs, fmt.Errorf("netcfg: mac of %s: %w", m.Device, err))
		}
	}
	keys := map[string]bool{}
	for _, s := range p.Sysctls {
		path, err := sysctlPath(s.Key)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if keys[path] {
			errs = append(errs, fmt.Errorf("netcfg: sysctl %s given twice", s.Key))
		}
		keys[path] = true
		if err := checkSysctlValue(s.Value); err != nil {
			errs = append(errs, fmt.Errorf("netcfg: sysctl %s: %w", s.Key, err))
		}
	}
	return errors.Join(errs...)
}

func checkDevice(name string, emptyOK bool) error {
	switch {
	case name == "" && emptyOK:
		return nil
	case name == "":
		return errors.New("no device named")
	case len(name) >= 16:
		return fmt.Errorf("device name %q longer than 15 bytes", name)
	case name == "." || name == "..":
		return fmt.Errorf("bad device name %q", name)
	}
	for _, c := range []byte(name) {
		if c <= ' ' || c == '/' || c == ':' || c >= 0x7f {
			return fmt.Errorf("bad device name %q", name)
		}
	}
	return nil
}

// ARPSysctls are the settings that keep interfaces from answering ARP for each other's
// addresses (arp_ignore=1, arp_announce=2), for all interfaces and dev (when not "").
// Leave them out for AnyIP routes on lo: with arp_ignore=1 the kernel stops answering ARP
// for addresses that are not assigned to the receiving interface.
func ARPSysctls(dev string) []Sysctl {
	out := []Sysctl{
		{Key: "net.ipv4.conf.all.arp_ignore", Value: "1"},
		{Key: "net.ipv4.conf.all.arp_announce", Value: "2"},
	}
	if dev != "" {
		out = append(out,
			Sysctl{Key: "net/ipv4/conf/" + dev + "/arp_ignore", Value: "1"},
			Sysctl{Key: "net/ipv4/conf/" + dev + "/arp_announce", Value: "2"})
	}
	return out
}

// IdentitySysctls keep the kernel from answering ARP on dev for addresses that are not
// assigned to dev (arp_ignore=1: AnyIP addresses on lo are not), so that only the XDP
// responder answers for emulated hosts, with each host's MAC; and make the kernel's own
// requests name a source address of dev's subnets (arp_announce=1), so an emulated host
// asks for its peers itself (TC gives the request the host's MAC). Only dev is changed:
// the value that counts is the larger of all's and dev's.
func IdentitySysctls(dev string) []Sysctl {
	return []Sysctl{
		{Key: "net/ipv4/conf/" + dev + "/arp_ignore", Value: "1"},
		{Key: "net/ipv4/conf/" + dev + "/arp_announce", Value: "1"},
	}
}

// NonlocalBindSysctls allow binding to addresses that are not (yet) local, for IPv4 and
// IPv6. IPv6 needs it to bind one address of an AnyIP prefix (the kernel's IPv6 bind checks
// assigned addresses only); a wildcard listener does not.
func NonlocalBindSysctls() []Sysctl {
	return []Sysctl{
		{Key: "net.ipv4.ip_nonlocal_bind", Value: "1"},
		{Key: "net.ipv6.ip_nonlocal_bind", Value: "1"},
	}
}
