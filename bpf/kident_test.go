package bpf

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

const xdpTX = 3

var (
	kiPrefix  = netip.MustParsePrefix("198.18.37.0/25")
	kiPrefix2 = netip.MustParsePrefix("198.18.37.128/26")
	kiPrefix6 = netip.MustParsePrefix("fd00:37::/64")
	kiMix     = netip.MustParsePrefix("198.18.38.0/24")
	kiDevMAC  = net.HardwareAddr{0x02, 0x37, 0, 0, 0, 1}
	kiPeerMAC = net.HardwareAddr{0x02, 0x37, 0, 0, 0, 2}
	kiPeer    = netip.MustParseAddr("198.18.37.254")
	kiPeer6   = netip.MustParseAddr("fd00:37::ffff")
	kiSeed    = uint64(0x1c5a4e37)
)

func kiPersona(t testing.TB, name string) *profiles.Personality {
	p, ok := profiles.LookupPersonality(name)
	if !ok {
		t.Fatalf("no personality %s", name)
	}
	return &p
}

// loadTestIdentity loads the identity programs with an S7 /25 (ports 102, 502, 80), a
// BMC /26 (all ports), an IPv6 S7 /64 and a /24 of both, half of it live, and sets the
// device MAC.
func loadTestIdentity(t testing.TB) *Identity {
	t.Helper()
	return loadTestIdentityWith(t, nil)
}

// loadTestIdentityWith is loadTestIdentity with the configuration changed by edit.
func loadTestIdentityWith(t testing.TB, edit func(*IdentityConfig)) *Identity {
	t.Helper()
	protocoltest.NeedRoot(t)
	siemens, _ := profiles.VendorBlocks("siemens")
	cfg := IdentityConfig{Seed: kiSeed, Defaults: true,
		Prefixes: []HostPrefix{
			{Prefix: kiPrefix, OnLink: true, Profiles: []HostProfile{{Profile: "default", OUIs: siemens, Personality: kiPersona(t, "siemens-s7-300"), Ports: []uint16{80, 102, 502}}}},
			{Prefix: kiPrefix2, OnLink: true, Profiles: []HostProfile{{Profile: "bmc", OUIs: profiles.Blocks([]profiles.OUI{{0x0c, 0xc4, 0x7a}}), Personality: kiPersona(t, "supermicro-bmc")}}},
			{Prefix: kiPrefix6, OnLink: true, Profiles: []HostProfile{{Profile: "default", OUIs: siemens, Personality: kiPersona(t, "siemens-s7-300"), Ports: []uint16{102}}}},
			// A mix: 30 % S7, 70 % BMC, half the addresses live.
			{Prefix: kiMix, OnLink: true, Live: 1 << 31, Cum: []uint64{(1 << 32) * 3 / 10, 1 << 32}, Profiles: []HostProfile{
				{Profile: "default", OUIs: siemens, Personality: kiPersona(t, "siemens-s7-300"), Ports: []uint16{80, 102, 502}},
				{Profile: "bmc", OUIs: profiles.Blocks([]profiles.OUI{{0x0c, 0xc4, 0x7a}}), Personality: kiPersona(t, "supermicro-bmc")}}},
		},
		Listened: []uint16{80, 102, 502},
		Locals:   []netip.Addr{netip.MustParseAddr("198.18.36.1")},
	}
	if edit != nil {
		edit(&cfg)
	}
	id, err := LoadIdentity(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { id.Close() })
	if err := id.objs.DevMac.Set([6]byte(kiDevMAC)); err != nil {
		t.Fatal(err)
	}
	return id
}

func runProg(t testing.TB, p *ebpf.Program, frame []byte) (uint32, []byte) {
	t.Helper()
	out := make([]byte, len(frame)+256)
	opts := &ebpf.RunOptions{Data: frame, DataOut: out}
	ret, err := p.Run(opts)
	if err != nil {
		t.Fatalf("prog run: %v", err)
	}
	return ret, opts.DataOut
}

func arpFrame(t testing.TB, op uint16, sha net.HardwareAddr, spa, tpa netip.Addr, mut func(*layers.ARP)) []byte {
	a := &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
		Operation: op, SourceHwAddress: sha, SourceProtAddress: spa.AsSlice(), DstHwAddress: make([]byte, 6), DstProtAddress: tpa.AsSlice()}
	if mut != nil {
		mut(a)
	}
	dst := layers.EthernetBroadcast
	return serialize(t, &layers.Ethernet{SrcMAC: sha, DstMAC: dst, EthernetType: layers.EthernetTypeARP}, a)
}

// decode decodes a frame with gopacket, fails on any decoding error and verifies every
// IPv4, TCP, ICMPv4 and ICMPv6 checksum.
func decode(t testing.TB, frame []byte) gopacket.Packet {
	t.Helper()
	p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	if el := p.ErrorLayer(); el != nil {
		t.Fatalf("gopacket: %v\n%x", el.Error(), frame)
	}
	nl := p.NetworkLayer()
	type verifier interface {
		VerifyChecksum() (error, gopacket.ChecksumVerificationResult)
	}
	check := func(name string, v verifier) {
		err, res := v.VerifyChecksum()
		if err != nil || !res.Valid {
			t.Fatalf("%s checksum: %v %+v\n%x", name, err, res, frame)
		}
	}
	if ip, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
		check("IPv4", ip)
	}
	if tcp, ok := p.Layer(layers.LayerTypeTCP).(*layers.TCP); ok {
		tcp.SetNetworkLayerForChecksum(nl)
		check("TCP", tcp)
	}
	if ic, ok := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4); ok {
		check("ICMPv4", ic)
	}
	if ic, ok := p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6); ok {
		ic.SetNetworkLayerForChecksum(nl)
		check("ICMPv6", ic)
	}
	return p
}

func hostAddr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{198, 18, 37, byte(i)})
}

func TestIdentityARP(t *testing.T) {
	id := loadTestIdentity(t)
	siemens, _ := profiles.VendorBlocks("siemens")
	seen := map[string]bool{}
	for i := 1; i <= 10; i++ {
		addr := hostAddr(i)
		ret, out := runProg(t, id.objs.XdpKident, arpFrame(t, layers.ARPRequest, kiPeerMAC, kiPeer, addr, nil))
		if ret != xdpTX {
			t.Fatalf("%s: XDP %d, want TX", addr, ret)
		}
		p := decode(t, out)
		eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		arp := p.Layer(layers.LayerTypeARP).(*layers.ARP)
		want := profiles.HostMACIn(HostSeed(kiSeed, addr, "default"), siemens)
		if m, _ := id.MAC(addr); !bytes.Equal(m, want) {
			t.Fatalf("Identity.MAC %s != HostMAC %s", m, want)
		}
		if arp.Operation != layers.ARPReply || !bytes.Equal(arp.SourceHwAddress, want) || !bytes.Equal(eth.SrcMAC, want) ||
			!bytes.Equal(eth.DstMAC, kiPeerMAC) || !bytes.Equal(arp.DstHwAddress, kiPeerMAC) ||
			netip.AddrFrom4([4]byte(arp.SourceProtAddress)) != addr || netip.AddrFrom4([4]byte(arp.DstProtAddress)) != kiPeer {
			t.Fatalf("%s: reply %+v eth %s>%s, want MAC %s", addr, arp, eth.SrcMAC, eth.DstMAC, want)
		}
		seen[want.String()] = true
	}
	if len(seen) != 10 {
		t.Fatalf("%d distinct MACs for 10 hosts", len(seen))
	}
	// The BMC half: Supermicro's OUI.
	ret, out := runProg(t, id.objs.XdpKident, arpFrame(t, layers.ARPRequest, kiPeerMAC, kiPeer, hostAddr(150), nil))
	if arp := decode(t, out).Layer(layers.LayerTypeARP).(*layers.ARP); ret != xdpTX || !bytes.Equal(arp.SourceHwAddress[:3], []byte{0x0c, 0xc4, 0x7a}) {
		t.Fatalf("bmc host: %d %s", ret, arp.SourceHwAddress)
	}
	for _, tt := range []struct {
		name string
		tpa  netip.Addr
		mut  func(*layers.ARP)
		want uint32
	}{
		{"htype 6", hostAddr(3), func(a *layers.ARP) { a.AddrType = layers.LinkTypeIEEE802_11 }, xdpDrop},
		{"ptype IPv6", hostAddr(3), func(a *layers.ARP) { a.Protocol = layers.EthernetTypeIPv6 }, xdpDrop},
		{"op 3", hostAddr(3), func(a *layers.ARP) { a.Operation = 3 }, xdpDrop},
		{"multicast sender", hostAddr(3), func(a *layers.ARP) { a.SourceHwAddress = net.HardwareAddr{1, 0, 0x5e, 0, 0, 1} }, xdpDrop},
		{"network address", hostAddr(0), nil, xdpDrop},
		{"broadcast address", hostAddr(127), nil, xdpDrop},
		{"not emulated", netip.MustParseAddr("198.18.36.9"), nil, xdpPass},
	} {
		ret, _ := runProg(t, id.objs.XdpKident, arpFrame(t, layers.ARPRequest, kiPeerMAC, kiPeer, tt.tpa, tt.mut))
		if ret != tt.want {
			t.Errorf("%s: XDP %d, want %d", tt.name, ret, tt.want)
		}
	}
	// Address lengths that do not fit Ethernet and IPv4 (the frame keeps its layout).
	for _, tt := range []struct {
		off int
		val byte
	}{{14 + 4, 5}, {14 + 5, 6}, {14 + 4, 8}} {
		f := arpFrame(t, layers.ARPRequest, kiPeerMAC, kiPeer, hostAddr(3), nil)
		f[tt.off] = tt.val
		if ret, _ := runProg(t, id.objs.XdpKident, f); ret != xdpDrop {
			t.Errorf("byte %d = %d: XDP %d, want drop", tt.off, tt.val, ret)
		}
	}
	// Truncated: 20 bytes of ARP.
	f := arpFrame(t, layers.ARPRequest, kiPeerMAC, kiPeer, hostAddr(3), nil)
	if ret, _ := runProg(t, id.objs.XdpKident, f[:14+20]); ret != xdpPass {
		t.Errorf("truncated: %d", ret)
	}
	c, err := id.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if c["arp_reply"] != 11 || c["arp_malformed"] != 7 || c["conflict"] != 0 || c["edge_drop"] != 2 {
		t.Fatalf("counters %v", c)
	}
}

func TestIdentityConflict(t *testing.T) {
	id := loadTestIdentity(t)
	real := net.HardwareAddr{0x00, 0x11, 0x22, 0x33, 0x44, 0x55}
	// A machine answers for .7 from its own MAC (gratuitous ARP): .7 goes dark.
	if ret, _ := runProg(t, id.objs.XdpKident, arpFrame(t, layers.ARPReply, real, hostAddr(7), hostAddr(7), nil)); ret != xdpPass {
		t.Fatalf("claim: %d", ret)
	}
	// An ARP probe for .8 (address conflict detection): .8 goes dark, no answer.
	if ret, _ := runProg(t, id.objs.XdpKident, arpFrame(t, layers.ARPRequest, real, netip.IPv4Unspecified(), hostAddr(8), nil)); ret != xdpDrop {
		t.Fatalf("probe: %d", ret)
	}
	// Our own MAC claiming our own address is no conflict.
	m9, _ := id.MAC(hostAddr(9))
	runProg(t, id.objs.XdpKident, arpFrame(t, layers.ARPReply, m9, hostAddr(9), hostAddr(9), nil))
	got := map[netip.Addr]Conflict{}
	timeout := time.After(5 * time.Second)
	for len(got) < 2 {
		select {
		case c := <-id.Conflicts():
			got[c.Addr] = c
		case <-timeout:
			t.Fatalf("conflicts: %v", got)
		}
	}
	if c := got[hostAddr(7)]; c.Probe || !bytes.Equal(c.MAC, real) {
		t.Errorf(".7: %+v", c)
	}
	if c := got[hostAddr(8)]; !c.Probe {
		t.Errorf(".8: %+v", c)
	}
	dark, err := id.Dark()
	if err != nil || len(dark) != 2 {
		t.Fatalf("dark %v %v", dark, err)
	}
	for _, a := range []netip.Addr{hostAddr(7), hostAddr(8)} {
		if ret, _ := runProg(t, id.objs.XdpKident, arpFrame(t, layers.ARPRequest, kiPeerMAC, kiPeer, a, nil)); ret != xdpDrop {
			t.Errorf("dark %s answered: %d", a, ret)
		}
	}
	if ret, _ := runProg(t, id.objs.XdpKident, arpFrame(t, layers.ARPRequest, kiPeerMAC, kiPeer, hostAddr(9), nil)); ret != xdpTX {
		t.Errorf(".9 not answered: %d", ret)
	}
	if err := id.Undark(hostAddr(7)); err != nil {
		t.Fatal(err)
	}
	if ret, _ := runProg(t, id.objs.XdpKident, arpFrame(t, layers.ARPRequest, kiPeerMAC, kiPeer, hostAddr(7), nil)); ret != xdpTX {
		t.Errorf(".7 after Undark: %d", ret)
	}
	if c, _ := id.Counters(); c["conflict"] != 2 || c["dark_drop"] != 3 {
		t.Errorf("counters %v", c)
	}
}

func tcpFrame(t testing.TB, dstMAC net.HardwareAddr, src, dst netip.Addr, tcp *layers.TCP, payload []byte) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: kiPeerMAC, DstMAC: dstMAC}
	var ip gopacket.NetworkLayer
	if dst.Is4() {
		eth.EthernetType = layers.EthernetTypeIPv4
		ip = &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: src.AsSlice(), DstIP: dst.AsSlice(), Flags: layers.IPv4DontFragment}
	} else {
		eth.EthernetType = layers.EthernetTypeIPv6
		ip = &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	}
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	return serialize(t, eth, ip.(gopacket.SerializableLayer), tcp, gopacket.Payload(payload))
}

// nmapSYNOptions are the options of nmap's first OS probe (WS 10, NOP, MSS, TS, SACK).
func nmapSYNOptions(mss uint16) []layers.TCPOption {
	m := make([]byte, 2)
	binary.BigEndian.PutUint16(m, mss)
	return []layers.TCPOption{
		{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{10}},
		{OptionType: layers.TCPOptionKindNop},
		{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: m},
		{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}},
		{OptionType: layers.TCPOptionKindSACKPermitted, OptionLength: 2},
	}
}

func TestIdentityMACAndSYN(t *testing.T) {
	id := loadTestIdentity(t)
	a, b := hostAddr(3), hostAddr(4)
	macA, _ := id.MAC(a)
	macB, _ := id.MAC(b)
	syn := func(port uint16) *layers.TCP {
		return &layers.TCP{SrcPort: 40000, DstPort: layers.TCPPort(port), Seq: 1000, SYN: true, Window: 1024, Options: nmapSYNOptions(1400)}
	}
	// A's IP with B's MAC (honeyd #68): dropped, counted.
	if ret, _ := runProg(t, id.objs.XdpKident, tcpFrame(t, macB, kiPeer, a, syn(102), nil)); ret != xdpDrop {
		t.Fatalf("B's MAC: %d", ret)
	}
	if ret, _ := runProg(t, id.objs.XdpKident, tcpFrame(t, kiDevMAC, kiPeer, a, syn(102), nil)); ret != xdpDrop {
		t.Fatalf("device MAC: %d", ret)
	}
	// A's MAC: passed with the device's MAC, the options the S7 lacks made NOPs.
	ret, out := runProg(t, id.objs.XdpKident, tcpFrame(t, macA, kiPeer, a, syn(102), nil))
	if ret != xdpPass {
		t.Fatalf("A's MAC: %d", ret)
	}
	p := decode(t, out)
	if eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet); !bytes.Equal(eth.DstMAC, kiDevMAC) {
		t.Fatalf("destination MAC %s, want the device's", eth.DstMAC)
	}
	var kinds []layers.TCPOptionKind
	for _, o := range p.Layer(layers.LayerTypeTCP).(*layers.TCP).Options {
		if o.OptionType != layers.TCPOptionKindNop {
			kinds = append(kinds, o.OptionType)
		}
	}
	if len(kinds) != 1 || kinds[0] != layers.TCPOptionKindMSS {
		t.Fatalf("SYN options after stripping: %v", kinds)
	}
	// ECN requested (ECE+CWR): the S7 does not negotiate it, so the request goes.
	ecn := syn(102)
	ecn.ECE, ecn.CWR = true, true
	_, out = runProg(t, id.objs.XdpKident, tcpFrame(t, macA, kiPeer, a, ecn, nil))
	if tcp := decode(t, out).Layer(layers.LayerTypeTCP).(*layers.TCP); tcp.ECE || tcp.CWR || !tcp.SYN {
		t.Fatalf("ECN SYN: %+v", tcp)
	}
	// nmap T3 (SYN FIN PSH URG to an open port): a plain SYN for the S7's stack.
	t3 := syn(102)
	t3.FIN, t3.PSH, t3.URG = true, true, true
	_, out = runProg(t, id.objs.XdpKident, tcpFrame(t, macA, kiPeer, a, t3, nil))
	if tcp := decode(t, out).Layer(layers.LayerTypeTCP).(*layers.TCP); tcp.FIN || tcp.PSH || tcp.URG || !tcp.SYN {
		t.Fatalf("T3 SYN: %+v", tcp)
	}
	// The BMC keeps all of them.
	bmc := hostAddr(130)
	macBMC, _ := id.MAC(bmc)
	orig := tcpFrame(t, macBMC, kiPeer, bmc, syn(443), nil)
	ret, out = runProg(t, id.objs.XdpKident, orig)
	if ret != xdpPass || !bytes.Equal(out[14:], orig[14:]) {
		t.Fatalf("bmc SYN changed: %d", ret)
	}
	// A port the S7 does not serve: RST+ACK from XDP with the S7's TTL and no DF.
	ret, out = runProg(t, id.objs.XdpKident, tcpFrame(t, macA, kiPeer, a, syn(22), []byte("x")))
	if ret != xdpTX {
		t.Fatalf("closed port: %d", ret)
	}
	p = decode(t, out)
	ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	tcp := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if !tcp.RST || !tcp.ACK || tcp.SYN || tcp.Ack != 1002 || tcp.Seq != 0 || tcp.SrcPort != 22 || tcp.DstPort != 40000 ||
		ip.TTL != 0x78 || ip.Flags&layers.IPv4DontFragment != 0 || netip.AddrFrom4([4]byte(ip.SrcIP)) != a || len(out) != 54 {
		t.Fatalf("RST %+v ip %+v len %d", tcp, ip, len(out))
	}
	// IPv6: the same RST.
	a6 := netip.MustParseAddr("fd00:37::3")
	mac6, _ := id.MAC(a6)
	ret, out = runProg(t, id.objs.XdpKident, tcpFrame(t, mac6, kiPeer6, a6, syn(23), nil))
	if ret != xdpTX {
		t.Fatalf("closed v6 port: %d", ret)
	}
	p = decode(t, out)
	if tcp := p.Layer(layers.LayerTypeTCP).(*layers.TCP); !tcp.RST || tcp.Ack != 1001 || p.Layer(layers.LayerTypeIPv6).(*layers.IPv6).HopLimit != 0x78 {
		t.Fatalf("v6 RST %+v", tcp)
	}
	// Edges and the sensor's own address on a listened port: dropped before any handshake.
	for _, dst := range []netip.Addr{hostAddr(0), hostAddr(127), hostAddr(191)} {
		if ret, _ := runProg(t, id.objs.XdpKident, tcpFrame(t, kiDevMAC, kiPeer, dst, syn(102), nil)); ret != xdpDrop {
			t.Errorf("SYN to edge %s: %d", dst, ret)
		}
	}
	own := netip.MustParseAddr("198.18.36.1")
	if ret, _ := runProg(t, id.objs.XdpKident, tcpFrame(t, kiDevMAC, kiPeer, own, syn(502), nil)); ret != xdpDrop {
		t.Errorf("SYN to own address on 502: %d", ret)
	}
	if ret, _ := runProg(t, id.objs.XdpKident, tcpFrame(t, kiDevMAC, kiPeer, own, syn(22), nil)); ret != xdpPass {
		t.Errorf("SYN to own address on 22: %d", ret)
	}
	c, _ := id.Counters()
	if c["mac_mismatch"] != 2 || c["syn_reset"] != 2 || c["syn_drop"] != 1 || c["syn_stripped"] != 9 {
		t.Fatalf("counters %v", c)
	}
}

// linuxSYNACK is a SYN-ACK as Linux sends it: MSS, SACK+TS, NOP, WS 7 (or MSS only).
func linuxSYNACK(t testing.TB, src netip.Addr, sport uint16, full bool) []byte {
	opts := []layers.TCPOption{{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xb4}}}
	if full {
		opts = append(opts,
			layers.TCPOption{OptionType: layers.TCPOptionKindSACKPermitted, OptionLength: 2},
			layers.TCPOption{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: []byte{0, 0, 0, 9, 0xff, 0xff, 0xff, 0xff}},
			layers.TCPOption{OptionType: layers.TCPOptionKindNop},
			layers.TCPOption{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{7}})
	}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: 40000, Seq: 5000, Ack: 1001, SYN: true, ACK: true, Window: 0xfaf0, Options: opts}
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Id: 0, Flags: layers.IPv4DontFragment, Protocol: layers.IPProtocolTCP, SrcIP: src.AsSlice(), DstIP: kiPeer.AsSlice()}
	tcp.SetNetworkLayerForChecksum(ip)
	return serialize(t, &layers.Ethernet{SrcMAC: kiDevMAC, DstMAC: kiPeerMAC, EthernetType: layers.EthernetTypeIPv4}, ip, tcp)
}

func TestIdentityEgress(t *testing.T) {
	id := loadTestIdentity(t)
	s7 := hostAddr(5)
	macS7, _ := id.MAC(s7)
	// The client's SYN (MSS 1400) is remembered for the S7's SYN-ACK (nmap O2=M578).
	syn := &layers.TCP{SrcPort: 40000, DstPort: 102, Seq: 1000, SYN: true, Window: 63, Options: nmapSYNOptions(1400)}
	if ret, _ := runProg(t, id.objs.XdpKident, tcpFrame(t, macS7, kiPeer, s7, syn, nil)); ret != xdpPass {
		t.Fatal("SYN not passed")
	}
	var lastID uint16
	for i := range 3 {
		ret, out := runProg(t, id.objs.TcKident, linuxSYNACK(t, s7, 102, false))
		if ret != 0 {
			t.Fatalf("tc: %d", ret)
		}
		p := decode(t, out)
		eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		tcp := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if !bytes.Equal(eth.SrcMAC, macS7) || ip.TTL != 0x5a || ip.Flags&layers.IPv4DontFragment != 0 || tcp.Window != 0x800 {
			t.Fatalf("S7 SYN-ACK: src %s ttl %d flags %v window %#x", eth.SrcMAC, ip.TTL, ip.Flags, tcp.Window)
		}
		wantMSS := uint16(1460)
		if i == 0 {
			wantMSS = 1400 // the flow's entry is used once
		}
		if len(tcp.Options) != 1 || binary.BigEndian.Uint16(tcp.Options[0].OptionData) != wantMSS {
			t.Fatalf("S7 SYN-ACK %d options %v, want MSS %d", i, tcp.Options, wantMSS)
		}
		if i > 0 && ip.Id != lastID+1 {
			t.Fatalf("IP-ID %d after %d: not incremental", ip.Id, lastID)
		}
		lastID = ip.Id
	}
	// The BMC: TTL 64, DF, IP-ID 0, window 0x16A0, window scale 2, options kept in order.
	bmc := hostAddr(140)
	macBMC, _ := id.MAC(bmc)
	_, out := runProg(t, id.objs.TcKident, linuxSYNACK(t, bmc, 443, true))
	p := decode(t, out)
	ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	tcp := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if !bytes.Equal(p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet).SrcMAC, macBMC) || ip.TTL != 64 || ip.Flags&layers.IPv4DontFragment == 0 || ip.Id != 0 || tcp.Window != 0x16a0 {
		t.Fatalf("BMC SYN-ACK ip %+v window %#x", ip, tcp.Window)
	}
	var kinds []layers.TCPOptionKind
	var ws byte
	for _, o := range tcp.Options {
		kinds = append(kinds, o.OptionType)
		if o.OptionType == layers.TCPOptionKindWindowScale {
			ws = o.OptionData[0]
		}
	}
	if want := []layers.TCPOptionKind{2, 4, 8, 1, 3}; !bytes.Equal(kindBytes(kinds), kindBytes(want)) || ws != 2 {
		t.Fatalf("BMC options %v ws %d", kinds, ws)
	}
	// ICMP echo reply with code 9 (nmap IE): code 0 from the S7, checksum fixed.
	icmp := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(0, 9), Id: 7, Seq: 295}
	ipi := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: s7.AsSlice(), DstIP: kiPeer.AsSlice()}
	_, out = runProg(t, id.objs.TcKident, serialize(t, &layers.Ethernet{SrcMAC: kiDevMAC, DstMAC: kiPeerMAC, EthernetType: layers.EthernetTypeIPv4}, ipi, icmp, gopacket.Payload(make([]byte, 120))))
	p = decode(t, out)
	if ic := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4); ic.TypeCode.Code() != 0 || p.Layer(layers.LayerTypeIPv4).(*layers.IPv4).TTL != 0x78 {
		t.Fatalf("echo reply %v", ic.TypeCode)
	}
	// Port unreachable quoting 128 bytes of the UDP probe (Linux): the S7 quotes the IP
	// header and 8 bytes (nmap U1 IPL=38), lengths and checksums fixed.
	ipIn := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: kiPeer.AsSlice(), DstIP: s7.AsSlice()}
	udpIn := &layers.UDP{SrcPort: 40000, DstPort: 36828}
	udpIn.SetNetworkLayerForChecksum(ipIn)
	inner := serialize(t, ipIn, udpIn, gopacket.Payload(bytes.Repeat([]byte{'C'}, 600)))
	unreach := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(3, 3)}
	ipu := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: s7.AsSlice(), DstIP: kiPeer.AsSlice()}
	_, out = runProg(t, id.objs.TcKident, serialize(t, &layers.Ethernet{SrcMAC: kiDevMAC, DstMAC: kiPeerMAC, EthernetType: layers.EthernetTypeIPv4}, ipu, unreach, gopacket.Payload(inner[:548])))
	p = decode(t, out)
	if ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ip.Length != 56 || len(out) != 14+56 || ip.TTL != 0x78 {
		t.Fatalf("port unreachable: IP length %d, frame %d, TTL %d", ip.Length, len(out), ip.TTL)
	}
	// Not emulated: untouched.
	orig := linuxSYNACK(t, netip.MustParseAddr("198.18.36.1"), 80, true)
	if _, out = runProg(t, id.objs.TcKident, orig); !bytes.Equal(out, orig) {
		t.Fatal("sensor's own SYN-ACK changed")
	}
}

func kindBytes(k []layers.TCPOptionKind) []byte {
	b := make([]byte, len(k))
	for i, v := range k {
		b[i] = byte(v)
	}
	return b
}

func TestIdentityND(t *testing.T) {
	id := loadTestIdentity(t)
	target := netip.MustParseAddr("fd00:37::42")
	want, _ := id.MAC(target)
	ns := func(hop uint8, src netip.Addr, withOpt bool) []byte {
		sn := netip.AddrFrom16([16]byte{0xff, 0x02, 10: 0, 11: 1, 12: 0xff, 13: target.As16()[13], 14: target.As16()[14], 15: target.As16()[15]})
		ip := &layers.IPv6{Version: 6, HopLimit: hop, NextHeader: layers.IPProtocolICMPv6, SrcIP: src.AsSlice(), DstIP: sn.AsSlice()}
		ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborSolicitation, 0)}
		ic.SetNetworkLayerForChecksum(ip)
		sol := &layers.ICMPv6NeighborSolicitation{TargetAddress: target.AsSlice()}
		if withOpt {
			sol.Options = layers.ICMPv6Options{{Type: layers.ICMPv6OptSourceAddress, Data: kiPeerMAC}}
		}
		return serialize(t, &layers.Ethernet{SrcMAC: kiPeerMAC, DstMAC: net.HardwareAddr{0x33, 0x33, 0xff, 0, 0, 0x42}, EthernetType: layers.EthernetTypeIPv6}, ip, ic, sol)
	}
	ret, out := runProg(t, id.objs.XdpKident, ns(255, kiPeer6, true))
	if ret != xdpTX {
		t.Fatalf("NS: %d", ret)
	}
	p := decode(t, out)
	na, ok := p.Layer(layers.LayerTypeICMPv6NeighborAdvertisement).(*layers.ICMPv6NeighborAdvertisement)
	if !ok || !bytes.Equal(na.TargetAddress, target.AsSlice()) || !na.Solicited() || !na.Override() || len(na.Options) != 1 ||
		!bytes.Equal(na.Options[0].Data, want) || !bytes.Equal(p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet).SrcMAC, want) {
		t.Fatalf("NA %+v, want MAC %s", na, want)
	}
	if ip6 := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6); netip.AddrFrom16([16]byte(ip6.DstIP)) != kiPeer6 || netip.AddrFrom16([16]byte(ip6.SrcIP)) != target {
		t.Fatalf("NA addresses %s > %s", ip6.SrcIP, ip6.DstIP)
	}
	if ret, _ := runProg(t, id.objs.XdpKident, ns(64, kiPeer6, true)); ret != xdpDrop {
		t.Fatalf("NS with hop limit 64: %d", ret)
	}
	// Duplicate address detection by another machine: dark.
	if ret, _ := runProg(t, id.objs.XdpKident, ns(255, netip.IPv6Unspecified(), false)); ret != xdpDrop {
		t.Fatalf("DAD: %d", ret)
	}
	if ret, _ := runProg(t, id.objs.XdpKident, ns(255, kiPeer6, true)); ret != xdpDrop {
		t.Fatalf("NS for a dark host: %d", ret)
	}
	if c, _ := id.Counters(); c["nd_reply"] != 1 || c["nd_malformed"] != 1 || c["conflict"] != 1 {
		t.Fatalf("counters %v", c)
	}
}

// TestIdentityMix: in a prefix with a weighted mix of profiles and a density, the kernel
// answers exactly the live addresses, each with its drawn profile's MAC.
func TestIdentityMix(t *testing.T) {
	id := loadTestIdentity(t)
	live, s7 := 0, 0
	for i := 1; i < 255; i++ {
		addr := netip.AddrFrom4([4]byte{198, 18, 38, byte(i)})
		want, ok := id.MAC(addr)
		ret, out := runProg(t, id.objs.XdpKident, arpFrame(t, layers.ARPRequest, kiPeerMAC, kiPeer, addr, nil))
		if !ok {
			if ret != xdpDrop {
				t.Fatalf("%s: no host, XDP %d", addr, ret)
			}
			continue
		}
		live++
		if ret != xdpTX {
			t.Fatalf("%s: live host not answered: %d", addr, ret)
		}
		got := decode(t, out).Layer(layers.LayerTypeARP).(*layers.ARP).SourceHwAddress
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: kernel MAC %s, Go %s", addr, net.HardwareAddr(got), want)
		}
		if !bytes.Equal(got[:3], []byte{0x0c, 0xc4, 0x7a}) {
			s7++
		}
	}
	t.Logf("live %d of 254, S7 %d", live, s7)
	if live < 90 || live > 165 || s7 < live/6 || s7 > live/2 {
		t.Fatalf("live %d, S7 %d: not the configured density and weights", live, s7)
	}
}
