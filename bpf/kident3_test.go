package bpf

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/icsnare/icsnare/profiles"
)

// TestIdentityPLCStacks: the stack shapes of the M340, CompactLogix and S7-1200
// personalities, frame by frame: the Modicon's resets from an open port carry its window
// and its ICMP errors quote zeroed checksums; the Logix stack's IP-IDs grow byte-swapped
// and its resets have no DF; the S7-1200 gives no reset to a bare ACK or FIN at a closed
// port.
func TestIdentityPLCStacks(t *testing.T) {
	schneider := profiles.Blocks([]profiles.OUI{{0x00, 0x80, 0xf4}})
	rockwell := profiles.Blocks([]profiles.OUI{{0x00, 0x00, 0xbc}})
	siemens, _ := profiles.VendorBlocks("siemens")
	id := loadTestIdentityWith(t, func(c *IdentityConfig) {
		c.Prefixes = []HostPrefix{
			{Prefix: kiPrefix, OnLink: true, Profiles: []HostProfile{{Profile: "m340", OUIs: schneider, Personality: kiPersona(t, "schneider-m340"), Ports: []uint16{21, 80, 502}}}},
			{Prefix: kiPrefix2, OnLink: true, Profiles: []HostProfile{{Profile: "compactlogix", OUIs: rockwell, Personality: kiPersona(t, "rockwell-logix"), Ports: []uint16{80, 44818}}}},
			{Prefix: kiMix, OnLink: true, Profiles: []HostProfile{{Profile: "s7-1200", OUIs: siemens, Personality: kiPersona(t, "siemens-s7-1200"), Ports: []uint16{80, 102}}}},
		}
	})
	eth := &layers.Ethernet{SrcMAC: kiDevMAC, DstMAC: kiPeerMAC, EthernetType: layers.EthernetTypeIPv4}
	// rst is Linux's reset from host src port sport (DF set, window 0).
	rst := func(src [4]byte, sport uint16) (*layers.IPv4, *layers.TCP) {
		tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: 40000, Seq: 7, RST: true}
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Flags: layers.IPv4DontFragment, Protocol: layers.IPProtocolTCP, SrcIP: src[:], DstIP: kiPeer.AsSlice()}
		tcp.SetNetworkLayerForChecksum(ip)
		_, out := runProg(t, id.objs.TcKident, serialize(t, eth, ip, tcp))
		p := decode(t, out) // checksums verified
		return p.Layer(layers.LayerTypeIPv4).(*layers.IPv4), p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	}
	m340 := hostAddr(5).As4()
	if _, tcp := rst(m340, 502); tcp.Window != 0x2000 {
		t.Errorf("M340 reset from open port 502: window %#x, want 0x2000 (nmap T4 W=2000)", tcp.Window)
	}
	if _, tcp := rst(m340, 23); tcp.Window != 0 {
		t.Errorf("M340 reset from closed port 23: window %#x, want 0", tcp.Window)
	}
	// Port unreachable: the quote's IP header checksum and UDP checksum are zero.
	ipIn := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: kiPeer.AsSlice(), DstIP: m340[:]}
	udpIn := &layers.UDP{SrcPort: 40000, DstPort: 36828}
	udpIn.SetNetworkLayerForChecksum(ipIn)
	inner := serialize(t, ipIn, udpIn, gopacket.Payload(bytes.Repeat([]byte{'C'}, 300)))
	ipu := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: m340[:], DstIP: kiPeer.AsSlice()}
	_, out := runProg(t, id.objs.TcKident, serialize(t, eth, ipu, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(3, 3)}, gopacket.Payload(inner)))
	p := decode(t, out) // the ICMP checksum over the changed quote is verified
	ic := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if q := ic.Payload; len(q) != 28 || q[10] != 0 || q[11] != 0 || q[26] != 0 || q[27] != 0 || !bytes.Equal(q[:8], inner[:8]) {
		t.Errorf("M340 port unreachable quote % x: want 28 bytes with the IP and UDP checksums zeroed", q)
	}

	// CompactLogix: IP-IDs 256 apart on the wire (the counter byte-swapped), no DF on
	// resets, DF on the SYN-ACK.
	clx := hostAddr(140)
	var ids []uint16
	for range 3 {
		_, out := runProg(t, id.objs.TcKident, linuxSYNACK(t, clx, 44818, false))
		ip := decode(t, out).Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if ip.Flags&layers.IPv4DontFragment == 0 {
			t.Errorf("CompactLogix SYN-ACK without DF")
		}
		ids = append(ids, ip.Id)
	}
	if ids[1]-ids[0] != 256 || ids[2]-ids[1] != 256 {
		t.Errorf("CompactLogix IP-IDs %v: want steps of 256 (nmap TI=BI)", ids)
	}
	if ip, _ := rst(clx.As4(), 44818); ip.Flags&layers.IPv4DontFragment != 0 {
		t.Errorf("CompactLogix reset with DF (nmap T4-T7 DF=N)")
	}

	// S7-1200: bare ACK and bare FIN to a closed port dropped, to an open port passed.
	s12 := netip.AddrFrom4([4]byte{198, 18, 38, 7})
	mac, _ := id.MAC(s12)
	for _, c := range []struct {
		name string
		tcp  *layers.TCP
		want uint32
	}{
		{"T6 ACK to closed 22", &layers.TCP{SrcPort: 40000, DstPort: 22, Seq: 5, Ack: 9, ACK: true, Window: 32768}, xdpDrop},
		{"T7 FIN to closed 22", &layers.TCP{SrcPort: 40000, DstPort: 22, Seq: 5, FIN: true, PSH: true, URG: true, Window: 65535}, xdpDrop},
		{"ACK to open 102", &layers.TCP{SrcPort: 40000, DstPort: 102, Seq: 5, Ack: 9, ACK: true, Window: 32768}, xdpPass},
		{"SYN to closed 22", &layers.TCP{SrcPort: 40000, DstPort: 22, Seq: 5, SYN: true, Window: 1024}, xdpTX},
	} {
		if ret, _ := runProg(t, id.objs.XdpKident, tcpFrame(t, mac, kiPeer, s12, c.tcp, nil)); ret != c.want {
			t.Errorf("S7-1200 %s: XDP %d, want %d", c.name, ret, c.want)
		}
	}
}
