package bpf

import (
	"net"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// Frame builders for the BPF_PROG_TEST_RUN tests, made with gopacket/layers.

var (
	macA = net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	macB = net.HardwareAddr{0x02, 0, 0, 0, 0, 2}
)

type frameOpt struct {
	vlans   []layers.EthernetType // outer to inner tag types (0x8100 / 0x88a8)
	ipOpts  []layers.IPv4Option
	flags   layers.IPv4Flag
	fragOff uint16
	proto   layers.IPProtocol // 0: UDP
	ext6    []byte            // raw IPv6 extension headers (first next-header in ext6Next)
	next6   layers.IPProtocol
	payload []byte
}

func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatalf("serialize: %v", err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// ethHead returns the Ethernet layer and any VLAN tags ending in inner type et.
func ethHead(o frameOpt, et layers.EthernetType) []gopacket.SerializableLayer {
	eth := &layers.Ethernet{SrcMAC: macA, DstMAC: macB, EthernetType: et}
	ls := []gopacket.SerializableLayer{eth}
	if len(o.vlans) == 0 {
		return ls
	}
	eth.EthernetType = o.vlans[0]
	for i := range o.vlans {
		next := et
		if i+1 < len(o.vlans) {
			next = o.vlans[i+1]
		}
		ls = append(ls, &layers.Dot1Q{VLANIdentifier: uint16(100 + i), Type: next})
	}
	return ls
}

func l4(t testing.TB, o frameOpt, net gopacket.NetworkLayer, dport uint16) []gopacket.SerializableLayer {
	payload := o.payload
	if payload == nil {
		payload = []byte("0123456789abcdef")
	}
	switch o.proto {
	case 0, layers.IPProtocolUDP:
		u := &layers.UDP{SrcPort: 40000, DstPort: layers.UDPPort(dport)}
		if err := u.SetNetworkLayerForChecksum(net); err != nil {
			t.Fatal(err)
		}
		return []gopacket.SerializableLayer{u, gopacket.Payload(payload)}
	case layers.IPProtocolTCP:
		tc := &layers.TCP{SrcPort: 40000, DstPort: layers.TCPPort(dport), SYN: true, Window: 1024}
		if err := tc.SetNetworkLayerForChecksum(net); err != nil {
			t.Fatal(err)
		}
		return []gopacket.SerializableLayer{tc}
	default:
		return []gopacket.SerializableLayer{gopacket.Payload(payload)}
	}
}

// udp4 builds an IPv4 frame (UDP unless o.proto says otherwise) from src to dport.
func udp4(t testing.TB, src string, dport uint16, o frameOpt) []byte {
	t.Helper()
	proto := o.proto
	if proto == 0 {
		proto = layers.IPProtocolUDP
	}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: proto, SrcIP: net.ParseIP(src).To4(), DstIP: net.IPv4(198, 18, 0, 2).To4(),
		Options: o.ipOpts, Flags: o.flags, FragOffset: o.fragOff}
	ls := append(ethHead(o, layers.EthernetTypeIPv4), ip)
	return serialize(t, append(ls, l4(t, o, ip, dport)...)...)
}

// udp6 builds an IPv6 frame; o.ext6 are raw extension headers, o.next6 the first
// next-header value when they are present.
func udp6(t testing.TB, src string, dport uint16, o frameOpt) []byte {
	t.Helper()
	ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP, SrcIP: net.ParseIP(src), DstIP: net.ParseIP("2001:db8::2")}
	if o.proto != 0 {
		ip.NextHeader = o.proto
	}
	tail := l4(t, o, ip, dport)
	if o.ext6 != nil {
		ip.NextHeader = o.next6
		tailBytes := serialize(t, tail...)
		tail = []gopacket.SerializableLayer{gopacket.Payload(append(append([]byte(nil), o.ext6...), tailBytes...))}
	}
	ls := append(ethHead(o, layers.EthernetTypeIPv6), ip)
	return serialize(t, append(ls, tail...)...)
}

// ext builds one IPv6 extension header of 8*(1+hdrLen) bytes.
func ext(next layers.IPProtocol, hdrLen uint8) []byte {
	b := make([]byte, 8*(int(hdrLen)+1))
	b[0] = byte(next)
	b[1] = hdrLen
	if len(b) > 2 {
		b[2] = 1 // PadN option filling the rest
		b[3] = byte(len(b) - 4)
	}
	return b
}

// fragHdr builds an IPv6 fragment header.
func fragHdr(next layers.IPProtocol, offset uint16, more bool) []byte {
	b := make([]byte, 8)
	b[0] = byte(next)
	v := offset << 3
	if more {
		v |= 1
	}
	b[2], b[3] = byte(v>>8), byte(v)
	b[7] = 42
	return b
}
