package sensor

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sort"
	"time"

	"github.com/icsnare/icsnare/bpf"
	"github.com/icsnare/icsnare/protocols"
)

// IdentityConfig is [xdp.identity]: each emulated host its own MAC and TCP/IP stack in
// the kernel, on xdp.interface.
type IdentityConfig struct {
	Enabled bool `toml:"enabled"`
	// What XDP does with a TCP SYN, before any handshake: to a port the host's profile
	// does not serve (closed_ports), to a port the sensor listens on at one of the
	// interface's own addresses (own_address), to a subnet's network or broadcast
	// address or to a host a real machine claimed (edges, for every packet). Each is
	// "reset" (RST+ACK with the host's stack), "drop" (silence) or "pass" (the sensor's
	// stack decides, as without XDP).
	ClosedPorts string `toml:"closed_ports"`
	OwnAddress  string `toml:"own_address"`
	Edges       string `toml:"edges"`
	// Personality shapes each host's packets after its profile's entry in the
	// personality table (TTL, IP-ID, DF, SYN-ACK window and options); off leaves the
	// sensor's own stack with per-host MACs only.
	Personality *bool `toml:"personality"`
}

func (c IdentityConfig) policies() (closed, own, edges bpf.Policy, err error) {
	parse := func(key, v, def string) bpf.Policy {
		if v == "" {
			v = def
		}
		p, perr := bpf.ParsePolicy(v)
		if perr != nil && err == nil {
			err = fmt.Errorf("xdp.identity.%s: %w", key, perr)
		}
		return p
	}
	closed = parse("closed_ports", c.ClosedPorts, "reset")
	own = parse("own_address", c.OwnAddress, "drop")
	edges = parse("edges", c.Edges, "drop")
	return closed, own, edges, err
}

// validate checks [xdp.identity] without the profiles.
func (c IdentityConfig) validate(xdp XDPConfig) error {
	if _, _, _, err := c.policies(); err != nil {
		return err
	}
	if c.Enabled && xdp.Interface == "" {
		return fmt.Errorf("xdp.identity needs xdp.interface")
	}
	return nil
}

// identityPrefixes describes the host rules for the kernel: a rule is on the link when
// one of the interface's subnets contains it.
func (s *Sensor) identityPrefixes(ifPrefixes []netip.Prefix, personality bool) ([]bpf.HostPrefix, []uint16, []string) {
	var out []bpf.HostPrefix
	var listened []uint16
	var warnings []string
	ports := map[string][]uint16{}
	for name, d := range s.profiles {
		ps := []uint16{}
		for ep := range d.services {
			if ep.Transport == protocols.TCP {
				ps = append(ps, uint16(ep.Port))
				if !slices.Contains(listened, uint16(ep.Port)) {
					listened = append(listened, uint16(ep.Port))
				}
			}
		}
		sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
		ports[name] = ps
	}
	sort.Slice(listened, func(i, j int) bool { return listened[i] < listened[j] })
	warned := map[string]bool{}
	member := func(d *deviceProfile) bpf.HostProfile {
		p := d.profile
		hp := bpf.HostProfile{Profile: p.Name, Ports: ports[p.Name]}
		key, ouis, ok, err := p.MACOUIs()
		switch {
		case err != nil:
			if !warned[p.Name] {
				warnings = append(warnings, fmt.Sprintf("profile %s: databus key %s: %v; its hosts keep the interface's MAC", p.Name, key, err))
			}
		case !ok:
			if !warned[p.Name] {
				warnings = append(warnings, fmt.Sprintf("profile %s: no databus key uses %s; its hosts keep the interface's MAC and get no ARP answers from XDP", p.Name, "icsnare.mac"))
			}
		default:
			hp.OUIs = ouis
		}
		warned[p.Name] = true
		if personality {
			if pers, ok := p.Personality(); ok {
				hp.Personality = &pers
			}
		}
		return hp
	}
	for _, r := range s.hosts.rules {
		hp := bpf.HostPrefix{Prefix: r.prefix, Live: r.live}
		if r.dev != nil {
			hp.Profiles = []bpf.HostProfile{member(r.dev)}
		} else {
			for _, d := range r.mix {
				hp.Profiles = append(hp.Profiles, member(d))
			}
			hp.Cum = r.cum
		}
		for _, ip := range ifPrefixes {
			if ip.Addr().Is4() == r.prefix.Addr().Is4() && ip.Bits() <= r.prefix.Bits() && ip.Contains(r.prefix.Addr()) {
				hp.OnLink = true
			}
		}
		out = append(out, hp)
	}
	return out, listened, warnings
}

// setupIdentity loads and attaches the identity programs when [xdp.identity] is enabled.
// It returns nil when it is not, or when the kernel refuses (the sensor then runs with
// the interface's MAC and its own stack, and says so).
func (s *Sensor) setupIdentity(ctx context.Context) (*bpf.Identity, func()) {
	ic := s.cfg.XDP.Identity
	if !ic.Enabled || s.cfg.XDP.Interface == "" {
		return nil, func() {}
	}
	closed, own, edges, err := ic.policies()
	if err != nil {
		s.log.Warn("identity not loaded", "err", err)
		return nil, func() {}
	}
	ifi, err := net.InterfaceByName(s.cfg.XDP.Interface)
	if err != nil {
		s.log.Warn("identity not loaded", "err", err)
		return nil, func() {}
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		s.log.Warn("identity not loaded", "interface", ifi.Name, "err", err)
		return nil, func() {}
	}
	var ifPrefixes []netip.Prefix
	var locals []netip.Addr
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			ip, _ := netip.AddrFromSlice(ipn.IP)
			ones, _ := ipn.Mask.Size()
			p := netip.PrefixFrom(ip.Unmap(), ones)
			ifPrefixes = append(ifPrefixes, p.Masked())
			locals = append(locals, ip.Unmap())
		}
	}
	prefixes, listened, warnings := s.identityPrefixes(ifPrefixes, ic.Personality == nil || *ic.Personality)
	for _, w := range warnings {
		s.log.Warn("identity", "warning", w)
	}
	id, err := bpf.LoadIdentity(bpf.IdentityConfig{Seed: s.hosts.seed, Prefixes: prefixes, Closed: closed, Local: own, Edge: edges,
		Listened: listened, Locals: locals, Logger: s.log})
	if err != nil {
		s.log.Warn("identity not loaded; hosts answer with the interface's MAC and the sensor's stack", "err", err)
		return nil, func() {}
	}
	mode, err := id.Attach(s.cfg.XDP.Interface, s.cfg.XDP.Mode)
	if err != nil {
		id.Close()
		s.log.Warn("identity not attached; hosts answer with the interface's MAC and the sensor's stack", "err", err)
		return nil, func() {}
	}
	s.m.reg.MustRegister(id.Collector())
	onlink := 0
	for _, p := range prefixes {
		if p.OnLink {
			onlink++
		}
	}
	s.log.Info("identity attached", "interface", s.cfg.XDP.Interface, "mode", mode, "prefixes", len(prefixes), "on_link", onlink,
		"closed_ports", closed, "own_address", own, "edges", edges)
	s.identity = id
	evCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.forwardConflicts(evCtx, id.Conflicts())
	}()
	return id, func() {
		s.identity = nil
		if err := id.Close(); err != nil {
			s.log.Warn("identity detach", "err", err)
		}
		stop()
		<-done
	}
}

// forwardConflicts turns hosts gone dark into events.
func (s *Sensor) forwardConflicts(ctx context.Context, ch <-chan bpf.Conflict) {
	for {
		select {
		case <-ctx.Done():
			return
		case c, ok := <-ch:
			if !ok {
				return
			}
			kind := "claim"
			if c.Probe {
				kind = "probe"
			}
			s.log.Warn("a machine on the link claims an emulated address; the host goes dark", "addr", c.Addr, "mac", c.MAC.String(), "kind", kind)
			e := &protocols.Event{Time: time.Now().UTC(), Type: "xdp.host_dark", Protocol: "xdp", Sensor: s.cfg.SensorID,
				Dst:    netip.AddrPortFrom(c.Addr, 0),
				Fields: []protocols.Field{protocols.F("mac", c.MAC.String()), protocols.F("kind", kind)}}
			s.bus.Emit(e)
		}
	}
}
