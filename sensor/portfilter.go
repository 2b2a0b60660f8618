package sensor

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sort"

	"github.com/icsnare/icsnare/bpf"
	"github.com/icsnare/icsnare/protocols"
)

// attachPortFilter gives every host only its own profile's ports when the sensor binds
// the IPv4 wildcard (one socket per port for many hosts): the kernel's sk_lookup program
// (bpf.PortFilter) finds no socket for a host's other ports, so they answer as closed
// ports do (RST before any handshake, ICMP port unreachable) instead of completing the
// handshake and resetting. Without the privileges it needs, handleConn's reset after
// accept remains.
func (s *Sensor) attachPortFilter() {
	wild := false
	for _, a := range s.bindAddrs() {
		wild = wild || a == netip.IPv4Unspecified()
	}
	if !wild {
		return // one bound address: the ports it does not serve have no socket already
	}
	cfg, warnings := s.portFilterConfig()
	for _, w := range warnings {
		s.log.Warn("port filter", "warning", w)
	}
	var sinks []io.Closer
	if ln, uc, err := silentSinks(); err != nil {
		s.log.Info("dark addresses of the port filter answer as closed ones", "err", err)
	} else {
		cfg.SinkTCP, cfg.SinkUDP = ln, uc
		sinks = []io.Closer{ln, uc}
	}
	f, err := bpf.LoadPortFilter(cfg)
	if err != nil {
		for _, c := range sinks {
			c.Close()
		}
		s.log.Info("no per-host port filter in the kernel; a port a host's profile lacks completes the handshake, then resets", "err", err)
		return
	}
	s.portFilter, s.portSinks = f, sinks
	s.log.Info("per-host port filter attached", "prefixes", len(cfg.Prefixes), "profiles", len(cfg.Profiles),
		"dark_tcp", map[bool]string{true: "silent", false: "closed"}[f.Silent[0]], "dark_udp", map[bool]string{true: "silent", false: "closed"}[f.Silent[1]])
	for _, err := range f.SinkErrs {
		s.log.Info("port filter: dark addresses answer as closed ports", "err", err)
	}
}

// silentSinks opens a TCP listener and a UDP socket on the loopback for the port filter,
// which makes them drop everything they receive and hands them the packets of dark
// addresses: those stay silent (no RST, no ICMP error), as an address without a machine.
func silentSinks() (*net.TCPListener, *net.UDPConn, error) {
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, nil, err
	}
	uc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		ln.Close()
		return nil, nil, err
	}
	return ln, uc, nil
}

// portFilterConfig describes the IPv4 host rules for bpf.PortFilter: a single-profile rule
// is one prefix; a mixed or sparse one is one entry per live host (the same draw as
// hostRegistry.match) over a pass-through prefix, within bpf.MaxPortPrefixes.
func (s *Sensor) portFilterConfig() (bpf.PortFilterConfig, []string) {
	var cfg bpf.PortFilterConfig
	var warnings []string
	names := make([]string, 0, len(s.profiles))
	for n := range s.profiles {
		names = append(names, n)
	}
	sort.Strings(names)
	index := map[*deviceProfile]int{}
	listened := map[bpf.PortKey]bool{}
	for i, n := range names {
		d := s.profiles[n]
		index[d] = i
		var ks []bpf.PortKey
		for ep := range d.services {
			k := bpf.PortKey{Port: uint16(ep.Port), Proto: bpf.ProtoTCP}
			if ep.Transport == protocols.UDP {
				k.Proto = bpf.ProtoUDP
			}
			ks = append(ks, k)
			listened[k] = true
		}
		sortPortKeys(ks)
		cfg.Profiles = append(cfg.Profiles, ks)
	}
	for k := range listened {
		cfg.Listened = append(cfg.Listened, k)
	}
	sortPortKeys(cfg.Listened)

	// Shorter rules first, so a longer rule's entries replace a shorter one's (the
	// registry takes the longest rule containing an address).
	rules := make([]*rule, 0, len(s.hosts.rules))
	for i := range s.hosts.rules {
		if s.hosts.rules[i].prefix.Addr().Is4() {
			rules = append(rules, &s.hosts.rules[i])
		}
	}
	sort.SliceStable(rules, func(a, b int) bool { return rules[a].prefix.Bits() < rules[b].prefix.Bits() })
	entries := map[netip.Prefix]int{}
	var order []netip.Prefix
	put := func(p netip.Prefix, profile int) {
		if _, ok := entries[p]; !ok {
			order = append(order, p)
		}
		entries[p] = profile
	}
	for _, ru := range rules {
		p := ru.prefix.Masked()
		edges := func() {
			if p.Bits() < 31 { // the network and broadcast addresses are no host's
				put(netip.PrefixFrom(p.Addr(), 32), bpf.PortSilent)
				put(netip.PrefixFrom(lastAddr(p), 32), bpf.PortSilentTCP) // UDP: broadcast fan-out
			}
		}
		if ru.dev != nil && ru.live == 0 {
			put(p, index[ru.dev])
			edges()
			continue
		}
		size := 1 << (32 - p.Bits())
		if len(order)+size > bpf.MaxPortPrefixes {
			put(p, bpf.PortPass)
			warnings = append(warnings, fmt.Sprintf("%s: more than %d addresses to describe; its hosts' other ports complete the handshake, then reset", p, bpf.MaxPortPrefixes))
			continue
		}
		put(p, bpf.PortSilent) // the rule's dark addresses
		edges()
		for a, i := p.Addr(), 0; i < size; a, i = a.Next(), i+1 {
			if subnetEdge(p, a) {
				continue
			}
			if d, ok := ru.pick(s.hosts.seed, a); ok {
				put(netip.PrefixFrom(a, 32), index[d])
			}
		}
	}
	for _, p := range order {
		cfg.Prefixes = append(cfg.Prefixes, bpf.PortPrefix{Prefix: p, Profile: entries[p]})
	}
	return cfg, warnings
}

// lastAddr is the highest address of an IPv4 prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	x := binary.BigEndian.Uint32(a[:]) | (uint32(1)<<(32-p.Bits()) - 1)
	binary.BigEndian.PutUint32(a[:], x)
	return netip.AddrFrom4(a)
}

func sortPortKeys(ks []bpf.PortKey) {
	sort.Slice(ks, func(a, b int) bool {
		if ks[a].Port != ks[b].Port {
			return ks[a].Port < ks[b].Port
		}
		return ks[a].Proto < ks[b].Proto
	})
}
