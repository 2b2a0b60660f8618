package sensor

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/vishvananda/netlink"

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
	// VLAN is the 802.1Q VLAN id of the hosts' link on xdp.interface (the parent
	// device): XDP answers and checks frames tagged with it, TC shapes what the hosts
	// send on it, and the hosts' subnets are those of the interface's VLAN device with
	// this id. 0: the untagged link. A NIC that strips tags before XDP (rx-vlan-offload)
	// must have it off: `ethtool -K <nic> rxvlan off`.
	VLAN int `toml:"vlan"`
	// Link names the device whose subnets are the hosts' link (its addresses decide
	// which prefixes are on the link, its ARP sysctls are set) when it is not the VLAN
	// device of xdp.interface with id vlan, or xdp.interface itself without a VLAN: e.g.
	// a VLAN-aware bridge.
	Link string `toml:"link"`
	// Promisc: "auto" (default) puts a physical NIC in promiscuous mode while the
	// programs are attached, so frames to the hosts' MACs reach XDP; "on" any interface;
	// "off" never (a NIC whose unicast filter has the MACs, or a switch port mirror).
	Promisc string `toml:"promisc"`
	// KernelARP leaves the kernel answering ARP on the interface (arp_ignore 0). By
	// default the sensor sets arp_ignore=1 and arp_announce=1 on the hosts' link while it
	// runs, so only XDP answers for emulated addresses (with the host's MAC, never the
	// interface's) and the kernel's own requests name the asking host; hosts of profiles
	// without a MAC of their own then get no ARP answers at all.
	KernelARP bool `toml:"kernel_arp"`
	// Announce: hosts "boot" when the programs attach: an ARP probe (duplicate address
	// detection for IPv6) per address, then a gratuitous ARP (unsolicited neighbour
	// advertisement) for each host no machine answered for, at AnnounceRate frames per
	// second (default 20), at most AnnounceMax hosts (default 1024).
	Announce     bool `toml:"announce"`
	AnnounceRate int  `toml:"announce_rate"`
	AnnounceMax  int  `toml:"announce_max"`
	// AnswerBytesPerSecond bounds, per destination address, the bytes the hosts send in
	// packets a spoofed request can elicit (UDP, ICMP, SYN-ACKs, resets), in TC: a token
	// bucket refilled at this rate, AnswerBurst bytes deep (default 16 times the rate).
	// 0: the default, 65536 B/s; -1 turns it off. The userspace budgets (#22,
	// limits.udp_bytes_per_source_per_minute) come first; this holds even when they fail.
	AnswerBytesPerSecond int `toml:"answer_bytes_per_second"`
	AnswerBurst          int `toml:"answer_burst"`
}

// Defaults of the answer bucket: 64 KiB/s per destination, a 1 MiB burst. The default
// userspace budget (limits.udp_bytes_per_source_per_minute, 1 MiB a minute, all of it at
// once at most) never reaches it, so the kernel bound bites only when userspace fails;
// then a reflection victim gets at most 1 MiB and 0.5 Mbit/s from the whole sensor, over
// all its hosts, ports and protocols.
const (
	defaultAnswerRate  = 64 << 10
	defaultAnswerBurst = 16
)

// answer returns the answer bucket's rate and burst in bytes.
func (c IdentityConfig) answer() (rate, burst uint64) {
	switch {
	case c.AnswerBytesPerSecond < 0:
		return 0, 0
	case c.AnswerBytesPerSecond == 0:
		rate = defaultAnswerRate
	default:
		rate = uint64(c.AnswerBytesPerSecond)
	}
	burst = uint64(c.AnswerBurst)
	if burst == 0 {
		burst = rate * defaultAnswerBurst
	}
	return rate, min(burst, bpf.MaxAnswerBurst)
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
	if c.VLAN < 0 || c.VLAN > 4094 {
		return fmt.Errorf("xdp.identity.vlan %d: want 1 to 4094 (0: untagged)", c.VLAN)
	}
	switch c.Promisc {
	case "", "auto", "on", "off":
	default:
		return fmt.Errorf("xdp.identity.promisc %q: want auto, on or off", c.Promisc)
	}
	if c.AnnounceRate < 0 || c.AnnounceRate > 1000 || c.AnnounceMax < 0 || c.AnnounceMax > 1<<20 {
		return fmt.Errorf("xdp.identity: announce_rate %d (0..1000 per second) or announce_max %d (0..%d) out of range", c.AnnounceRate, c.AnnounceMax, 1<<20)
	}
	if c.AnswerBytesPerSecond > bpf.MaxAnswerRate || c.AnswerBurst < 0 || c.AnswerBurst > bpf.MaxAnswerBurst {
		return fmt.Errorf("xdp.identity: answer_bytes_per_second %d (at most %d) or answer_burst %d (0..%d) out of range",
			c.AnswerBytesPerSecond, bpf.MaxAnswerRate, c.AnswerBurst, bpf.MaxAnswerBurst)
	}
	return nil
}

// hostLink is the device the hosts' link is on: xdp.interface, or its VLAN device with
// xdp.identity.vlan (whose subnets are the on-link prefixes and whose ARP sysctls count).
func hostLink(xdp XDPConfig) (string, error) {
	if xdp.Identity.Link != "" {
		return xdp.Identity.Link, nil
	}
	if xdp.Identity.VLAN == 0 {
		return xdp.Interface, nil
	}
	parent, err := netlink.LinkByName(xdp.Interface)
	if err != nil {
		return "", fmt.Errorf("xdp.interface %s: %w", xdp.Interface, err)
	}
	links, err := netlink.LinkList()
	if err != nil {
		return "", fmt.Errorf("xdp.identity.vlan: %w", err)
	}
	for _, l := range links {
		if v, ok := l.(*netlink.Vlan); ok && v.ParentIndex == parent.Attrs().Index && v.VlanId == xdp.Identity.VLAN {
			return v.Name, nil
		}
	}
	return "", fmt.Errorf("xdp.identity.vlan %d: %s has no VLAN device with this id (ip link add link %s name %s.%d type vlan id %d)",
		xdp.Identity.VLAN, xdp.Interface, xdp.Interface, xdp.Interface, xdp.Identity.VLAN, xdp.Identity.VLAN)
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
	linkName, err := hostLink(s.cfg.XDP)
	if err != nil {
		s.log.Warn("identity not loaded", "err", err)
		return nil, func() {}
	}
	ifi, err := net.InterfaceByName(linkName)
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
	if !ic.KernelARP {
		for _, p := range prefixes {
			for _, m := range p.Profiles {
				if p.OnLink && len(m.OUIs) == 0 {
					s.log.Warn("identity: hosts without a MAC of their own get no ARP answers (arp_ignore=1 on the hosts' link); set xdp.identity.kernel_arp = true to let the kernel answer with the interface's MAC",
						"prefix", p.Prefix, "profile", m.Profile)
				}
			}
		}
	}
	rate, burst := ic.answer()
	id, err := bpf.LoadIdentity(bpf.IdentityConfig{Seed: s.hosts.seed, Prefixes: prefixes, Closed: closed, Local: own, Edge: edges,
		Listened: listened, Locals: locals, Logger: s.log, VLAN: uint16(ic.VLAN), AnswerRate: rate, AnswerBurst: burst,
		PinPath: s.cfg.XDP.PinPath, Promisc: ic.Promisc})
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
	s.log.Info("identity attached", "interface", s.cfg.XDP.Interface, "vlan", ic.VLAN, "mode", mode, "promiscuous", id.Promisc(),
		"prefixes", len(prefixes), "on_link", onlink, "closed_ports", closed, "own_address", own, "edges", edges,
		"answer_bytes_per_second", rate, "answer_burst", burst)
	s.identity = id
	evCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{}, 2)
	go func() {
		defer func() { done <- struct{}{} }()
		s.forwardConflicts(evCtx, id.Conflicts())
	}()
	// The announcer's packet socket opens here, in the interface's namespace.
	var ann *bpf.Announcer
	if ic.Announce && onlink > 0 {
		if ann, err = id.NewAnnouncer(bpf.AnnounceConfig{Rate: ic.AnnounceRate, Max: ic.AnnounceMax}); err != nil {
			s.log.Warn("identity: hosts not announced", "err", err)
		}
	}
	go func() {
		defer func() { done <- struct{}{} }()
		if ann == nil {
			return
		}
		defer ann.Close()
		res, err := ann.Run(evCtx)
		if err != nil && evCtx.Err() == nil {
			s.log.Warn("identity: announcing the hosts failed", "err", err)
		}
		s.log.Info("identity: hosts announced", "probed", res.Probed, "announced", res.Announced, "claimed_by_others", res.Skipped)
	}()
	return id, func() {
		s.identity = nil
		stop()
		if err := id.Close(); err != nil {
			s.log.Warn("identity detach", "err", err)
		}
		<-done
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

// identityPlan describes what [xdp.identity] will do, for `icsnare check`: the interface
// and how frames reach XDP, who answers ARP, the answer bucket, the announcements, and
// per profile the MAC source and the personality.
func (r *Report) identityPlan() []string {
	cfg := r.cfg
	ic := cfg.XDP.Identity
	if !ic.Enabled {
		return nil
	}
	var out []string
	iface := cfg.XDP.Interface
	link, lerr := hostLink(cfg.XDP)
	kind := "interface not found"
	if _, err := net.InterfaceByName(iface); err == nil {
		if l, err := netlink.LinkByName(iface); err == nil {
			kind = l.Type()
		}
		if _, err := os.Stat(filepath.Join("/sys/class/net", iface, "device")); err == nil {
			kind = "physical NIC"
		}
	}
	promisc := ic.Promisc
	if promisc == "" {
		promisc = "auto"
	}
	switch {
	case promisc == "on" || (promisc == "auto" && kind == "physical NIC"):
		promisc = "promiscuous while attached"
	default:
		promisc = "not promiscuous"
	}
	vlan := "untagged frames"
	if ic.VLAN != 0 {
		vlan = fmt.Sprintf("802.1Q VLAN %d", ic.VLAN)
	}
	out = append(out, fmt.Sprintf("identity: XDP and TC egress on %s (%s, %s), %s", iface, kind, promisc, vlan))
	if lerr != nil {
		out = append(out, "identity: "+lerr.Error())
	} else if ifi, err := net.InterfaceByName(link); err == nil {
		var subnets []string
		if addrs, err := ifi.Addrs(); err == nil {
			for _, a := range addrs {
				subnets = append(subnets, a.String())
			}
		}
		out = append(out, fmt.Sprintf("identity: the hosts' link is %s (subnets %s): prefixes inside them get ARP/ND answers and MAC checks", link, strings.Join(subnets, ", ")))
		var ifPrefixes []netip.Prefix
		if addrs, err := ifi.Addrs(); err == nil {
			for _, a := range addrs {
				if ipn, ok := a.(*net.IPNet); ok {
					ip, _ := netip.AddrFromSlice(ipn.IP)
					ones, _ := ipn.Mask.Size()
					ifPrefixes = append(ifPrefixes, netip.PrefixFrom(ip.Unmap(), ones).Masked())
				}
			}
		}
		for _, h := range cfg.Hosts {
			for _, a := range h.Addresses {
				p, err := ParseAddrOrPrefix(a)
				if err != nil || p.Bits() == 0 {
					continue
				}
				where := "routed to the sensor (personality only, no ARP/ND answers or MAC checks)"
				for _, ip := range ifPrefixes {
					if ip.Addr().Is4() == p.Addr().Is4() && ip.Bits() <= p.Bits() && ip.Contains(p.Addr()) {
						where = "on the link (ARP/ND from XDP, MAC checks)"
					}
				}
				out = append(out, fmt.Sprintf("identity: hosts %s: %s", p, where))
			}
		}
	}
	if ic.KernelARP {
		out = append(out, "identity: ARP: XDP answers for hosts with MACs, the kernel for the rest (kernel_arp)")
	} else {
		out = append(out, fmt.Sprintf("identity: ARP: only XDP answers for emulated addresses (arp_ignore=1, arp_announce=1 on %s while running)", link))
	}
	if rate, burst := ic.answer(); rate > 0 {
		out = append(out, fmt.Sprintf("identity: answers (UDP, ICMP, SYN-ACKs, resets) at most %d B/s per destination, burst %d B", rate, burst))
	} else {
		out = append(out, "identity: answers not bounded per destination in the kernel (answer_bytes_per_second = -1)")
	}
	if ic.Announce {
		rate, max := ic.AnnounceRate, ic.AnnounceMax
		if rate == 0 {
			rate = 20
		}
		if max == 0 {
			max = 1024
		}
		out = append(out, fmt.Sprintf("identity: hosts boot with an ARP probe, then a gratuitous ARP (IPv6: DAD, unsolicited NA), %d frames/s, at most %d hosts", rate, max))
	}
	closed, own, edges, _ := ic.policies()
	out = append(out, fmt.Sprintf("identity: SYNs to closed ports %s, to the sensor's own address %s, subnet edges and dark hosts %s", closed, own, edges))
	var names []string
	for name := range r.profiles {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		p := r.profiles[name].profile
		mac := "the interface's MAC (no databus key uses icsnare.mac)"
		if key, blocks, ok, err := p.MACOUIs(); err != nil {
			mac = fmt.Sprintf("the interface's MAC (%s: %v)", key, err)
		} else if ok {
			bs := make([]string, len(blocks))
			for i, b := range blocks {
				bs[i] = b.String()
			}
			mac = fmt.Sprintf("MACs from the host seed in %s (databus %s)", strings.Join(bs, " "), key)
		}
		pers := "the sensor's own stack"
		if ic.Personality != nil && !*ic.Personality {
			pers = "the sensor's own stack (personality = false)"
		} else if pe, ok := p.Personality(); ok {
			ttl := fmt.Sprintf("TTL %d", pe.TTL)
			if pe.TTLOpen != 0 {
				ttl = fmt.Sprintf("TTL %d (open ports %d)", pe.TTL, pe.TTLOpen)
			}
			pers = fmt.Sprintf("personality %s: %s, IP-ID %s, DF %v, window %#x, options %s", pe.Name, ttl, pe.IPID, pe.DF, pe.Window, pe.Options)
		}
		out = append(out, fmt.Sprintf("identity: profile %s: %s; %s", name, mac, pers))
	}
	return out
}
