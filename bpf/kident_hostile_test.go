package bpf

import (
	"math/rand/v2"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// TestIdentityHostileInput runs mutated frames through both programs: random option
// bytes in SYNs (lengths 0, 1, past the end, EOL in the middle), random ARP and neighbour
// solicitation fields, random truncations. Every frame the XDP program transmits must
// decode with good checksums; every SYN it passes with a good checksum must keep a good
// checksum; every SYN-ACK the TC program rewrites must keep good checksums.
func TestIdentityHostileInput(t *testing.T) {
	id := loadTestIdentity(t)
	r := rand.New(rand.NewPCG(37, 19))
	a := hostAddr(3)
	macA, _ := id.MAC(a)
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
	var txs, passes, rewritten int
	for i := range 3000 {
		var frame []byte
		switch i % 4 {
		case 0, 1: // a SYN with random options to a served or a closed port
			opts := make([]byte, 4*r.IntN(11))
			for j := range opts {
				switch r.IntN(6) {
				case 0:
					opts[j] = byte(r.IntN(9)) // a known kind
				case 1:
					opts[j] = 1
				default:
					opts[j] = byte(r.Uint32())
				}
			}
			port := []uint16{102, 502, 22}[r.IntN(3)]
			tcp := &layers.TCP{SrcPort: layers.TCPPort(1024 + r.IntN(60000)), DstPort: layers.TCPPort(port), Seq: r.Uint32(), SYN: true,
				FIN: r.IntN(4) == 0, ECE: r.IntN(2) == 0, CWR: r.IntN(2) == 0, Window: 1024}
			frame = tcpFrame(t, macA, kiPeer, a, tcp, nil)
			// Splice the raw options in (gopacket would normalise them).
			withOpts := append(append(append([]byte(nil), frame[:54]...), opts...), frame[54:]...)
			withOpts[14+2], withOpts[14+3] = byte((40+len(opts))>>8), byte(40+len(opts))
			withOpts[14+20+12] = byte((20+len(opts))/4) << 4
			frame = refix(t, withOpts)
		case 2: // ARP with random fields
			frame = arpFrame(t, layers.ARPRequest, kiPeerMAC, kiPeer, hostAddr(1+r.IntN(120)), nil)
			for range r.IntN(4) {
				frame[14+r.IntN(28)] = byte(r.Uint32())
			}
		case 3: // a Linux-like SYN-ACK from an S7 or BMC host, random options
			src := hostAddr(1 + r.IntN(120))
			if r.IntN(2) == 0 {
				src = hostAddr(129 + r.IntN(60))
			}
			frame = linuxSYNACK(t, src, 102, r.IntN(2) == 0)
			for range r.IntN(3) {
				frame[54+r.IntN(len(frame)-54)] = byte(r.Uint32())
			}
			frame = refix(t, frame)
			ret, out := runProg(t, id.objs.TcKident, frame)
			if ret != 0 {
				t.Fatalf("tc returned %d", ret)
			}
			if goodTCP(frame) && !goodTCP(out) {
				t.Fatalf("TC broke a checksum:\nin  %x\nout %x", frame, out)
			}
			rewritten++
			continue
		}
		if r.IntN(5) == 0 { // truncated (the test run needs an Ethernet header)
			frame = frame[:14+r.IntN(len(frame)-13)]
		}
		ret, out := runProg(t, id.objs.XdpKident, frame)
		switch ret {
		case xdpTX:
			decode(t, out)
			txs++
		case xdpPass:
			if len(frame) > 54 && frame[12] == 0x08 && frame[13] == 0 && goodTCP(frame) && !goodTCP(out) {
				t.Fatalf("XDP broke a checksum:\nin  %x\nout %x", frame, out)
			}
			passes++
		case xdpDrop:
		default:
			t.Fatalf("XDP returned %d", ret)
		}
	}
	t.Logf("%d transmitted, %d passed, %d SYN-ACKs rewritten", txs, passes, rewritten)
	if txs == 0 || passes == 0 {
		t.Fatal("the mutations never reached an answer or a pass")
	}
}

// refix recomputes the IPv4 header and TCP checksums of a frame (gopacket), so a mutated
// frame starts out valid.
func refix(t testing.TB, frame []byte) []byte {
	t.Helper()
	p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	ip, ok1 := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	_, ok2 := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if !ok1 || !ok2 {
		return frame
	}
	out := append([]byte(nil), frame...)
	ihl := int(ip.IHL) * 4
	out[14+10], out[14+11] = 0, 0
	c := ^fold16(sum16(out[14 : 14+ihl]))
	out[14+10], out[14+11] = byte(c>>8), byte(c)
	seg := out[14+ihl:]
	if len(seg) < 18 {
		return out
	}
	seg[16], seg[17] = 0, 0
	ph := make([]byte, 0, 12)
	ph = append(ph, ip.SrcIP.To4()...)
	ph = append(ph, ip.DstIP.To4()...)
	ph = append(ph, 0, 6, byte(len(seg)>>8), byte(len(seg)))
	c = ^fold16(sum16(ph) + sum16(seg))
	seg[16], seg[17] = byte(c>>8), byte(c)
	return out
}

func sum16(b []byte) uint32 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	return s
}

func fold16(s uint32) uint16 {
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}
