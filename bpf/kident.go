package bpf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/vishvananda/netlink"

	"github.com/icsnare/icsnare/profiles"
)

// Policy is what the identity program does with a TCP SYN it decides in XDP.
type Policy uint32

// SYN policies.
const (
	PolicyPass  Policy = iota // leave it to the stack
	PolicyDrop                // silence, as a filtered port or an absent machine
	PolicyReset               // RST+ACK from XDP, as a closed port of the host's stack
)

// ParsePolicy parses "pass", "drop" or "reset".
func ParsePolicy(s string) (Policy, error) {
	switch s {
	case "pass":
		return PolicyPass, nil
	case "drop":
		return PolicyDrop, nil
	case "reset":
		return PolicyReset, nil
	}
	return 0, fmt.Errorf("policy %q: want pass, drop or reset", s)
}

func (p Policy) String() string {
	switch p {
	case PolicyPass:
		return "pass"
	case PolicyDrop:
		return "drop"
	case PolicyReset:
		return "reset"
	}
	return fmt.Sprintf("policy(%d)", uint32(p))
}

// HostProfile is one profile of an emulated prefix.
type HostProfile struct {
	Profile string // the profile's name: part of every host's seed
	// OUIs are the MAC blocks of the hosts' MACs (profiles.Profile.MACOUIs: MA-L, MA-M
	// or MA-S); without any, the hosts keep the interface's MAC and get no ARP answers
	// from XDP.
	OUIs []profiles.MACBlock
	// Personality shapes the hosts' packets; nil keeps the sensor's own stack.
	Personality *profiles.Personality
	// Ports are the TCP ports the profile serves; SYNs to the hosts' other ports get
	// IdentityConfig.Closed. Nil: every port is left to the stack.
	Ports []uint16
}

// HostPrefix is one emulated prefix as the identity program sees it: one profile, or a
// weighted mix of which a fraction of the addresses are live, drawn per address from
// the seed as the sensor draws them.
type HostPrefix struct {
	Prefix   netip.Prefix
	Profiles []HostProfile // 1 to 8
	// Cum are the mix's cumulative weights scaled so that the last is 1<<32 (nil for
	// one profile); an address takes the first profile whose Cum is above its draw.
	Cum []uint64
	// Live: an address is a host when its draw (32 bits) is below Live; 0: every one.
	Live uint64
	// OnLink: the prefix is on the interface's link, so XDP answers ARP and neighbour
	// solicitations and checks destination MACs. A prefix routed to the sensor is not.
	OnLink bool
}

// maxMix is the kernel's limit of profiles per prefix.
const maxMix = 8

// Pick draws the profile of addr in hp, as the kernel and the sensor do; false: no host
// lives there.
func (hp *HostPrefix) Pick(seed uint64, addr netip.Addr) (*HostProfile, bool) {
	if hp.Live != 0 && HostSeed(seed, addr, "\x00live")>>32 >= hp.Live {
		return nil, false
	}
	if len(hp.Profiles) == 1 {
		return &hp.Profiles[0], true
	}
	x := HostSeed(seed, addr, "\x00profile") >> 32
	for i, c := range hp.Cum {
		if x < c {
			return &hp.Profiles[i], true
		}
	}
	return &hp.Profiles[len(hp.Profiles)-1], true
}

// IdentityConfig configures the identity programs.
type IdentityConfig struct {
	Seed     uint64 // the deployment seed, as the sensor derives host seeds from it
	Prefixes []HostPrefix
	Closed   Policy // SYN to a port a host's profile does not serve (default reset)
	Local    Policy // SYN to a listened port of the sensor's own address (default drop)
	Edge     Policy // anything to a subnet edge or a dark host (default drop)
	// Listened are the TCP ports the sensor listens on for every address; Locals the
	// sensor's own addresses (not emulated). Together they decide Local.
	Listened []uint16
	Locals   []netip.Addr
	Logger   *slog.Logger
	// Defaults reports that Closed, Local and Edge were left zero and take their defaults.
	Defaults bool
	// VLAN is the 802.1Q VLAN id of the hosts' link on the interface: the programs act
	// on frames tagged with it (and pass others untouched); 0: on untagged frames.
	VLAN uint16
	// AnswerRate and AnswerBurst bound, per destination address, the bytes the hosts
	// send in packets a spoofed request can elicit (UDP, ICMP, SYN-ACKs, resets): a token
	// bucket of AnswerBurst bytes refilled at AnswerRate bytes per second. 0: no bound.
	AnswerRate, AnswerBurst uint64
	// PinPath pins the counters and dark hosts under this bpffs directory (next to the
	// rate limiter's maps) for `icsnare xdp stats`; "" pins nothing.
	PinPath string
	// Promisc: "auto" (or "") puts a physical NIC in promiscuous mode while attached, so
	// frames to the hosts' MACs reach XDP (a veth or bridge port needs none); "on" any
	// interface; "off" none.
	Promisc string
}

// Limits of the answer bucket (bytes per second, bytes).
const (
	MaxAnswerRate  = 1 << 30
	MaxAnswerBurst = 1 << 30
)

// Conflict is a real machine claiming an emulated address: the host went dark.
type Conflict struct {
	Time  time.Time
	Addr  netip.Addr
	MAC   net.HardwareAddr // the claimant's
	Probe bool             // an ARP probe or duplicate address detection, not a claim
}

// Identity is the loaded kernel identity: XDP (ARP, neighbour discovery, MAC checks,
// SYN decisions) and TC egress (source MAC, TCP/IP personality).
type Identity struct {
	cfg      IdentityConfig
	log      *slog.Logger
	objs     kidentObjects
	profiles map[string]uint32
	mu       sync.Mutex
	links    []link.Link
	promisc  int             // ifindex put in promiscuous mode by Attach; 0: none
	nlh      *netlink.Handle // netlink in the interface's namespace, to undo promisc at Close
	xdpMode  string
	ifname   string
	rd       *ringbuf.Reader
	events   chan Conflict
	done     chan struct{}
	closed   bool
}

// Counter names, in the order of the program's enum counter.
var identityCounters = []string{"arp_reply", "arp_malformed", "conflict", "dark_drop", "nd_reply",
	"nd_malformed", "mac_mismatch", "syn_drop", "syn_reset", "syn_stripped", "edge_drop", "tc_mac",
	"tc_personality", "tc_synack", "event_lost", "mac_ok", "answer_pass", "answer_drop", "answer_drop_bytes", "vlan_other"}

const (
	ouiStride = 8 // bytes per MAC block in profile_ent.ouis: prefix, length, pad

	prefFOnLink = 1
	prefFEdges  = 2

	entFAllPorts = 1

	persDF        = 1
	persTS        = 2
	persSACK      = 4
	persWS        = 8
	persMSS       = 16
	persEchoMSS   = 32
	persEchoCode0 = 64
	persECN       = 128
	persSYNFIN    = 256
	persICMPNoDF  = 512
	persFINSilent = 1024
	persRSTNoDF   = 2048
	persQuoteZero = 4096
	persACKSilent = 8192
	persRSTWindow = 16384
)

// LoadIdentity loads the identity programs and fills their maps. It attaches nothing
// (see Attach).
func LoadIdentity(cfg IdentityConfig) (*Identity, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Defaults {
		cfg.Closed, cfg.Local, cfg.Edge = PolicyReset, PolicyDrop, PolicyDrop
	}
	for _, p := range []Policy{cfg.Closed, cfg.Local, cfg.Edge} {
		if p > PolicyReset {
			return nil, fmt.Errorf("identity: %v", p)
		}
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("identity: memlock: %w", err)
	}
	spec, err := loadKident()
	if err != nil {
		return nil, fmt.Errorf("identity: load spec: %w", err)
	}
	for name, v := range map[string]Policy{"policy_closed": cfg.Closed, "policy_local": cfg.Local, "policy_edge": cfg.Edge} {
		if err := spec.Variables[name].Set(uint32(v)); err != nil {
			return nil, fmt.Errorf("identity: %s: %w", name, err)
		}
	}
	if cfg.VLAN > 4094 {
		return nil, fmt.Errorf("identity: VLAN %d outside 0..4094", cfg.VLAN)
	}
	switch cfg.Promisc {
	case "", "auto", "on", "off":
	default:
		return nil, fmt.Errorf("identity: promisc %q: want auto, on or off", cfg.Promisc)
	}
	if cfg.AnswerRate > MaxAnswerRate || cfg.AnswerBurst > MaxAnswerBurst || (cfg.AnswerRate > 0) != (cfg.AnswerBurst > 0) {
		return nil, fmt.Errorf("identity: answer bucket %d B/s, burst %d B: want both 0 or both 1..%d", cfg.AnswerRate, cfg.AnswerBurst, MaxAnswerRate)
	}
	var capNS uint64
	if cfg.AnswerRate > 0 {
		capNS = cfg.AnswerBurst*1e9/cfg.AnswerRate + 1
	}
	for name, v := range map[string]any{"vlan_id": cfg.VLAN, "answer_rate": cfg.AnswerRate, "answer_burst": cfg.AnswerBurst, "answer_cap_ns": capNS} {
		if err := spec.Variables[name].Set(v); err != nil {
			return nil, fmt.Errorf("identity: %s: %w", name, err)
		}
	}
	id := &Identity{cfg: cfg, log: cfg.Logger, profiles: map[string]uint32{}, events: make(chan Conflict, 64), done: make(chan struct{})}
	if err := spec.LoadAndAssign(&id.objs, nil); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("identity: verifier: %+v", ve)
		}
		return nil, fmt.Errorf("identity: load: %w", err)
	}
	if err := id.fill(); err != nil {
		id.objs.Close()
		return nil, err
	}
	if cfg.PinPath != "" {
		if err := id.pin(cfg.PinPath); err != nil {
			id.objs.Close()
			return nil, err
		}
	}
	if id.rd, err = ringbuf.NewReader(id.objs.Conflicts); err != nil {
		id.objs.Close()
		return nil, fmt.Errorf("identity: ring buffer: %w", err)
	}
	go id.readConflicts()
	return id, nil
}

// fnvOffset and fnvPrime are FNV-1a 64's parameters.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// HostSeed is the sensor's host seed: FNV-1a 64 over the deployment seed (big endian),
// the address (IPv4 as IPv4-mapped IPv6) and the profile name, then the splitmix64
// finaliser. The kernel computes the same to derive MACs.
func HostSeed(seed uint64, addr netip.Addr, profile string) uint64 {
	h := fnv.New64a()
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], seed)
	h.Write(b[:])
	a := addr.Unmap().As16()
	h.Write(a[:])
	h.Write([]byte(profile))
	return profiles.Mix64(h.Sum64())
}

func seedState(seed uint64) uint64 {
	h := uint64(fnvOffset)
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], seed)
	for _, c := range b {
		h ^= uint64(c)
		h *= fnvPrime
	}
	return h
}

func addrKey(p netip.Prefix) kidentAddrKey {
	k := kidentAddrKey{Prefixlen: uint32(p.Bits()), Addr: p.Addr().As16()}
	if p.Addr().Is4() {
		k.Prefixlen += 96
	}
	return k
}

func (id *Identity) fill() error {
	persIdx := map[string]uint32{}
	for i, hp := range id.cfg.Prefixes {
		if !hp.Prefix.IsValid() {
			return fmt.Errorf("identity: prefix %d: invalid", i)
		}
		if a := hp.Prefix.Addr(); a.Is4In6() {
			if hp.Prefix.Bits() < 96 {
				return fmt.Errorf("identity: prefix %s: IPv4-mapped prefix shorter than /96", hp.Prefix)
			}
			hp.Prefix = netip.PrefixFrom(a.Unmap(), hp.Prefix.Bits()-96)
		}
		hp.Prefix = hp.Prefix.Masked()
		if len(hp.Profiles) == 0 || len(hp.Profiles) > maxMix {
			return fmt.Errorf("identity: prefix %s: %d profiles, want 1 to %d", hp.Prefix, len(hp.Profiles), maxMix)
		}
		if len(hp.Profiles) > 1 && len(hp.Cum) != len(hp.Profiles) {
			return fmt.Errorf("identity: prefix %s: %d weights for %d profiles", hp.Prefix, len(hp.Cum), len(hp.Profiles))
		}
		v := kidentPrefixInfo{Fnv: seedState(id.cfg.Seed), Live: hp.Live, Bits: uint32(hp.Prefix.Bits()), N: uint32(len(hp.Profiles))}
		if hp.OnLink {
			v.Flags |= prefFOnLink
		}
		if hp.Prefix.Addr().Is4() && hp.Prefix.Bits() < 31 {
			v.Flags |= prefFEdges
		}
		for k, pr := range hp.Profiles {
			e := &v.Ent[k]
			if len(pr.Profile) > len(e.Name) {
				return fmt.Errorf("identity: prefix %s: profile name %q over %d bytes", hp.Prefix, pr.Profile, len(e.Name))
			}
			if len(pr.OUIs) > len(e.Ouis)/ouiStride {
				return fmt.Errorf("identity: prefix %s: %d OUIs, at most %d", hp.Prefix, len(pr.OUIs), len(e.Ouis)/ouiStride)
			}
			prof, ok := id.profiles[pr.Profile]
			if !ok {
				prof = uint32(len(id.profiles))
				id.profiles[pr.Profile] = prof
				for _, port := range pr.Ports {
					if err := id.objs.Ports.Put(kidentPortKey{Profile: prof, Port: port}, uint8(1)); err != nil {
						return fmt.Errorf("identity: port %d: %w", port, err)
					}
				}
			}
			e.Profile = prof
			e.NameLen = uint32(len(pr.Profile))
			copy(e.Name[:], pr.Profile)
			e.N_ouis = uint32(len(pr.OUIs))
			for j, o := range pr.OUIs {
				if o.Bits != 24 && o.Bits != 28 && o.Bits != 36 {
					return fmt.Errorf("identity: prefix %s: MAC block %v: length %d", hp.Prefix, o, o.Bits)
				}
				copy(e.Ouis[ouiStride*j:], o.Prefix[:])
				e.Ouis[ouiStride*j+6] = o.Bits
			}
			if pr.Ports == nil {
				e.Flags |= entFAllPorts
			}
			e.Cum = 1 << 32
			if len(hp.Cum) > 0 {
				e.Cum = hp.Cum[k]
			}
			if pr.Personality != nil {
				if err := pr.Personality.Validate(); err != nil {
					return fmt.Errorf("identity: prefix %s: %w", hp.Prefix, err)
				}
				idx, ok := persIdx[pr.Personality.Name]
				if !ok {
					idx = uint32(len(persIdx))
					if idx >= id.objs.Personas.MaxEntries() {
						return fmt.Errorf("identity: more than %d personalities", id.objs.Personas.MaxEntries())
					}
					persIdx[pr.Personality.Name] = idx
					if err := id.objs.Personas.Put(idx, kernelPersonality(*pr.Personality)); err != nil {
						return fmt.Errorf("identity: personality %s: %w", pr.Personality.Name, err)
					}
				}
				e.Pers = idx + 1
			}
		}
		if err := id.objs.Prefixes.Put(addrKey(hp.Prefix), v); err != nil {
			return fmt.Errorf("identity: prefix %s: %w", hp.Prefix, err)
		}
		id.cfg.Prefixes[i] = hp
	}
	for _, p := range id.cfg.Listened {
		if err := id.objs.Listened.Put(p, uint8(1)); err != nil {
			return fmt.Errorf("identity: listened port %d: %w", p, err)
		}
	}
	for _, a := range id.cfg.Locals {
		if err := id.objs.Locals.Put(a.Unmap().As16(), uint8(1)); err != nil {
			return fmt.Errorf("identity: local address %s: %w", a, err)
		}
	}
	return nil
}

func kernelPersonality(p profiles.Personality) kidentPersonality {
	k := kidentPersonality{Ttl: p.TTL, TtlOpen: p.TTLOpen, Ipid: uint8(p.IPID), IcmpIpid: uint8(p.ICMPIPID), Window: p.Window, Mss: p.MSS}
	set := func(c bool, f uint32) {
		if c {
			k.Flags |= f
		}
	}
	set(p.DF, persDF)
	set(p.HasOption('T'), persTS)
	set(p.HasOption('S'), persSACK)
	set(p.HasOption('M'), persMSS)
	set(p.EchoMSS, persEchoMSS)
	set(p.EchoCodeZero, persEchoCode0)
	set(p.ECN, persECN)
	set(p.SYNFIN, persSYNFIN)
	set(p.ICMPNoDF, persICMPNoDF)
	set(p.FINSilent, persFINSilent)
	set(p.RSTNoDF, persRSTNoDF)
	set(p.QuoteZeroChecksums, persQuoteZero)
	set(p.ACKSilent, persACKSilent)
	set(p.RSTWindow, persRSTWindow)
	k.Quote = uint16(p.ICMPQuote)
	k.MssDefault = p.MSSDefault
	k.BandLo, k.BandHi, k.BandTo = p.MSSBand[0], p.MSSBand[1], p.MSSBand[2]
	if ws := p.WScale(); ws >= 0 {
		k.Flags |= persWS
		k.Wscale = uint8(ws)
	}
	return k
}

// MAC returns the MAC the kernel answers for addr with (profiles.HostMAC of the host
// seed); ok is false when no on-link prefix with OUIs covers addr.
func (id *Identity) MAC(addr netip.Addr) (net.HardwareAddr, bool) {
	addr = addr.Unmap()
	var best *HostPrefix
	for i := range id.cfg.Prefixes {
		hp := &id.cfg.Prefixes[i]
		if hp.Prefix.Contains(addr) && (best == nil || hp.Prefix.Bits() > best.Prefix.Bits()) {
			best = hp
		}
	}
	if best == nil || !best.OnLink {
		return nil, false
	}
	pr, ok := best.Pick(id.cfg.Seed, addr)
	if !ok || len(pr.OUIs) == 0 {
		return nil, false
	}
	return profiles.HostMACIn(HostSeed(id.cfg.Seed, addr, pr.Profile), pr.OUIs), true
}

// Attach sets the device MAC the program hands frames on with, attaches the XDP program
// (native, falling back to generic, or the given mode) and the TC egress program (tcx)
// to the interface in the calling thread's namespace. It returns the XDP mode.
func (id *Identity) Attach(ifname, mode string) (string, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return "", fmt.Errorf("identity attach: %w", err)
	}
	if len(ifi.HardwareAddr) != 6 {
		return "", fmt.Errorf("identity attach %s: not an Ethernet interface", ifname)
	}
	id.mu.Lock()
	defer id.mu.Unlock()
	if len(id.links) > 0 {
		return id.xdpMode, fmt.Errorf("identity attach %s: already attached to %s", ifname, id.ifname)
	}
	var mac [6]byte
	copy(mac[:], ifi.HardwareAddr)
	if err := id.objs.DevMac.Set(mac); err != nil {
		return "", fmt.Errorf("identity: device MAC: %w", err)
	}
	try := []string{"native", "generic"}
	if mode != "" && mode != "auto" {
		try = []string{mode}
	} else if isVeth(ifname) {
		// veth in native mode keeps the packet type it computed before the program
		// ran, so frames rewritten to the device's MAC would still be dropped as
		// another host's; generic mode recomputes it.
		try = []string{"generic"}
		id.log.Info("identity: veth interface, XDP in generic mode", "interface", ifname)
	}
	var errs []error
	var xl link.Link
	for _, m := range try {
		flags := link.XDPDriverMode
		switch m {
		case "native":
		case "generic":
			flags = link.XDPGenericMode
		default:
			return "", fmt.Errorf("identity attach %s: unknown mode %q", ifname, m)
		}
		if xl, err = link.AttachXDP(link.XDPOptions{Program: id.objs.XdpKident, Interface: ifi.Index, Flags: flags}); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", m, err))
			continue
		}
		id.xdpMode = m
		break
	}
	if xl == nil {
		return "", fmt.Errorf("identity attach %s: xdp: %w", ifname, errors.Join(errs...))
	}
	tl, err := link.AttachTCX(link.TCXOptions{Program: id.objs.TcKident, Interface: ifi.Index, Attach: ebpf.AttachTCXEgress})
	if err != nil {
		xl.Close()
		return "", fmt.Errorf("identity attach %s: tc egress: %w", ifname, err)
	}
	id.links = []link.Link{xl, tl}
	id.ifname = ifname
	if id.cfg.Promisc == "on" || ((id.cfg.Promisc == "" || id.cfg.Promisc == "auto") && isPhysical(ifname)) {
		if err := id.setPromisc(ifi.Index); err != nil {
			id.log.Warn("identity: promiscuous mode not set; frames to the hosts' MACs may not reach XDP", "interface", ifname, "err", err)
		}
	}
	if id.xdpMode == "generic" && len(try) == 2 {
		id.log.Warn("identity XDP in generic mode (slower; the driver lacks native XDP)", "interface", ifname, "native_error", errors.Join(errs...))
	}
	return id.xdpMode, nil
}

// isPhysical reports whether the interface is backed by a device (a NIC), not a virtual
// one (veth, bridge, bond, VLAN, tun).
func isPhysical(ifname string) bool {
	_, err := os.Stat(filepath.Join("/sys/class/net", ifname, "device"))
	return err == nil
}

// setPromisc puts the interface in promiscuous mode unless it already is (then it is
// left as found at Close): a NIC's unicast filter drops frames to MACs that are not its
// own before XDP runs.
func (id *Identity) setPromisc(index int) error {
	h, err := netlink.NewHandle() // the calling thread's namespace, the interface's
	if err != nil {
		return err
	}
	l, err := h.LinkByIndex(index)
	if err != nil {
		h.Close()
		return err
	}
	if l.Attrs().Promisc != 0 {
		h.Close()
		return nil
	}
	if err := h.SetPromiscOn(l); err != nil {
		h.Close()
		return err
	}
	id.promisc, id.nlh = index, h
	id.log.Info("identity: promiscuous mode on while attached", "interface", l.Attrs().Name)
	return nil
}

// Promisc reports whether Attach put the interface in promiscuous mode.
func (id *Identity) Promisc() bool {
	id.mu.Lock()
	defer id.mu.Unlock()
	return id.promisc != 0
}

// isVeth reports whether the interface is a veth end.
func isVeth(ifname string) bool {
	l, err := netlink.LinkByName(ifname)
	return err == nil && l.Type() == "veth"
}

// Chain makes the identity program hand every frame it passes to prog (the rate
// limiter's XDP program, see Limiter.Program); nil removes it.
func (id *Identity) Chain(prog *ebpf.Program) error {
	if prog == nil {
		if err := id.objs.Chain.Delete(uint32(0)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("identity: unchain: %w", err)
		}
		return nil
	}
	if err := id.objs.Chain.Put(uint32(0), prog); err != nil {
		return fmt.Errorf("identity: chain: %w", err)
	}
	return nil
}

// Conflicts delivers the hosts that went dark because a real machine claimed their
// address. The channel is closed by Close; a full channel drops records (they stay in
// Dark).
func (id *Identity) Conflicts() <-chan Conflict { return id.events }

func (id *Identity) readConflicts() {
	defer close(id.done)
	defer close(id.events)
	for {
		rec, err := id.rd.Read()
		if err != nil {
			return
		}
		if len(rec.RawSample) < 32 {
			continue
		}
		b := rec.RawSample
		c := Conflict{Addr: netip.AddrFrom16([16]byte(b[:16])).Unmap(), MAC: net.HardwareAddr(append([]byte(nil), b[16:22]...)),
			Probe: b[22] == 1, Time: time.Now()}
		select {
		case id.events <- c:
		default:
		}
	}
}

// DarkHost is a host a real machine claimed, and since when (kernel monotonic ns).
type DarkHost struct {
	Addr  netip.Addr
	Since uint64
}

// Dark lists the dark hosts.
func (id *Identity) Dark() ([]DarkHost, error) {
	return identityMaps{id.objs.Kcounters, id.objs.Dark}.darkHosts()
}

// Undark lets XDP answer for addr again.
func (id *Identity) Undark(addr netip.Addr) error {
	if err := id.objs.Dark.Delete(addr.Unmap().As16()); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("identity: undark %s: %w", addr, err)
	}
	return nil
}

// Counters sums the programs' per-CPU counters by name (arp_reply, mac_mismatch …).
func (id *Identity) Counters() (map[string]uint64, error) {
	return identityMaps{id.objs.Kcounters, id.objs.Dark}.read()
}

// WriteStats prints the counters and dark hosts (`icsnare xdp stats`).
func (id *Identity) WriteStats(w io.Writer) error {
	id.mu.Lock()
	head := fmt.Sprintf("IDENTITY (%s, xdp %s, promiscuous %v)", id.ifname, id.xdpMode, id.promisc != 0)
	id.mu.Unlock()
	return identityMaps{id.objs.Kcounters, id.objs.Dark}.writeStats(w, head)
}

var (
	descIdentity = prometheus.NewDesc("icsnare_xdp_identity_total",
		"Decisions of the kernel identity programs (ARP/ND answers, MAC mismatches dropped, SYN decisions, rewrites).",
		[]string{"what"}, nil)
	descDark = prometheus.NewDesc("icsnare_xdp_identity_dark_hosts",
		"Emulated hosts a real machine claimed (not answered).", nil, nil)
	descIdentityAttached = prometheus.NewDesc("icsnare_xdp_identity_attached",
		"1 when the identity programs are attached, with the XDP mode.", []string{"interface", "mode"}, nil)
)

type identityCollector struct{ id *Identity }

// Collector exports the counters, the dark host count and the attachment.
func (id *Identity) Collector() prometheus.Collector { return identityCollector{id} }

func (c identityCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descIdentity
	ch <- descDark
	ch <- descIdentityAttached
}

func (c identityCollector) Collect(ch chan<- prometheus.Metric) {
	if m, err := c.id.Counters(); err == nil {
		for _, name := range identityCounters {
			ch <- prometheus.MustNewConstMetric(descIdentity, prometheus.CounterValue, float64(m[name]), name)
		}
	}
	if d, err := c.id.Dark(); err == nil {
		ch <- prometheus.MustNewConstMetric(descDark, prometheus.GaugeValue, float64(len(d)))
	}
	c.id.mu.Lock()
	ifn, mode := c.id.ifname, c.id.xdpMode
	c.id.mu.Unlock()
	if ifn != "" {
		ch <- prometheus.MustNewConstMetric(descIdentityAttached, prometheus.GaugeValue, 1, ifn, mode)
	}
}

// Program returns the limiter's XDP program, for Identity.Chain (the identity program
// attaches and hands frames on to it).
func (l *Limiter) Program() *ebpf.Program { return l.objs.XdpRatelimit }

// Close detaches the programs and frees them; idempotent.
func (id *Identity) Close() error {
	id.mu.Lock()
	if id.closed {
		id.mu.Unlock()
		return nil
	}
	id.closed = true
	var errs []error
	for _, l := range id.links {
		errs = append(errs, l.Close())
	}
	id.links = nil
	if id.promisc != 0 {
		if l, err := id.nlh.LinkByIndex(id.promisc); err == nil {
			errs = append(errs, id.nlh.SetPromiscOff(l))
		}
		id.nlh.Close()
		id.promisc, id.nlh = 0, nil
	}
	id.unpin()
	id.mu.Unlock()
	errs = append(errs, id.rd.Close())
	<-id.done
	errs = append(errs, id.objs.Close())
	return errors.Join(errs...)
}
