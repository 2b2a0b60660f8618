package bpf

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"
)

// AnnounceConfig bounds the announcements of booting hosts.
type AnnounceConfig struct {
	Rate int // frames per second (default 20, at most 1000)
	Max  int // hosts announced at most, over all on-link prefixes (default 1024)
	// ProbeWait is how long after the probes a machine that owns an address has to
	// answer before the announcements (default 1 s): an answer makes the host dark, and
	// dark hosts are not announced.
	ProbeWait time.Duration
}

// Announced is what Announce sent.
type Announced struct {
	Probed, Announced, Skipped int // Skipped: dark after the probes (a machine owns the address)
}

// announceHost is one host to announce.
type announceHost struct {
	addr netip.Addr
	mac  net.HardwareAddr
}

// announceScan bounds the addresses announceHosts looks at per host wanted, so a sparse
// prefix (a /64 with a low density) cannot keep it walking.
const announceScan = 64

// announceHosts lists the on-link hosts with a MAC of their own, in prefix order, at
// most max: each prefix's addresses from its start, subnet edges and absent addresses
// left out, looking at no more than announceScan*max addresses of each prefix.
func (id *Identity) announceHosts(max int) []announceHost {
	var out []announceHost
	for i := range id.cfg.Prefixes {
		hp := &id.cfg.Prefixes[i]
		if !hp.OnLink {
			continue
		}
		budget := announceScan * max
		a := hp.Prefix.Addr()
		for ; hp.Prefix.Contains(a) && len(out) < max && budget > 0; a = a.Next() {
			budget--
			if a.Is4() && hp.Prefix.Bits() < 31 {
				b := a.As4()
				host := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
				hm := uint32(1)<<(32-hp.Prefix.Bits()) - 1
				if host&hm == 0 || host&hm == hm {
					continue
				}
			}
			if a.Is6() && a == hp.Prefix.Addr() {
				continue // the subnet-router anycast address
			}
			if id.isLocal(a) {
				continue
			}
			if mac, ok := id.MAC(a); ok {
				out = append(out, announceHost{a, mac})
			}
		}
	}
	return out
}

func (id *Identity) isLocal(a netip.Addr) bool {
	for _, l := range id.cfg.Locals {
		if l.Unmap() == a {
			return true
		}
	}
	return false
}

// Announce makes the on-link hosts "boot" on the link the programs are attached to, as a
// device does (RFC 5227, RFC 4862): an ARP probe (sender 0.0.0.0) or duplicate address
// detection solicitation for each address first, then, after ProbeWait, a gratuitous
// ARP (an announcement: sender and target the host's address) or an unsolicited
// neighbour advertisement to all nodes for each host no machine answered for (an answer
// makes the host dark, in XDP). Frames carry the VLAN tag when the hosts' link is a
// VLAN. Rate-bounded; it stops at ctx's end.
func (id *Identity) Announce(ctx context.Context, ac AnnounceConfig) (Announced, error) {
	a, err := id.NewAnnouncer(ac)
	if err != nil {
		return Announced{}, err
	}
	defer a.Close()
	return a.Run(ctx)
}

// Announcer sends the announcements of Announce; NewAnnouncer opens its packet socket in
// the calling thread's network namespace, so Run may run on any goroutine.
type Announcer struct {
	id *Identity
	ac AnnounceConfig
	fd int
	to *unix.SockaddrLinklayer
}

// NewAnnouncer prepares the announcements on the attached interface.
func (id *Identity) NewAnnouncer(ac AnnounceConfig) (*Announcer, error) {
	if ac.Rate <= 0 {
		ac.Rate = 20
	}
	if ac.Rate > 1000 {
		ac.Rate = 1000
	}
	if ac.Max <= 0 {
		ac.Max = 1024
	}
	if ac.ProbeWait <= 0 {
		ac.ProbeWait = time.Second
	}
	id.mu.Lock()
	ifname := id.ifname
	id.mu.Unlock()
	if ifname == "" {
		return nil, fmt.Errorf("identity announce: not attached")
	}
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("identity announce: %w", err)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("identity announce: packet socket: %w", err)
	}
	return &Announcer{id: id, ac: ac, fd: fd, to: &unix.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6}}, nil
}

// Close closes the packet socket.
func (a *Announcer) Close() error { return unix.Close(a.fd) }

// Run sends the probes and then the announcements, rate-bounded, until done or ctx ends.
func (a *Announcer) Run(ctx context.Context) (Announced, error) {
	var res Announced
	id, ac, fd, to := a.id, a.ac, a.fd, a.to
	hosts := id.announceHosts(ac.Max)
	tick := time.NewTicker(time.Second / time.Duration(ac.Rate))
	defer tick.Stop()
	send := func(frame []byte) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		if err := unix.Sendto(fd, frame, 0, to); err != nil {
			return fmt.Errorf("identity announce: send: %w", err)
		}
		return nil
	}
	for _, h := range hosts {
		f, err := AnnounceFrame(h.mac, h.addr, id.cfg.VLAN, true)
		if err != nil {
			return res, err
		}
		if err := send(f); err != nil {
			return res, err
		}
		res.Probed++
	}
	select {
	case <-ctx.Done():
		return res, ctx.Err()
	case <-time.After(ac.ProbeWait):
	}
	dark, err := id.Dark()
	if err != nil {
		return res, err
	}
	isDark := map[netip.Addr]bool{}
	for _, d := range dark {
		isDark[d.Addr] = true
	}
	for _, h := range hosts {
		if isDark[h.addr] {
			res.Skipped++
			continue
		}
		f, err := AnnounceFrame(h.mac, h.addr, id.cfg.VLAN, false)
		if err != nil {
			return res, err
		}
		if err := send(f); err != nil {
			return res, err
		}
		res.Announced++
	}
	return res, nil
}

// AnnounceFrame builds the frame a booting host sends: with probe, an ARP probe (sender
// 0.0.0.0, target addr) or a duplicate address detection solicitation (from ::, to the
// solicited-node group); without, a gratuitous ARP request (sender and target addr, to
// the broadcast address) or an unsolicited override advertisement to ff02::1. A non-zero
// vlan adds an 802.1Q tag.
func AnnounceFrame(mac net.HardwareAddr, addr netip.Addr, vlan uint16, probe bool) ([]byte, error) {
	var ls []gopacket.SerializableLayer
	eth := &layers.Ethernet{SrcMAC: mac}
	etype := func(t layers.EthernetType) {
		if vlan != 0 {
			eth.EthernetType = layers.EthernetTypeDot1Q
			ls = append(ls, &layers.Dot1Q{VLANIdentifier: vlan, Type: t})
		} else {
			eth.EthernetType = t
		}
	}
	ls = append(ls, eth)
	if addr.Is4() {
		eth.DstMAC = layers.EthernetBroadcast
		etype(layers.EthernetTypeARP)
		spa := addr.AsSlice()
		if probe {
			spa = []byte{0, 0, 0, 0}
		}
		ls = append(ls, &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6,
			ProtAddressSize: 4, Operation: layers.ARPRequest, SourceHwAddress: mac, SourceProtAddress: spa,
			DstHwAddress: make([]byte, 6), DstProtAddress: addr.AsSlice()})
	} else {
		ip6 := &layers.IPv6{Version: 6, HopLimit: 255, NextHeader: layers.IPProtocolICMPv6}
		icmp := &layers.ICMPv6{}
		a := addr.As16()
		if probe {
			// To the solicited-node group ff02::1:ffXX:XXXX, from the unspecified address.
			dst := netip.AddrFrom16([16]byte{0xff, 0x02, 11: 1, 12: 0xff, 13: a[13], 14: a[14], 15: a[15]})
			ip6.SrcIP, ip6.DstIP = net.IPv6unspecified, dst.AsSlice()
			eth.DstMAC = net.HardwareAddr{0x33, 0x33, 0xff, a[13], a[14], a[15]}
			icmp.TypeCode = layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborSolicitation, 0)
			etype(layers.EthernetTypeIPv6)
			icmp.SetNetworkLayerForChecksum(ip6)
			ls = append(ls, ip6, icmp, &layers.ICMPv6NeighborSolicitation{TargetAddress: addr.AsSlice()})
		} else {
			ip6.SrcIP, ip6.DstIP = addr.AsSlice(), net.IPv6linklocalallnodes
			eth.DstMAC = net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}
			icmp.TypeCode = layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborAdvertisement, 0)
			etype(layers.EthernetTypeIPv6)
			icmp.SetNetworkLayerForChecksum(ip6)
			ls = append(ls, ip6, icmp, &layers.ICMPv6NeighborAdvertisement{Flags: 0x20, TargetAddress: addr.AsSlice(),
				Options: layers.ICMPv6Options{{Type: layers.ICMPv6OptTargetAddress, Data: mac}}})
		}
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		return nil, fmt.Errorf("identity announce: %s: %w", addr, err)
	}
	return buf.Bytes(), nil
}
