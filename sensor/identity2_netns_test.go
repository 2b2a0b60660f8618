package sensor

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// newKi2Pair creates a sensor namespace and a client namespace ("ki2-<hex>-{s,c}")
// joined by a veth pair, with 198.18.72.1/24 + fd00:72::1/64 (sensor) and .250 + ::fa
// (client) on the veth ends, or, with vlan, on VLAN devices over them. The returned
// kiNS name the devices with the addresses; parent is the sensor's veth end. The client
// inserts VLAN tags in the frame (txvlan off), as a switch port delivers them, so generic
// XDP on the sensor sees them.
func newKi2Pair(t testing.TB, vlan int) (s, c kiNS, parent string) {
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
	parent = s.link
	for _, e := range []struct {
		ns  *kiNS
		arg []string
	}{{&s, []string{"tx", "off"}}, {&c, []string{"txvlan", "off"}}} {
		args := append([]string{"netns", "exec", e.ns.name, "ethtool", "-K", e.ns.link}, e.arg...)
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ethtool -K %s %v: %v: %s", e.ns.link, e.arg, err, out)
		}
	}
	for _, n := range []struct {
		ns   *kiNS
		a, b string
	}{{&s, "198.18.72.1/24", "fd00:72::1/64"}, {&c, "198.18.72.250/24", "fd00:72::fa/64"}} {
		n.ns.ip(t, "link", "set", "lo", "up")
		n.ns.ip(t, "link", "set", n.ns.link, "up")
		if vlan != 0 {
			v := n.ns.link + "." + strconv.Itoa(vlan)
			n.ns.ip(t, "link", "add", "link", n.ns.link, "name", v, "type", "vlan", "id", strconv.Itoa(vlan))
			n.ns.ip(t, "link", "set", v, "up")
			n.ns.link = v
		}
		n.ns.ip(t, "addr", "add", n.a, "dev", n.ns.link)
		n.ns.ip(t, "addr", "add", n.b, "dev", n.ns.link, "nodad")
	}
	return s, c, parent
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

// TestIdentityVLANAndAnnounce: the hosts' link is VLAN 72 over the veth. At start the
// hosts boot: an ARP probe for each of the first addresses, then a gratuitous ARP from
// each host's MAC, tagged; arping over the VLAN gets the host's MAC (XDP on tagged
// frames), a TCP handshake to the S7 completes with the persona's SYN-ACK (TC on the
// parent with the tag in the skb), and the kernel does not answer ARP on the link for
// emulated addresses (arp_ignore=1 while running, restored at exit).
func TestIdentityVLANAndAnnounce(t *testing.T) {
	protocoltest.NeedTool(t, "arping")
	protocoltest.NeedTool(t, "tshark")
	s, c, parent := newKi2Pair(t, 72)
	stop := kiCapture(t, c, "arp or tcp[13] & 0x12 == 0x12")
	sen, _ := ki2Sensor(t, s, parent, func(cfg *Config) {
		cfg.XDP.Identity.VLAN = 72
		cfg.XDP.Identity.Announce = true
		cfg.XDP.Identity.AnnounceMax = 4
		cfg.XDP.Identity.AnnounceRate = 200
	})
	id := sen.identityForTest(t)
	sysctl := func() string {
		var v string
		s.do(t, func() error {
			b, err := os.ReadFile("/proc/sys/net/ipv4/conf/" + s.link + "/arp_ignore")
			v = strings.TrimSpace(string(b))
			return err
		})
		return v
	}
	if v := sysctl(); v != "1" {
		t.Errorf("arp_ignore on %s: %s, want 1", s.link, v)
	}
	siemens, _ := profiles.VendorBlocks("siemens")
	for _, a := range []string{"198.18.72.10", "198.18.72.77"} {
		hw, out := arping(t, c, a)
		want, _ := id.MAC(netip.MustParseAddr(a))
		if hw == nil || hw.String() != want.String() {
			t.Fatalf("arping %s over VLAN 72: %s, want %s\n%s", a, hw, want, out)
		}
		in := false
		for _, b := range siemens {
			in = in || b.Contains(hw)
		}
		if !in {
			t.Errorf("%s: MAC %s not Siemens", a, hw)
		}
	}
	if err := kiDial(t, c, "198.18.72.10:102", 3*time.Second); err != nil {
		t.Fatalf("S7 over VLAN 72: %v", err)
	}
	// Wait for the announcements (4 probes, 1 s, 4 announcements at 200/s).
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, _ := id.Counters()
		if c["tc_mac"] >= 8 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	file := stop()
	out, err := exec.Command("tshark", "-r", file, "-Y", "arp.opcode==1 && arp.dst.proto_ipv4 != 198.18.72.250", "-T", "fields", "-E", "separator=;",
		"-e", "vlan.id", "-e", "eth.src", "-e", "arp.src.hw_mac", "-e", "arp.src.proto_ipv4", "-e", "arp.dst.proto_ipv4").Output()
	if err != nil {
		t.Fatalf("tshark -r: %v", err)
	}
	t.Logf("ARP requests seen by the client (vlan;eth src;sender MAC;sender;target):\n%s", out)
	probes, garps := map[string]bool{}, map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(l, ";")
		if len(f) != 5 {
			continue
		}
		want, ok := id.MAC(netip.MustParseAddr(f[4]))
		if !ok || f[1] != want.String() || f[2] != want.String() {
			t.Errorf("request for %s from %s/%s, want the host's MAC %s", f[4], f[1], f[2], want)
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
	synacks := synAcks(t, file, "198.18.72.10")
	s7, _ := profiles.LookupPersonality("siemens-s7-300")
	if len(synacks) != 1 || !strings.HasPrefix(synacks[0], strconv.Itoa(int(s7.TTLOpen))+";0;2048;2;") || !strings.HasSuffix(synacks[0], ";1;1") {
		t.Errorf("S7 SYN-ACK over VLAN 72: %v", synacks)
	}
	cs, _ := id.Counters()
	if cs["arp_reply"] < 2 || cs["mac_ok"] == 0 || cs["tc_synack"] == 0 {
		t.Errorf("counters %v", cs)
	}
}

// TestIdentityAnswerBucketNetns: with an answer bucket of 600 B/s and 1200 B per
// destination, a burst of SNMP requests from one address gets at most the bucket's bytes
// back (the rest is dropped in TC and counted), while a second address of the client
// still gets its answer. The bound holds whatever userspace does.
func TestIdentityAnswerBucketNetns(t *testing.T) {
	s, c, parent := newKi2Pair(t, 0)
	c.ip(t, "addr", "add", "198.18.72.251/24", "dev", c.link)
	sen, _ := ki2Sensor(t, s, parent, func(cfg *Config) {
		cfg.XDP.Identity.AnswerBytesPerSecond = 600
		cfg.XDP.Identity.AnswerBurst = 1200
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
	bound := 1200 + int(600*elapsed.Seconds()) + 1
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
