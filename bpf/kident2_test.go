package bpf

import (
	"bytes"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/vishvananda/netlink"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols/protocoltest"
	"golang.org/x/sys/unix"
)

const (
	tcOK   = 0
	tcShot = 2
)

var kiBlocks = netip.MustParsePrefix("198.18.72.0/26")

// TestIdentityMACBlocks: hosts of a vendor that holds only an MA-M block (Distech) and of
// an MA-S block get MACs inside the block from XDP, equal to profiles.HostMACIn.
func TestIdentityMACBlocks(t *testing.T) {
	distech, ok := profiles.VendorBlocks("distech")
	if !ok || len(distech) == 0 || distech[0].Bits != 28 {
		t.Fatalf("distech blocks %v", distech)
	}
	mas, err := profiles.ParseMACBlock("70:B3:D5:F2:F0:00/36")
	if err != nil {
		t.Fatal(err)
	}
	blocks := append(distech, mas)
	id := loadTestIdentityWith(t, func(c *IdentityConfig) {
		c.Prefixes = append(c.Prefixes, HostPrefix{Prefix: kiBlocks, OnLink: true,
			Profiles: []HostProfile{{Profile: "bacnet-controller", OUIs: blocks}}})
	})
	inBlock := map[int]int{}
	seen := map[string]bool{}
	for i := 1; i <= 40; i++ {
		addr := netip.AddrFrom4([4]byte{198, 18, 72, byte(i)})
		ret, out := runProg(t, id.objs.XdpKident, arpFrame(t, layers.ARPRequest, kiPeerMAC, kiPeer, addr, nil))
		if ret != xdpTX {
			t.Fatalf("%s: XDP %d", addr, ret)
		}
		got := decode(t, out).Layer(layers.LayerTypeARP).(*layers.ARP).SourceHwAddress
		want := profiles.HostMACIn(HostSeed(kiSeed, addr, "bacnet-controller"), blocks)
		if m, _ := id.MAC(addr); !bytes.Equal(got, want) || !bytes.Equal(m, want) {
			t.Fatalf("%s: XDP %s, Identity.MAC %s, HostMACIn %s", addr, net.HardwareAddr(got), m, want)
		}
		for k, b := range blocks {
			if b.Contains(got) {
				inBlock[k]++
			}
		}
		seen[net.HardwareAddr(got).String()] = true
	}
	if inBlock[0]+inBlock[1] != 40 || inBlock[0] == 0 || inBlock[1] == 0 || len(seen) != 40 {
		t.Fatalf("MACs per block %v, %d distinct", inBlock, len(seen))
	}
}

func dot1q(t testing.TB, frame []byte, vid uint16) []byte {
	t.Helper()
	out := append([]byte(nil), frame[:12]...)
	out = append(out, 0x81, 0x00, byte(vid>>8), byte(vid))
	return append(out, frame[12:]...)
}

// TestIdentityVLAN: with VLAN 72, XDP answers ARP and resets SYNs in frames tagged 72
// (the replies keep the tag), passes untagged frames and other VLANs untouched; TC
// shapes frames with the tag inline at the right offsets.
func TestIdentityVLAN(t *testing.T) {
	id := loadTestIdentityWith(t, func(c *IdentityConfig) { c.VLAN = 72 })
	addr := hostAddr(9)
	mac, _ := id.MAC(addr)
	arp := arpFrame(t, layers.ARPRequest, kiPeerMAC, kiPeer, addr, nil)
	ret, out := runProg(t, id.objs.XdpKident, dot1q(t, arp, 72))
	if ret != xdpTX {
		t.Fatalf("tagged ARP: %d", ret)
	}
	p := decode(t, out)
	q, _ := p.Layer(layers.LayerTypeDot1Q).(*layers.Dot1Q)
	a, _ := p.Layer(layers.LayerTypeARP).(*layers.ARP)
	if q == nil || q.VLANIdentifier != 72 || a == nil || a.Operation != layers.ARPReply || !bytes.Equal(a.SourceHwAddress, mac) {
		t.Fatalf("tagged ARP reply: %v", p)
	}
	for name, f := range map[string][]byte{"untagged": arp, "VLAN 73": dot1q(t, arp, 73)} {
		if ret, out := runProg(t, id.objs.XdpKident, f); ret != xdpPass || !bytes.Equal(out[:len(f)], f) {
			t.Errorf("%s: XDP %d", name, ret)
		}
	}
	// A SYN to a closed port of the S7, tagged: the RST keeps the tag and is whole.
	syn := &layers.TCP{SrcPort: 40000, DstPort: 22, Seq: 1000, SYN: true, Window: 1024}
	ret, out = runProg(t, id.objs.XdpKident, dot1q(t, tcpFrame(t, mac, kiPeer, addr, syn, nil), 72))
	if ret != xdpTX || len(out) != 58 {
		t.Fatalf("tagged SYN: %d, %d bytes", ret, len(out))
	}
	p = decode(t, out)
	if tcp := p.Layer(layers.LayerTypeTCP).(*layers.TCP); !tcp.RST || tcp.Ack != 1001 || p.Layer(layers.LayerTypeDot1Q) == nil ||
		p.Layer(layers.LayerTypeIPv4).(*layers.IPv4).TTL != 0x78 {
		t.Fatalf("tagged RST %v", p)
	}
	// TC: an S7 SYN-ACK with the tag inline gets the host's MAC, TTL and window.
	ret, out = runProg(t, id.objs.TcKident, dot1q(t, linuxSYNACK(t, addr, 102, true), 72))
	if ret != tcOK {
		t.Fatalf("tc: %d", ret)
	}
	p = decode(t, out)
	eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	tcp := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if !bytes.Equal(eth.SrcMAC, mac) || ip.TTL != 0x5a || ip.Flags&layers.IPv4DontFragment != 0 || tcp.Window != 0x800 {
		t.Fatalf("tagged SYN-ACK: src %s ttl %#x flags %v window %#x", eth.SrcMAC, ip.TTL, ip.Flags, tcp.Window)
	}
	// Untagged and VLAN 73 frames are another link's: untouched.
	for name, f := range map[string][]byte{"untagged": linuxSYNACK(t, addr, 102, true), "VLAN 73": dot1q(t, linuxSYNACK(t, addr, 102, true), 73)} {
		if _, out := runProg(t, id.objs.TcKident, f); !bytes.Equal(out[:len(f)], f) {
			t.Errorf("tc %s changed", name)
		}
	}
	if c, _ := id.Counters(); c["vlan_other"] != 1 || c["arp_reply"] != 1 || c["syn_reset"] != 1 {
		t.Fatalf("counters %v", c)
	}
}

// TestIdentityTTLOpen: the S7 answers from open ports with TTL 0x5A and from closed
// ports (resets of the stack, ICMP) with 0x78, as nmap-os-db's Siemens Simatic 300.
func TestIdentityTTLOpen(t *testing.T) {
	id := loadTestIdentity(t)
	addr := hostAddr(11)
	rst := func(sport uint16) []byte {
		tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: 40000, Seq: 7, RST: true, Window: 0}
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Flags: layers.IPv4DontFragment, Protocol: layers.IPProtocolTCP, SrcIP: addr.AsSlice(), DstIP: kiPeer.AsSlice()}
		tcp.SetNetworkLayerForChecksum(ip)
		return serialize(t, &layers.Ethernet{SrcMAC: kiDevMAC, DstMAC: kiPeerMAC, EthernetType: layers.EthernetTypeIPv4}, ip, tcp)
	}
	for _, tt := range []struct {
		port uint16
		ttl  uint8
	}{{102, 0x5a}, {502, 0x5a}, {80, 0x5a}, {22, 0x78}, {8080, 0x78}} {
		_, out := runProg(t, id.objs.TcKident, rst(tt.port))
		if ip := decode(t, out).Layer(layers.LayerTypeIPv4).(*layers.IPv4); ip.TTL != tt.ttl {
			t.Errorf("reset from port %d: TTL %#x, want %#x", tt.port, ip.TTL, tt.ttl)
		}
	}
}

func udpAnswer(t testing.TB, src, dst netip.Addr, size int) []byte {
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	udp := &layers.UDP{SrcPort: 161, DstPort: 40000}
	udp.SetNetworkLayerForChecksum(ip)
	return serialize(t, &layers.Ethernet{SrcMAC: kiDevMAC, DstMAC: kiPeerMAC, EthernetType: layers.EthernetTypeIPv4}, ip, udp,
		gopacket.Payload(make([]byte, size-14-20-8)))
}

// TestIdentityAnswerBucket: per destination, the hosts' answers (UDP, ICMP, SYN-ACKs,
// resets) spend a byte bucket: exact over the test clock; other destinations, the
// sensor's own traffic and established TCP segments are not charged.
func TestIdentityAnswerBucket(t *testing.T) {
	id := loadTestIdentityWith(t, func(c *IdentityConfig) { c.AnswerRate, c.AnswerBurst = 1000, 3000 })
	clock := uint64(1e12)
	setClock := func() {
		if err := id.objs.ClockNs.Set(clock); err != nil {
			t.Fatal(err)
		}
	}
	setClock()
	s7, bmc := hostAddr(5), hostAddr(140)
	victim, other := netip.MustParseAddr("203.0.113.9"), netip.MustParseAddr("203.0.113.10")
	send := func(src, dst netip.Addr, size int) uint32 {
		ret, _ := runProg(t, id.objs.TcKident, udpAnswer(t, src, dst, size))
		return ret
	}
	// Three 1000-byte answers fill the burst; the fourth is dropped, whatever host sends it.
	for i := range 3 {
		if r := send([]netip.Addr{s7, bmc}[i%2], victim, 1000); r != tcOK {
			t.Fatalf("answer %d: %d", i, r)
		}
	}
	if r := send(bmc, victim, 1000); r != tcShot {
		t.Fatalf("answer over the burst: %d", r)
	}
	// Another destination has its own bucket; the sensor's own address is not charged.
	if r := send(s7, other, 1000); r != tcOK {
		t.Fatal("other destination dropped")
	}
	if r := send(netip.MustParseAddr("198.18.36.1"), victim, 1000); r != tcOK {
		t.Fatal("the sensor's own traffic dropped")
	}
	// 999 ms later: 999 bytes, not enough for 1000; at 1 s exactly: one answer.
	clock += 999_000_000
	setClock()
	if r := send(s7, victim, 1000); r != tcShot {
		t.Fatal("answer before the refill")
	}
	clock += 1_000_000
	setClock()
	if r := send(s7, victim, 1000); r != tcOK {
		t.Fatal("answer after the refill dropped")
	}
	// Established TCP data is not charged; a SYN-ACK is.
	data := linuxSYNACK(t, s7, 102, false)
	data[14+20+13] = 0x18 // PSH ACK
	if ret, _ := runProg(t, id.objs.TcKident, data); ret != tcOK {
		t.Fatal("TCP data dropped")
	}
	// SYN-ACKs to the peer spend its bucket: exactly 3000/len of them pass.
	sa := linuxSYNACK(t, s7, 102, false)
	passed := 0
	for range 100 {
		if ret, _ := runProg(t, id.objs.TcKident, sa); ret != tcOK {
			break
		}
		passed++
	}
	if passed != 3000/len(sa) {
		t.Fatalf("%d SYN-ACKs of %d bytes passed, want %d", passed, len(sa), 3000/len(sa))
	}
	// A long idle time refills to the burst only.
	clock += 3600 * 1e9
	setClock()
	for i := range 4 {
		want := uint32(tcOK)
		if i == 3 {
			want = tcShot
		}
		if r := send(s7, victim, 1000); r != want {
			t.Fatalf("after an hour, answer %d: %d", i, r)
		}
	}
	c, err := id.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if c["answer_drop"] != 4 || c["answer_pass"] != uint64(8+passed) || c["answer_drop_bytes"] != uint64(3*1000+len(sa)) {
		t.Fatalf("counters pass %d drop %d bytes %d", c["answer_pass"], c["answer_drop"], c["answer_drop_bytes"])
	}
	var sb strings.Builder
	if err := id.WriteStats(&sb); err != nil || !strings.Contains(sb.String(), "answer_drop") {
		t.Fatalf("stats: %v\n%s", err, sb.String())
	}
}

// TestAnnounceFrames: the probes and announcements decode with gopacket (checksums good)
// and carry what RFC 5227 and RFC 4861 ask.
func TestAnnounceFrames(t *testing.T) {
	mac := net.HardwareAddr{0x00, 0x1b, 0x1b, 1, 2, 3}
	a4, a6 := netip.MustParseAddr("198.18.72.5"), netip.MustParseAddr("fd00:72::5")
	for _, vlan := range []uint16{0, 72} {
		for _, probe := range []bool{true, false} {
			f, err := AnnounceFrame(mac, a4, vlan, probe)
			if err != nil {
				t.Fatal(err)
			}
			p := decode(t, f)
			a := p.Layer(layers.LayerTypeARP).(*layers.ARP)
			wantSPA := a4.AsSlice()
			if probe {
				wantSPA = []byte{0, 0, 0, 0}
			}
			if a.Operation != layers.ARPRequest || !bytes.Equal(a.SourceHwAddress, mac) || !bytes.Equal(a.SourceProtAddress, wantSPA) ||
				!bytes.Equal(a.DstProtAddress, a4.AsSlice()) || !bytes.Equal(p.LinkLayer().LinkFlow().Dst().Raw(), layers.EthernetBroadcast) {
				t.Errorf("ARP vlan %d probe %v: %+v", vlan, probe, a)
			}
			if q, _ := p.Layer(layers.LayerTypeDot1Q).(*layers.Dot1Q); (q != nil) != (vlan != 0) || (q != nil && q.VLANIdentifier != vlan) {
				t.Errorf("vlan %d: tag %v", vlan, q)
			}
			f, err = AnnounceFrame(mac, a6, vlan, probe)
			if err != nil {
				t.Fatal(err)
			}
			p = decode(t, f)
			ip := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
			if ip.HopLimit != 255 {
				t.Errorf("hop limit %d", ip.HopLimit)
			}
			if probe {
				ns := p.Layer(layers.LayerTypeICMPv6NeighborSolicitation).(*layers.ICMPv6NeighborSolicitation)
				if !ip.SrcIP.IsUnspecified() || ip.DstIP.String() != "ff02::1:ff00:5" || !ns.TargetAddress.Equal(a6.AsSlice()) || len(ns.Options) != 0 {
					t.Errorf("DAD %v > %v %+v", ip.SrcIP, ip.DstIP, ns)
				}
			} else {
				na := p.Layer(layers.LayerTypeICMPv6NeighborAdvertisement).(*layers.ICMPv6NeighborAdvertisement)
				if ip.DstIP.String() != "ff02::1" || !na.Override() || na.Solicited() || len(na.Options) != 1 || !bytes.Equal(na.Options[0].Data, mac) {
					t.Errorf("NA %v %+v", ip.DstIP, na)
				}
			}
		}
	}
}

// TestPinnedIdentityStats: with PinPath, `icsnare xdp stats` (OpenPinned in another
// process) prints the identity counters after the limiter's; Close unpins them.
func TestPinnedIdentityStats(t *testing.T) {
	mnt := t.TempDir()
	protocoltest.NeedRoot(t)
	if err := unix.Mount("bpf", mnt, "bpf", 0, "mode=0700"); err != nil {
		t.Fatalf("mount bpffs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(mnt, unix.MNT_DETACH) })
	dir := mnt + "/icsnare"
	l, err := Load(Config{PinPath: dir, MaxSources: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	id := loadTestIdentityWith(t, func(c *IdentityConfig) { c.PinPath = dir })
	for i := 1; i <= 3; i++ {
		runProg(t, id.objs.XdpKident, arpFrame(t, layers.ARPRequest, kiPeerMAC, kiPeer, hostAddr(i), nil))
	}
	runProg(t, id.objs.XdpKident, tcpFrame(t, kiPeerMAC, kiPeer, hostAddr(4), &layers.TCP{SrcPort: 1, DstPort: 102, SYN: true}, nil))
	r, err := OpenPinned(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	err = r.WriteStats(&sb, 5)
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("xdp stats:\n%s", sb.String())
	for _, want := range []string{"IDENTITY", "arp_reply          3", "mac_mismatch       1", "answer_drop", "dark hosts: 0"} {
		if !strings.Contains(sb.String(), want) {
			t.Errorf("stats lack %q", want)
		}
	}
	id.Close()
	r, err = OpenPinned(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	sb.Reset()
	if err := r.WriteStats(&sb, 5); err != nil || strings.Contains(sb.String(), "IDENTITY") {
		t.Errorf("identity still pinned after Close: %v\n%s", err, sb.String())
	}
}

// TestIdentityHostileVLAN: random tagged frames (TPIDs 8100 and 88a8, VLAN ids 72 and
// others, QinQ, random bytes in the tag and the payload, truncated anywhere) through
// both programs configured for VLAN 72 with an answer bucket. Every frame XDP transmits
// decodes with good checksums and keeps its tag; TC never breaks a good checksum.
func TestIdentityHostileVLAN(t *testing.T) {
	id := loadTestIdentityWith(t, func(c *IdentityConfig) { c.VLAN = 72; c.AnswerRate, c.AnswerBurst = 1e6, 1e6 })
	r := rand.New(rand.NewPCG(72, 4))
	goodTCP := func(frame []byte) bool {
		p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
		tcp, ok := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if !ok || p.ErrorLayer() != nil {
			return false
		}
		tcp.SetNetworkLayerForChecksum(p.NetworkLayer())
		err, res := tcp.VerifyChecksum()
		return err == nil && res.Valid
	}
	var txs, passes int
	for i := range 2000 {
		a := hostAddr(1 + r.IntN(120))
		mac, _ := id.MAC(a)
		var frame []byte
		switch i % 3 {
		case 0:
			frame = arpFrame(t, layers.ARPRequest, kiPeerMAC, kiPeer, a, nil)
		case 1:
			frame = tcpFrame(t, mac, kiPeer, a, &layers.TCP{SrcPort: 40000, DstPort: layers.TCPPort([]uint16{22, 102, 502}[r.IntN(3)]), Seq: r.Uint32(), SYN: true}, nil)
		case 2:
			frame = linuxSYNACK(t, a, 102, r.IntN(2) == 0)
		}
		vid := uint16(72)
		if r.IntN(4) == 0 {
			vid = uint16(r.IntN(4096))
		}
		frame = dot1q(t, frame, vid)
		switch r.IntN(6) {
		case 0:
			frame[12], frame[13] = 0x88, 0xa8 // 802.1ad outer tag
		case 1:
			frame = dot1q(t, frame, uint16(r.IntN(4096))) // QinQ
		case 2:
			frame[14+r.IntN(4)] = byte(r.Uint32()) // the tag's bytes
		}
		for range r.IntN(3) {
			frame[18+r.IntN(len(frame)-18)] = byte(r.Uint32())
		}
		if r.IntN(5) == 0 {
			frame = frame[:14+r.IntN(len(frame)-13)]
		}
		if i%3 == 2 {
			ret, out := runProg(t, id.objs.TcKident, frame)
			if ret != tcOK && ret != tcShot {
				t.Fatalf("tc returned %d", ret)
			}
			if goodTCP(frame) && !goodTCP(out[:len(frame)]) {
				t.Fatalf("TC broke a checksum:\nin  %x\nout %x", frame, out)
			}
			continue
		}
		ret, out := runProg(t, id.objs.XdpKident, frame)
		switch ret {
		case xdpTX:
			p := decode(t, out)
			if q, _ := p.Layer(layers.LayerTypeDot1Q).(*layers.Dot1Q); q == nil || q.VLANIdentifier != 72 {
				t.Fatalf("transmitted without VLAN 72: %x", out)
			}
			txs++
		case xdpPass:
			passes++
		case xdpDrop:
		default:
			t.Fatalf("XDP returned %d", ret)
		}
	}
	t.Logf("%d transmitted, %d passed", txs, passes)
	if txs == 0 || passes == 0 {
		t.Fatal("the mutations never reached an answer or a pass")
	}
}

// TestIdentityVLANND: a tagged neighbour solicitation for an IPv6 host is answered with a
// tagged advertisement carrying the host's MAC, checksummed.
func TestIdentityVLANND(t *testing.T) {
	id := loadTestIdentityWith(t, func(c *IdentityConfig) { c.VLAN = 72 })
	target := netip.MustParseAddr("fd00:37::72")
	want, _ := id.MAC(target)
	sn := netip.AddrFrom16([16]byte{0xff, 0x02, 11: 1, 12: 0xff, 13: 0, 14: 0, 15: 0x72})
	ip := &layers.IPv6{Version: 6, HopLimit: 255, NextHeader: layers.IPProtocolICMPv6, SrcIP: kiPeer6.AsSlice(), DstIP: sn.AsSlice()}
	ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborSolicitation, 0)}
	ic.SetNetworkLayerForChecksum(ip)
	sol := &layers.ICMPv6NeighborSolicitation{TargetAddress: target.AsSlice(), Options: layers.ICMPv6Options{{Type: layers.ICMPv6OptSourceAddress, Data: kiPeerMAC}}}
	frame := serialize(t, &layers.Ethernet{SrcMAC: kiPeerMAC, DstMAC: net.HardwareAddr{0x33, 0x33, 0xff, 0, 0, 0x72}, EthernetType: layers.EthernetTypeDot1Q},
		&layers.Dot1Q{VLANIdentifier: 72, Type: layers.EthernetTypeIPv6}, ip, ic, sol)
	ret, out := runProg(t, id.objs.XdpKident, frame)
	if ret != xdpTX {
		t.Fatalf("tagged NS: %d", ret)
	}
	p := decode(t, out)
	na, ok := p.Layer(layers.LayerTypeICMPv6NeighborAdvertisement).(*layers.ICMPv6NeighborAdvertisement)
	if q, _ := p.Layer(layers.LayerTypeDot1Q).(*layers.Dot1Q); q == nil || q.VLANIdentifier != 72 || !ok || !na.Solicited() ||
		len(na.Options) != 1 || !bytes.Equal(na.Options[0].Data, want) || len(out) != 18+40+32 {
		t.Fatalf("tagged NA: %v", p)
	}
}

// TestIdentityPromisc: with promisc "on" Attach puts the interface in promiscuous mode
// and Close restores it; an interface already promiscuous is left so.
func TestIdentityPromisc(t *testing.T) {
	n := newTestNet(t, 0)
	promisc := func() (on bool) {
		n.in(t, n.server, func() error {
			l, err := netlink.LinkByName(n.serverIf)
			if err == nil {
				on = l.Attrs().Promisc != 0
			}
			return err
		})
		return on
	}
	for _, already := range []bool{false, true} {
		if already {
			if out, err := runIP("-n", n.server, "link", "set", n.serverIf, "promisc", "on"); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
		}
		id := loadTestIdentityWith(t, func(c *IdentityConfig) { c.Promisc = "on" })
		n.in(t, n.server, func() error { _, err := id.Attach(n.serverIf, "auto"); return err })
		if !promisc() || id.Promisc() == already {
			t.Fatalf("already %v: promiscuous %v, set by Attach %v", already, promisc(), id.Promisc())
		}
		id.Close() // from another namespace: the handle Attach opened knows the interface's
		if promisc() != already {
			t.Fatalf("already %v: promiscuous %v after Close", already, promisc())
		}
	}
	if isPhysical(n.serverIf) {
		t.Error("a veth counted as a physical NIC")
	}
}

// TestIdentityBMCStack: the Supermicro BMC's ICMP messages carry no DF and incremental
// IP-IDs while its TCP has DF and IP-ID 0 (nmap U1 DF=N, IE DFI=N, II=I, TI=Z); nmap's T7
// (FIN, PSH, URG to a closed port) gets no reset, while the S7 still resets it in the stack.
func TestIdentityBMCStack(t *testing.T) {
	id := loadTestIdentityWith(t, func(c *IdentityConfig) { c.Prefixes[1].Profiles[0].Ports = []uint16{80, 443} })
	bmc := hostAddr(140)
	echo := func() *layers.IPv4 {
		icmp := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(0, 0), Id: 7, Seq: 1}
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Flags: layers.IPv4DontFragment, Protocol: layers.IPProtocolICMPv4, SrcIP: bmc.AsSlice(), DstIP: kiPeer.AsSlice()}
		_, out := runProg(t, id.objs.TcKident, serialize(t, &layers.Ethernet{SrcMAC: kiDevMAC, DstMAC: kiPeerMAC, EthernetType: layers.EthernetTypeIPv4}, ip, icmp, gopacket.Payload(make([]byte, 56))))
		return decode(t, out).Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	}
	a, b := echo(), echo()
	if a.Flags&layers.IPv4DontFragment != 0 || b.Id != a.Id+1 || a.TTL != 64 {
		t.Fatalf("BMC echo replies: flags %v, IDs %d %d, TTL %d", a.Flags, a.Id, b.Id, a.TTL)
	}
	_, out := runProg(t, id.objs.TcKident, linuxSYNACK(t, bmc, 80, true))
	if ip := decode(t, out).Layer(layers.LayerTypeIPv4).(*layers.IPv4); ip.Flags&layers.IPv4DontFragment == 0 || ip.Id != 0 {
		t.Fatalf("BMC SYN-ACK: flags %v ID %d", ip.Flags, ip.Id)
	}
	macB, _ := id.MAC(bmc)
	t7 := &layers.TCP{SrcPort: 40000, DstPort: 22, Seq: 5, FIN: true, PSH: true, URG: true, Window: 1024}
	if ret, _ := runProg(t, id.objs.XdpKident, tcpFrame(t, macB, kiPeer, bmc, t7, nil)); ret != xdpDrop {
		t.Errorf("BMC T7 to a closed port: XDP %d, want drop", ret)
	}
	t7.DstPort = 80 // an open port: the stack decides
	if ret, _ := runProg(t, id.objs.XdpKident, tcpFrame(t, macB, kiPeer, bmc, t7, nil)); ret != xdpPass {
		t.Errorf("BMC T7 to an open port: XDP %d, want pass", ret)
	}
	s7 := hostAddr(5)
	macS, _ := id.MAC(s7)
	t7.DstPort = 22
	if ret, _ := runProg(t, id.objs.XdpKident, tcpFrame(t, macS, kiPeer, s7, t7, nil)); ret != xdpPass {
		t.Errorf("S7 T7: XDP %d, want pass (its stack resets)", ret)
	}
}

// TestAnnounceHostsBounded: a sparse prefix (a /64 of which one address in 2^32 is a
// host) does not keep the announcer walking; a dense one gives the first hosts in order.
func TestAnnounceHostsBounded(t *testing.T) {
	id := loadTestIdentityWith(t, func(c *IdentityConfig) {
		c.Prefixes = []HostPrefix{
			{Prefix: netip.MustParsePrefix("fd00:72::/64"), OnLink: true, Live: 1,
				Profiles: []HostProfile{{Profile: "default", OUIs: c.Prefixes[0].Profiles[0].OUIs}}},
			{Prefix: kiBlocks, OnLink: true, Profiles: []HostProfile{{Profile: "default", OUIs: c.Prefixes[0].Profiles[0].OUIs}}},
		}
	})
	hs := id.announceHosts(5)
	var got []string
	for _, h := range hs {
		got = append(got, h.addr.String())
	}
	if strings.Join(got, " ") != "198.18.72.1 198.18.72.2 198.18.72.3 198.18.72.4 198.18.72.5" {
		t.Fatalf("announced %v", got)
	}
}
