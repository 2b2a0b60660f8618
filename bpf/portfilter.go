package bpf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"syscall"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
)

// PortFilter is an sk_lookup program on the network namespace that makes each emulated
// host's ports its own: a TCP SYN or a UDP datagram to a port the sensor listens on, at a
// host whose profile does not serve that port, finds no socket, so the kernel answers as
// for a closed port (RST, ICMP port unreachable) before any handshake. Without it the
// sensor's wildcard listener completes the handshake and resets, which nmap calls
// "tcpwrapped". It needs CAP_BPF and CAP_NET_ADMIN; the program goes away with Close or
// with the process.
type PortFilter struct {
	// Silent: whether dark addresses are silent for TCP ([0]) and UDP ([1]); SinkErrs says
	// why not.
	Silent   [2]bool
	SinkErrs []error

	prog, dropAll                *ebpf.Program
	listened, hosts, ports, sink *ebpf.Map
	lnk                          link.Link
}

// addSink makes sk drop what it receives and puts it in the sockmap under key.
func addSink(m *ebpf.Map, key uint32, sk syscall.Conn, drop *ebpf.Program) error {
	rc, err := sk.SyscallConn()
	if err != nil {
		return err
	}
	var perr error
	if err := rc.Control(func(fd uintptr) { perr = m.Put(key, uint64(fd)) }); err != nil || perr != nil {
		return errors.Join(err, perr)
	}
	if err := link.AttachSocketFilter(sk, drop); err != nil {
		m.Delete(key)
		return err
	}
	return nil
}

// Transport numbers of a PortKey.
const (
	ProtoTCP = 6
	ProtoUDP = 17
)

// PortKey is one (port, transport) the sensor serves.
type PortKey struct {
	Port  uint16
	Proto uint8 // ProtoTCP or ProtoUDP
}

func (k PortKey) key() uint32 { return uint32(k.Port) | uint32(k.Proto)<<16 }

// PortPrefix gives the addresses of an IPv4 prefix a profile: Profile indexes
// PortFilterConfig.Profiles; PortPass leaves the prefix to the sockets (dark
// addresses, edges and prefixes the filter does not decide). The longest prefix wins.
type PortPrefix struct {
	Prefix  netip.Prefix
	Profile int
}

// PortPrefix.Profile values besides a profile index.
const (
	PortPass      = -1 // the sockets decide (the sensor's reset after accept)
	PortSilent    = -2 // no answer at all, as an address where no machine is (dark hosts)
	PortSilentTCP = -3 // TCP silent, UDP to the sockets (a subnet's broadcast address: fan-out)
)

// PortFilterConfig is what the filter decides on.
type PortFilterConfig struct {
	Listened []PortKey   // every endpoint the sensor's sockets serve
	Profiles [][]PortKey // the endpoints each profile serves
	Prefixes []PortPrefix
	// SinkTCP (a listener) and SinkUDP are sockets of the namespace that the filter makes
	// drop everything they receive (a socket filter returning 0): PortSilent addresses'
	// packets go to them, so no RST or ICMP error leaves. Nil: PortSilent acts as a
	// closed port.
	SinkTCP, SinkUDP syscall.Conn
}

// MaxPortPrefixes bounds the prefix table (one entry per live host of a mixed population
// plus one per rule).
const MaxPortPrefixes = 1 << 20

// hosts values of silent addresses.
const (
	silentAll = 0xFFFFFFFF
	silentTCP = 0xFFFFFFFE
)

// SkLookup context offsets (struct bpf_sk_lookup, uapi/linux/bpf.h).
const (
	skFamily    = 8
	skProtocol  = 12
	skLocalIP4  = 40
	skLocalPort = 60
	afInet      = 2
)

// LoadPortFilter loads the program and its tables and attaches it to the calling
// thread's network namespace.
func LoadPortFilter(cfg PortFilterConfig) (*PortFilter, error) {
	if len(cfg.Prefixes) > MaxPortPrefixes {
		return nil, fmt.Errorf("port filter: %d prefixes, at most %d", len(cfg.Prefixes), MaxPortPrefixes)
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("port filter: memlock: %w", err)
	}
	f := &PortFilter{}
	ok := false
	defer func() {
		if !ok {
			f.Close()
		}
	}()
	var err error
	if f.listened, err = ebpf.NewMap(&ebpf.MapSpec{Name: "pf_listened", Type: ebpf.Hash, KeySize: 4, ValueSize: 1,
		MaxEntries: uint32(max(1, len(cfg.Listened)))}); err != nil {
		return nil, fmt.Errorf("port filter: listened map: %w", err)
	}
	for _, k := range cfg.Listened {
		if err := f.listened.Put(k.key(), uint8(1)); err != nil {
			return nil, fmt.Errorf("port filter: listened %d/%d: %w", k.Port, k.Proto, err)
		}
	}
	if f.hosts, err = ebpf.NewMap(&ebpf.MapSpec{Name: "pf_hosts", Type: ebpf.LPMTrie, KeySize: 8, ValueSize: 4,
		MaxEntries: uint32(max(1, len(cfg.Prefixes))), Flags: 1 /* BPF_F_NO_PREALLOC */}); err != nil {
		return nil, fmt.Errorf("port filter: hosts map: %w", err)
	}
	for _, p := range cfg.Prefixes {
		if !p.Prefix.Addr().Is4() {
			return nil, fmt.Errorf("port filter: %s is not IPv4", p.Prefix)
		}
		if p.Profile < PortSilentTCP || p.Profile >= len(cfg.Profiles) {
			return nil, fmt.Errorf("port filter: %s: profile %d of %d", p.Prefix, p.Profile, len(cfg.Profiles))
		}
		var key [8]byte
		binary.NativeEndian.PutUint32(key[:4], uint32(p.Prefix.Bits()))
		a := p.Prefix.Masked().Addr().As4()
		copy(key[4:], a[:])
		// 0: pass; n: profile n-1; 0xFFFFFFFF silent; 0xFFFFFFFE silent for TCP.
		v := uint32(p.Profile + 1)
		switch p.Profile {
		case PortSilent:
			v = silentAll
		case PortSilentTCP:
			v = silentTCP
		}
		if err := f.hosts.Put(key, v); err != nil {
			return nil, fmt.Errorf("port filter: prefix %s: %w", p.Prefix, err)
		}
	}
	n := 0
	for _, ps := range cfg.Profiles {
		n += len(ps)
	}
	if f.ports, err = ebpf.NewMap(&ebpf.MapSpec{Name: "pf_ports", Type: ebpf.Hash, KeySize: 8, ValueSize: 1,
		MaxEntries: uint32(max(1, n))}); err != nil {
		return nil, fmt.Errorf("port filter: ports map: %w", err)
	}
	for i, ps := range cfg.Profiles {
		for _, k := range ps {
			var key [8]byte
			binary.NativeEndian.PutUint32(key[:4], uint32(i+1))
			binary.NativeEndian.PutUint32(key[4:], k.key())
			if err := f.ports.Put(key, uint8(1)); err != nil {
				return nil, fmt.Errorf("port filter: profile %d port %d/%d: %w", i, k.Port, k.Proto, err)
			}
		}
	}
	if f.sink, err = ebpf.NewMap(&ebpf.MapSpec{Name: "pf_sink", Type: ebpf.SockMap, KeySize: 4, ValueSize: 8, MaxEntries: 2}); err != nil {
		return nil, fmt.Errorf("port filter: sink map: %w", err)
	}
	if cfg.SinkTCP != nil || cfg.SinkUDP != nil {
		if f.dropAll, err = ebpf.NewProgram(&ebpf.ProgramSpec{Name: "icsnare_sink", Type: ebpf.SocketFilter, License: "Dual BSD/GPL",
			Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}}); err != nil {
			return nil, fmt.Errorf("port filter: sink filter: %w", err)
		}
	}
	// A kernel without sockmap support for TCP (no CONFIG_BPF_STREAM_PARSER) takes only the
	// UDP sink: its TCP then answers dark addresses as closed ports (RST).
	for i, sk := range []syscall.Conn{cfg.SinkTCP, cfg.SinkUDP} {
		if sk == nil {
			continue
		}
		if err := addSink(f.sink, uint32(i), sk, f.dropAll); err != nil {
			f.SinkErrs = append(f.SinkErrs, fmt.Errorf("%s sink: %w", [2]string{"tcp", "udp"}[i], err))
			continue
		}
		f.Silent[i] = true
	}
	if f.prog, err = ebpf.NewProgram(&ebpf.ProgramSpec{Name: "icsnare_ports", Type: ebpf.SkLookup,
		AttachType: ebpf.AttachSkLookup, License: "Dual BSD/GPL", Instructions: portFilterInsns(f.listened, f.hosts, f.ports, f.sink)}); err != nil {
		return nil, fmt.Errorf("port filter: load: %w", err)
	}
	ns, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return nil, fmt.Errorf("port filter: %w", err)
	}
	defer ns.Close()
	if f.lnk, err = link.AttachNetNs(int(ns.Fd()), f.prog); err != nil {
		return nil, fmt.Errorf("port filter: attach: %w", err)
	}
	ok = true
	return f, nil
}

// portFilterInsns is the program: SK_PASS unless the destination port is one the sensor
// listens on and the destination address's longest prefix names a profile without it.
//
//	svc  = local_port | protocol<<16          (stack -4)
//	if family != AF_INET || !listened[svc]    → pass
//	p = hosts[{32, local_ip4}]                 (stack -16: prefix length, address)
//	if p == nil || *p == 0                     → pass
//	if *p is silent (or silent TCP and TCP)    → the sink socket of the protocol, else drop
//	ports[{*p, svc}] ? pass : drop             (stack -24)
func portFilterInsns(listened, hosts, ports, sink *ebpf.Map) asm.Instructions {
	return asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R2, asm.R6, skFamily, asm.Word),
		asm.JNE.Imm(asm.R2, afInet, "pass"),
		asm.LoadMem(asm.R2, asm.R6, skLocalPort, asm.Word),
		asm.LoadMem(asm.R3, asm.R6, skProtocol, asm.Word),
		asm.LSh.Imm(asm.R3, 16),
		asm.Or.Reg(asm.R2, asm.R3),
		asm.StoreMem(asm.RFP, -4, asm.R2, asm.Word),
		asm.LoadMapPtr(asm.R1, listened.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "pass"),
		asm.StoreImm(asm.RFP, -16, 32, asm.Word),
		asm.LoadMem(asm.R2, asm.R6, skLocalIP4, asm.Word),
		asm.StoreMem(asm.RFP, -12, asm.R2, asm.Word),
		asm.LoadMapPtr(asm.R1, hosts.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -16),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "pass"),
		asm.LoadMem(asm.R7, asm.R0, 0, asm.Word),
		asm.JEq.Imm(asm.R7, 0, "pass"),
		asm.JEq.Imm32(asm.R7, int32(-1), "silent"),
		asm.JNE.Imm32(asm.R7, int32(-2), "profile"),
		asm.LoadMem(asm.R3, asm.R6, skProtocol, asm.Word),
		asm.JNE.Imm(asm.R3, ProtoTCP, "pass"),
		// silent: hand the packet to the sink socket of its protocol (key 0 TCP, 1 UDP).
		asm.LoadMem(asm.R3, asm.R6, skProtocol, asm.Word).WithSymbol("silent"),
		asm.Mov.Imm(asm.R2, 0),
		asm.JEq.Imm(asm.R3, ProtoTCP, "sinkkey"),
		asm.Mov.Imm(asm.R2, 1),
		asm.StoreMem(asm.RFP, -28, asm.R2, asm.Word).WithSymbol("sinkkey"),
		asm.LoadMapPtr(asm.R1, sink.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -28),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "drop"),
		asm.Mov.Reg(asm.R7, asm.R0),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Reg(asm.R2, asm.R7),
		asm.Mov.Imm(asm.R3, 0),
		asm.FnSkAssign.Call(),
		asm.Mov.Reg(asm.R1, asm.R7),
		asm.FnSkRelease.Call(),
		asm.Ja.Label("pass"),
		asm.StoreMem(asm.RFP, -24, asm.R7, asm.Word).WithSymbol("profile"),
		asm.LoadMem(asm.R2, asm.RFP, -4, asm.Word),
		asm.StoreMem(asm.RFP, -20, asm.R2, asm.Word),
		asm.LoadMapPtr(asm.R1, ports.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -24),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "drop"),
		asm.Mov.Imm(asm.R0, 1).WithSymbol("pass"), // SK_PASS: the sockets decide
		asm.Return(),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("drop"), // SK_DROP: no socket, a closed port
		asm.Return(),
	}
}

// Close detaches the program and frees its tables.
func (f *PortFilter) Close() error {
	var errs []error
	if f.lnk != nil {
		errs = append(errs, f.lnk.Close())
	}
	for _, p := range []*ebpf.Program{f.prog, f.dropAll} {
		if p != nil {
			errs = append(errs, p.Close())
		}
	}
	for _, m := range []*ebpf.Map{f.listened, f.hosts, f.ports, f.sink} {
		if m != nil {
			errs = append(errs, m.Close())
		}
	}
	return errors.Join(errs...)
}
