package sensor

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gosnmp/gosnmp"
	"golang.org/x/sys/unix"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// newKi2Pair creates a sensor namespace and a client namespace ("ki2-<hex>-{s,c}")
// joined by a veth pair, with 198.18.72.1/24 + fd00:72::1/64 (sensor) and .250 + ::fa
// (client). Checksum offload is off on the sensor's end so captured frames carry
// complete checksums.
func newKi2Pair(t testing.TB) (s, c kiNS) {
	t.Helper()
	protocoltest.NeedRoot(t)
	protocoltest.NeedTool(t, "ip")
	protocoltest.NeedTool(t, "ethtool")
	b := make([]byte, 3)
	rand.Read(b)
	id := hex.EncodeToString(b)
	s = kiNS{name: "ki2-" + id + "-s", link: "ki2" + id + "s"}
	c = kiNS{name: "ki2-" + id + "-c", link: "ki2" + id + "c"}
	t.Cleanup(func() {
		for _, n := range []kiNS{s, c} {
			if out, err := exec.Command("ip", "netns", "del", n.name).CombinedOutput(); err != nil && !strings.Contains(string(out), "No such file") {
				t.Errorf("ip netns del %s: %v: %s", n.name, err, out)
			}
		}
	})
	for _, n := range []kiNS{s, c} {
		if out, err := exec.Command("ip", "netns", "add", n.name).CombinedOutput(); err != nil {
			t.Fatalf("ip netns add %s: %v: %s", n.name, err, out)
		}
	}
	s.ip(t, "link", "add", s.link, "type", "veth", "peer", "name", c.link, "netns", c.name)
	if out, err := exec.Command("ip", "netns", "exec", s.name, "ethtool", "-K", s.link, "tx", "off").CombinedOutput(); err != nil {
		t.Fatalf("ethtool -K %s tx off: %v: %s", s.link, err, out)
	}
	for _, n := range []struct {
		ns   kiNS
		a, b string
	}{{s, "198.18.72.1/24", "fd00:72::1/64"}, {c, "198.18.72.250/24", "fd00:72::fa/64"}} {
		n.ns.ip(t, "link", "set", "lo", "up")
		n.ns.ip(t, "link", "set", n.ns.link, "up")
		n.ns.ip(t, "addr", "add", n.a, "dev", n.ns.link)
		n.ns.ip(t, "addr", "add", n.b, "dev", n.ns.link, "nodad")
	}
	return s, c
}

// exchange sends frame from the client's packet socket and returns the frames that
// arrive within wait and satisfy match.
func exchange(t testing.TB, c kiNS, frame []byte, wait time.Duration, match func(gopacket.Packet) bool) []gopacket.Packet {
	t.Helper()
	var got []gopacket.Packet
	c.do(t, func() error {
		ifi, err := net.InterfaceByName(c.link)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
			return err
		}
		// The kernel takes the 802.1Q tag out of received frames into metadata; ask for it.
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
			return err
		}
		tv := unix.NsecToTimeval(int64(100 * time.Millisecond))
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return err
		}
		if frame != nil {
			if err := unix.Sendto(fd, frame, 0, &unix.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6}); err != nil {
				return err
			}
		}
		buf := make([]byte, 2048)
		oob := make([]byte, 256)
		for end := time.Now().Add(wait); time.Now().Before(end); {
			n, oobn, _, from, err := unix.Recvmsg(fd, buf, oob, 0)
			if err != nil {
				continue
			}
			if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
				continue
			}
			f := append([]byte(nil), buf[:n]...)
			if tci, ok := auxVLAN(oob[:oobn]); ok && n >= 14 {
				f = append(append(append([]byte(nil), f[:12]...), 0x81, 0, byte(tci>>8), byte(tci)), f[12:]...)
			}
			p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
			if match(p) {
				got = append(got, p)
			}
		}
		return nil
	})
	return got
}

// auxVLAN reads the VLAN tag from a packet socket's PACKET_AUXDATA control message.
func auxVLAN(oob []byte) (uint16, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0, false
	}
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_PACKET || m.Header.Type != unix.PACKET_AUXDATA || len(m.Data) < int(unsafe.Sizeof(unix.TpacketAuxdata{})) {
			continue
		}
		aux := (*unix.TpacketAuxdata)(unsafe.Pointer(&m.Data[0]))
		if aux.Status&unix.TP_STATUS_VLAN_VALID != 0 {
			return aux.Vlan_tci, true
		}
	}
	return 0, false
}

func serializeT(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// ki2Sensor runs the S7 profile on 198.18.72.0/25 with the identity programs on parent.
func ki2Sensor(t testing.TB, s kiNS, parent string, edit func(*Config)) (*Sensor, *syncBuffer) {
	t.Helper()
	return kiSensorWith(t, s, func(cfg *Config) {
		cfg.Hosts = []HostRule{{Addresses: []string{"198.18.72.0/25"}, Profile: "default"}}
		cfg.XDP.Interface = parent
		cfg.Seed = "ki2-test"
		if edit != nil {
			edit(cfg)
		}
	})
}

// TestIdentityVLANAndAnnounce: the hosts' link is VLAN 72 on the veth (this kernel has
// no 802.1Q devices, so the client's frames are tagged by hand and the sensor's stack
// never sees them; xdp.identity.link names the device with the subnet). At start the
// hosts boot: an ARP probe for each of the first addresses, then a gratuitous ARP from
// each host's MAC, both tagged 72. A tagged ARP request gets a tagged reply with the
// host's MAC, a tagged SYN to a closed port a tagged reset with the S7's closed-port TTL;
// an untagged request for the same host gets no answer at all: XDP leaves it, and the
// kernel, with arp_ignore=1 on the link while the sensor runs, does not answer for AnyIP
// addresses; a request tagged 73 neither.
func TestIdentityVLANAndAnnounce(t *testing.T) {
	protocoltest.NeedTool(t, "tshark")
	s, c := newKi2Pair(t)
	stop := kiCapture(t, c, "arp or (vlan and arp)")
	sen, _ := ki2Sensor(t, s, s.link, func(cfg *Config) {
		cfg.XDP.Identity.VLAN = 72
		cfg.XDP.Identity.Link = s.link
		cfg.XDP.Identity.Announce = true
		cfg.XDP.Identity.AnnounceMax = 4
		cfg.XDP.Identity.AnnounceRate = 200
	})
	id := sen.identityForTest(t)
	var arpIgnore string
	s.do(t, func() error {
		b, err := os.ReadFile("/proc/sys/net/ipv4/conf/" + s.link + "/arp_ignore")
		arpIgnore = strings.TrimSpace(string(b))
		return err
	})
	if arpIgnore != "1" {
		t.Errorf("arp_ignore on %s: %s, want 1", s.link, arpIgnore)
	}
	var cmac net.HardwareAddr
	c.do(t, func() error {
		ifi, err := net.InterfaceByName(c.link)
		cmac = ifi.HardwareAddr
		return err
	})
	client := netip.MustParseAddr("198.18.72.250")
	arpReq := func(vlan uint16, target netip.Addr) []byte {
		eth := &layers.Ethernet{SrcMAC: cmac, DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeARP}
		arp := &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: layers.ARPRequest, SourceHwAddress: cmac, SourceProtAddress: client.AsSlice(), DstHwAddress: make([]byte, 6),
			DstProtAddress: target.AsSlice()}
		if vlan == 0 {
			return serializeT(t, eth, arp)
		}
		eth.EthernetType = layers.EthernetTypeDot1Q
		return serializeT(t, eth, &layers.Dot1Q{VLANIdentifier: vlan, Type: layers.EthernetTypeARP}, arp)
	}
	replyFor := func(target netip.Addr) func(gopacket.Packet) bool {
		return func(p gopacket.Packet) bool {
			a, ok := p.Layer(layers.LayerTypeARP).(*layers.ARP)
			return ok && a.Operation == layers.ARPReply && bytes.Equal(a.SourceProtAddress, target.AsSlice())
		}
	}
	siemens, _ := profiles.VendorBlocks("siemens")
	for _, a := range []string{"198.18.72.10", "198.18.72.77"} {
		addr := netip.MustParseAddr(a)
		want, _ := id.MAC(addr)
		got := exchange(t, c, arpReq(72, addr), time.Second, replyFor(addr))
		if len(got) != 1 {
			t.Fatalf("tagged ARP for %s: %d replies", a, len(got))
		}
		q, _ := got[0].Layer(layers.LayerTypeDot1Q).(*layers.Dot1Q)
		arp := got[0].Layer(layers.LayerTypeARP).(*layers.ARP)
		in := false
		for _, b := range siemens {
			in = in || b.Contains(arp.SourceHwAddress)
		}
		if q == nil || q.VLANIdentifier != 72 || !bytes.Equal(arp.SourceHwAddress, want) || !bytes.Equal(arp.DstHwAddress, cmac) || !in {
			t.Fatalf("tagged ARP reply for %s: vlan %v MAC %s, want %s (Siemens)", a, q, net.HardwareAddr(arp.SourceHwAddress), want)
		}
		for _, vlan := range []uint16{0, 73} {
			if got := exchange(t, c, arpReq(vlan, addr), time.Second, replyFor(addr)); len(got) != 0 {
				t.Errorf("ARP for %s with vlan %d answered: %v", a, vlan, got[0])
			}
		}
	}
	// A tagged SYN to port 22 of the S7: a tagged reset from XDP with its closed-port TTL.
	host := netip.MustParseAddr("198.18.72.10")
	hmac, _ := id.MAC(host)
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: client.AsSlice(), DstIP: host.AsSlice()}
	syn := &layers.TCP{SrcPort: 40022, DstPort: 22, Seq: 99, SYN: true, Window: 1024}
	syn.SetNetworkLayerForChecksum(ip)
	frame := serializeT(t, &layers.Ethernet{SrcMAC: cmac, DstMAC: hmac, EthernetType: layers.EthernetTypeDot1Q},
		&layers.Dot1Q{VLANIdentifier: 72, Type: layers.EthernetTypeIPv4}, ip, syn)
	rst := exchange(t, c, frame, time.Second, func(p gopacket.Packet) bool {
		tcp, ok := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		return ok && tcp.RST && tcp.DstPort == 40022
	})
	s7, _ := profiles.LookupPersonality("siemens-s7-300")
	if len(rst) != 1 || rst[0].Layer(layers.LayerTypeDot1Q) == nil || rst[0].Layer(layers.LayerTypeIPv4).(*layers.IPv4).TTL != s7.TTL ||
		rst[0].Layer(layers.LayerTypeTCP).(*layers.TCP).Ack != 100 {
		t.Fatalf("tagged reset: %v", rst)
	}
	// The announcements (4 probes, 1 s, 4 announcements at 200/s) are done by now or soon.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if cs, _ := id.Counters(); cs["tc_mac"] >= 4 { // the announcements leave through TC
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	file := stop()
	out, err := exec.Command("tshark", "-r", file, "-Y", "arp.opcode==1 && eth.src != "+cmac.String(), "-T", "fields", "-E", "separator=;",
		"-e", "vlan.id", "-e", "eth.src", "-e", "arp.src.hw_mac", "-e", "arp.src.proto_ipv4", "-e", "arp.dst.proto_ipv4").Output()
	if err != nil {
		t.Fatalf("tshark -r: %v", err)
	}
	t.Logf("ARP requests from the sensor (vlan;eth src;sender MAC;sender;target):\n%s", out)
	probes, garps := map[string]bool{}, map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(l, ";")
		if len(f) != 5 {
			continue
		}
		want, ok := id.MAC(netip.MustParseAddr(f[4]))
		if !ok || f[0] != "72" || f[1] != want.String() || f[2] != want.String() {
			t.Errorf("request for %s from %s/%s vlan %s, want the host's MAC %s on vlan 72", f[4], f[1], f[2], f[0], want)
		}
		switch f[3] {
		case "0.0.0.0":
			probes[f[4]] = true
		case f[4]:
			garps[f[4]] = true
		}
	}
	// .1 is the sensor's own address: the first four hosts are .2 to .5.
	for _, a := range []string{"198.18.72.2", "198.18.72.3", "198.18.72.4", "198.18.72.5"} {
		if !probes[a] || !garps[a] {
			t.Errorf("%s: probe %v, gratuitous ARP %v", a, probes[a], garps[a])
		}
	}
	if len(probes) != 4 || len(garps) != 4 {
		t.Errorf("%d probes, %d announcements, want 4 each", len(probes), len(garps))
	}
	cs, _ := id.Counters()
	if cs["arp_reply"] != 2 || cs["syn_reset"] != 1 || cs["vlan_other"] < 2 {
		t.Errorf("counters %v", cs)
	}
}

// TestIdentityAnswerBucketNetns: with an answer bucket of 100 B/s and 400 B per
// destination, a burst of SNMP requests from one address gets at most the bucket's bytes
// back (the rest is dropped in TC and counted), while a second address of the client
// still gets its answer. The bound holds whatever userspace does.
func TestIdentityAnswerBucketNetns(t *testing.T) {
	s, c := newKi2Pair(t)
	c.ip(t, "addr", "add", "198.18.72.251/24", "dev", c.link)
	sen, _ := ki2Sensor(t, s, s.link, func(cfg *Config) {
		cfg.XDP.Identity.AnswerBytesPerSecond = 100
		cfg.XDP.Identity.AnswerBurst = 400
	})
	id := sen.identityForTest(t)
	req := &gosnmp.SnmpPacket{Version: gosnmp.Version2c, Community: "public", PDUType: gosnmp.GetRequest, RequestID: 1,
		Variables: []gosnmp.SnmpPDU{{Name: ".1.3.6.1.2.1.1.1.0", Type: gosnmp.Null}, {Name: ".1.3.6.1.2.1.1.5.0", Type: gosnmp.Null}}}
	msg, err := req.MarshalMsg()
	if err != nil {
		t.Fatal(err)
	}
	const requests = 30
	var got, answers int
	var elapsed time.Duration
	c.do(t, func() error {
		conn, err := net.DialUDP("udp4", &net.UDPAddr{IP: net.ParseIP("198.18.72.250")}, &net.UDPAddr{IP: net.ParseIP("198.18.72.20"), Port: 161})
		if err != nil {
			return err
		}
		defer conn.Close()
		start := time.Now()
		for range requests {
			if _, err := conn.Write(msg); err != nil {
				return err
			}
		}
		buf := make([]byte, 65536)
		for {
			conn.SetReadDeadline(time.Now().Add(1500 * time.Millisecond))
			n, err := conn.Read(buf)
			if err != nil {
				break
			}
			got += n + 14 + 20 + 8 // the frame the bucket charged
			answers++
		}
		elapsed = time.Since(start)
		return nil
	})
	cs, err := id.Counters()
	if err != nil {
		t.Fatal(err)
	}
	bound := 400 + int(100*elapsed.Seconds()) + 1
	t.Logf("%d requests: %d answers, %d bytes in %v (bound %d); answer_pass %d answer_drop %d (%d bytes)",
		requests, answers, got, elapsed, bound, cs["answer_pass"], cs["answer_drop"], cs["answer_drop_bytes"])
	if answers == 0 || got > bound {
		t.Fatalf("%d answers, %d bytes, bound %d", answers, got, bound)
	}
	if cs["answer_drop"] == 0 || int(cs["answer_drop"])+answers > requests {
		t.Fatalf("answer_drop %d with %d answers to %d requests", cs["answer_drop"], answers, requests)
	}
	// Another destination has its own bucket.
	c.do(t, func() error {
		g := &gosnmp.GoSNMP{Target: "198.18.72.20", Port: 161, Community: "public", Version: gosnmp.Version2c, Timeout: 2 * time.Second,
			Retries: 0, LocalAddr: "198.18.72.251:0"}
		if err := g.Connect(); err != nil {
			return err
		}
		defer g.Conn.Close()
		_, err := g.Get([]string{".1.3.6.1.2.1.1.5.0"})
		return err
	})
}

// TestIdentityAnnounceConflict: a machine on the link owns 198.18.72.3. The boot probe
// for it gets the machine's answer, so the host goes dark (an xdp.host_dark event) and is
// not announced; the others are.
func TestIdentityAnnounceConflict(t *testing.T) {
	protocoltest.NeedTool(t, "tshark")
	s, c := newKi2Pair(t)
	c.ip(t, "addr", "add", "198.18.72.3/24", "dev", c.link)
	stop := kiCapture(t, c, "arp")
	sen, events := ki2Sensor(t, s, s.link, func(cfg *Config) {
		cfg.XDP.Identity.Announce = true
		cfg.XDP.Identity.AnnounceMax = 4
		cfg.XDP.Identity.AnnounceRate = 200
	})
	id := sen.identityForTest(t)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if cs, _ := id.Counters(); cs["tc_mac"] >= 3 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	file := stop()
	out, err := exec.Command("tshark", "-r", file, "-Y", "arp.opcode==1 && arp.src.proto_ipv4 == arp.dst.proto_ipv4", "-T", "fields",
		"-e", "arp.dst.proto_ipv4").Output()
	if err != nil {
		t.Fatalf("tshark -r: %v", err)
	}
	got := strings.Fields(string(out))
	t.Logf("gratuitous ARPs: %v", got)
	if strings.Join(got, " ") != "198.18.72.2 198.18.72.4 198.18.72.5" {
		t.Errorf("announced %v, want .2 .4 .5 (.3 belongs to the client)", got)
	}
	dark, err := id.Dark()
	if err != nil || len(dark) != 1 || dark[0].Addr != netip.MustParseAddr("198.18.72.3") {
		t.Fatalf("dark hosts %v %v", dark, err)
	}
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(events.String(), `"xdp.host_dark"`) && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(events.String(), `"xdp.host_dark"`) {
		t.Errorf("no xdp.host_dark event: %s", events.String())
	}
}
