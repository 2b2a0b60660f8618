package sensor

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/icsnare/icsnare/internal/netnstest"
	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/protocoltest"
	"github.com/icsnare/icsnare/protocols/ratelimit"

	_ "github.com/icsnare/icsnare/protocols/snmp"
)

// snmpBurst sends n v2c GETs of sysName.0 from src to dst inside ns and returns how many
// were answered.
func snmpBurst(t *testing.T, ns *netnstest.NS, src, dst string, n int) int {
	t.Helper()
	answered := 0
	err := ns.Do(func() error {
		c, err := net.DialUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(src), 0)),
			net.UDPAddrFromAddrPort(netip.MustParseAddrPort(dst)))
		if err != nil {
			return err
		}
		defer c.Close()
		for i := 0; i < n; i++ {
			p := &gosnmp.SnmpPacket{Version: gosnmp.Version2c, Community: "public", PDUType: gosnmp.GetRequest,
				RequestID: uint32(i + 1), Variables: []gosnmp.SnmpPDU{{Name: ".1.3.6.1.2.1.1.5.0", Type: gosnmp.Null}}}
			b, err := p.MarshalMsg()
			if err != nil {
				return err
			}
			if _, err := c.Write(b); err != nil {
				return err
			}
		}
		buf := make([]byte, 2048)
		for {
			c.SetReadDeadline(time.Now().Add(700 * time.Millisecond))
			if _, err := c.Read(buf); err != nil {
				return nil
			}
			answered++
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return answered
}

// evasionProfile writes the default profile with no SNMP tarpit and an evasion limit of
// 20 GETs a minute per source and 30 overall.
func evasionProfile(t *testing.T) string {
	t.Helper()
	return protocoltest.ExportDefault(t, "snmp/snmp.xml", func(s string) string {
		out := strings.Replace(protocoltest.WithoutSNMPDelays(s), "<config>", `<config><entity name="evasion" command="get">20;30</entity>`, 1)
		if !strings.Contains(out, `command="get">20;30`) {
			t.Fatal("could not set the evasion limit in snmp.xml")
		}
		return out
	})
}

// TestXDPLimitsSNMPAgent runs the sensor with its SNMP agent in a namespace, the XDP
// limiter on the veth, and a profile whose evasion allows 20 GETs a minute per source and
// 30 overall: the answers the real agent sends match the limits.
func TestXDPLimitsSNMPAgent(t *testing.T) {
	sensorNS, clientNS := netnstest.NewPair(t,
		[]netip.Prefix{netip.MustParsePrefix("198.18.0.1/24")},
		[]netip.Prefix{netip.MustParsePrefix("198.18.0.2/24"), netip.MustParsePrefix("198.18.0.3/24"), netip.MustParsePrefix("198.18.0.4/24")})
	dir := evasionProfile(t)

	cfg := DefaultConfig()
	cfg.Hosts = []HostRule{{Addresses: []string{"198.18.0.1"}, Profile: dir}}
	cfg.Metrics.Listen = ""
	cfg.Privileges.User = ""
	cfg.XDP.Interface = sensorNS.Link
	s, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	events := &syncBuffer{}
	s.SetBus(NewBus(1024, NewJSONSink("test", events, nil, false)))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var teardown func()
	if err := sensorNS.Do(func() error {
		var err error
		if teardown, err = s.SetupNetwork(ctx); err != nil {
			return err
		}
		return s.Bind(ctx)
	}); err != nil {
		t.Fatal(err)
	}
	defer teardown()
	if s.xdp == nil {
		t.Fatal("XDP limiter not attached")
	}
	done := make(chan struct{})
	go func() { s.Run(ctx, nil); close(done) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	defer stop()

	// One source, 50 GETs: its per-source bucket (20) answers 20.
	a := snmpBurst(t, clientNS, "198.18.0.2", "198.18.0.1:161", 50)
	// A second source: the global bucket (30) has 10 left.
	b2 := snmpBurst(t, clientNS, "198.18.0.3", "198.18.0.1:161", 50)
	t.Logf("answered: source A %d of 50, source B %d of 50", a, b2)
	if a < 20 || a > 21 {
		t.Fatalf("source A got %d answers, want the per-source burst of 20 (+1 refill)", a)
	}
	if a+b2 < 30 || a+b2 > 31 {
		t.Fatalf("sources together got %d answers, want the global burst of 30 (+1 refill)", a+b2)
	}
	drops := 0.0
	mfs, _ := s.m.reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "icsnare_xdp_packets_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "action" && l.GetValue() == "drop" {
					drops += m.GetCounter().GetValue()
				}
			}
		}
	}
	if int(drops) != 100-(a+b2) {
		t.Fatalf("kernel dropped %v, want %d", drops, 100-(a+b2))
	}
	if got := counterValue(t, s, "icsnare_udp_packets_total"); int(got) != 2*(a+b2) {
		t.Fatalf("userspace saw %v datagrams in+out, want %d: the agent must not also limit what the kernel passed", got, 2*(a+b2))
	}
	time.Sleep(300 * time.Millisecond) // let the notification reader deliver
	stop()
	if !strings.Contains(events.String(), `"event_type":"xdp.limit_start","session_id":"","protocol":"xdp","transport":"udp","src_ip":"198.18.0.2"`) {
		t.Fatalf("no xdp.limit_start event for the limited source:\n%s", events.String())
	}
}

// TestXDPFallsBackToUserspace asks for XDP on an interface that does not exist: the
// sensor still starts and the SNMP agent enforces the same limits itself.
func TestXDPFallsBackToUserspace(t *testing.T) {
	dir := evasionProfile(t)
	r := startSensor(t, func(c *Config) {
		c.Hosts = []HostRule{{Addresses: []string{"127.66.0.0/24"}, Profile: dir}}
		c.XDP.Interface = "icsn-missing0"
	})
	if r.s.xdp != nil {
		t.Fatal("XDP attached to a missing interface")
	}
	port := 161 + r.port - 7
	answered := 0
	for _, src := range []string{"127.0.0.2", "127.0.0.3"} {
		c, err := net.DialUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(src), 0)),
			net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr("127.66.0.9"), uint16(port))))
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 50; i++ {
			p := &gosnmp.SnmpPacket{Version: gosnmp.Version2c, Community: "public", PDUType: gosnmp.GetRequest,
				RequestID: uint32(i + 1), Variables: []gosnmp.SnmpPDU{{Name: ".1.3.6.1.2.1.1.5.0", Type: gosnmp.Null}}}
			b, _ := p.MarshalMsg()
			c.Write(b)
		}
		buf := make([]byte, 2048)
		for {
			c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			if _, err := c.Read(buf); err != nil {
				break
			}
			answered++
		}
		c.Close()
	}
	if answered != 30 {
		t.Fatalf("userspace evasion answered %d of 100, want the global 30", answered)
	}
}

// toyProto is a UDP protocol registered only in this test. It declares a "who-is" class
// (BACnet-like patterns) and leaves the limits to the sensor, as a new protocol would.
type toyProto struct{}

const toyPort = 47808

func (toyProto) Name() string { return "xdptoy" }
func (toyProto) Configure(sec *profiles.Section, _ any) (protocols.Service, error) {
	return &toyService{got: map[string]int{}}, nil
}

type toyService struct {
	mu  sync.Mutex
	got map[string]int // source address -> datagrams served
}

func (*toyService) Endpoints() []protocols.Endpoint {
	return []protocols.Endpoint{{Transport: protocols.UDP, Port: toyPort}}
}

func (*toyService) RateLimits() []protocols.RateLimit {
	return []protocols.RateLimit{{Port: toyPort, Class: "who-is", PerSource: 2, Global: 3, Match: []protocols.Pattern{
		ratelimit.MustParsePattern("0:810b 4:01 5:00/f8 6:1008"),
		ratelimit.MustParsePattern("0:810b 4:01 5:20/f8 6:ffff 8:00 10:1008"),
	}}}
}

func (t *toyService) ServePacket(ctx context.Context, s *protocols.Session, req []byte, reply func([]byte)) {
	t.mu.Lock()
	t.got[s.Remote.Addr().String()]++
	t.mu.Unlock()
	reply(append([]byte("re:"), req...))
}

func (t *toyService) served() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, v := range t.got {
		n += v
	}
	return n
}

func init() { protocols.Register(toyProto{}) }

// toyProfile writes a profile that serves only the toy protocol.
func toyProfile(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "xdptoy"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{
		"template.xml":      `<core><template><entity name="unit">T</entity></template><databus><key_value_mappings></key_value_mappings></databus></core>`,
		"xdptoy/xdptoy.xml": `<xdptoy enabled="True"></xdptoy>`,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// udpBurst sends n copies of payload from src to dst inside ns and returns how many
// were answered (reading until 500 ms pass without an answer).
func udpBurst(t *testing.T, ns *netnstest.NS, src, dst string, payload []byte, n int) int {
	t.Helper()
	answered := 0
	err := ns.Do(func() error {
		c, err := net.DialUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(src), 0)),
			net.UDPAddrFromAddrPort(netip.MustParseAddrPort(dst)))
		if err != nil {
			return err
		}
		defer c.Close()
		for i := 0; i < n; i++ {
			if _, err := c.Write(payload); err != nil {
				return err
			}
		}
		buf := make([]byte, 2048)
		for answered <= n {
			c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			if _, err := c.Read(buf); err != nil {
				return nil
			}
			answered++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return answered
}

// TestXDPLimitsPatternClasses runs the toy protocol behind the sensor in a namespace,
// once with the XDP limiter on the veth and once with the userspace limiter, with two
// pattern classes on its port: "who-is" from the protocol's RateLimits (2 a minute per
// source, 3 overall) and "write" from [[xdp.rules]] (bursts of 20 per source and 30
// overall, refilled at 1 a minute, so nothing refills during the test). Both enforce
// exactly the same counts; unclassified requests are not limited. In "xdp-partial" a
// third class tests a byte beyond the program's window: the toy port's limits stay in
// userspace (same counts) while XDP still enforces another port's rule.
func TestXDPLimitsPatternClasses(t *testing.T) {
	for _, mode := range []string{"xdp", "userspace", "xdp-partial"} {
		t.Run(mode, func(t *testing.T) {
			sensorNS, clientNS := netnstest.NewPair(t,
				[]netip.Prefix{netip.MustParsePrefix("198.18.20.1/24")},
				[]netip.Prefix{netip.MustParsePrefix("198.18.20.2/24"), netip.MustParsePrefix("198.18.20.3/24"),
					netip.MustParsePrefix("198.18.20.4/24"), netip.MustParsePrefix("198.18.20.5/24")})
			cfg := DefaultConfig()
			cfg.Hosts = []HostRule{{Addresses: []string{"198.18.20.1"}, Profile: toyProfile(t)}}
			cfg.Metrics.Listen = ""
			cfg.Privileges.User = ""
			if mode != "userspace" {
				cfg.XDP.Interface = sensorNS.Link
			}
			cfg.XDP.Rules = []XDPRule{{Protocol: "xdptoy", Class: "write", Match: []string{"0:0002"},
				PerSourcePerMinute: 1, Burst: 20, GlobalPerMinute: 1, GlobalBurst: 30, Reserve: -1}}
			if mode == "xdp-partial" {
				cfg.XDP.Rules = append(cfg.XDP.Rules,
					XDPRule{Protocol: "xdptoy", Class: "deep", Match: []string{"40:ff"}, PerSourcePerMinute: 1},
					XDPRule{Port: 9, GlobalPerMinute: 60})
			}
			s, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				t.Fatal(err)
			}
			events := &syncBuffer{}
			s.SetBus(NewBus(1024, NewJSONSink("test", events, nil, false)))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var teardown func()
			if err := sensorNS.Do(func() error {
				var err error
				if teardown, err = s.SetupNetwork(ctx); err != nil {
					return err
				}
				return s.Bind(ctx)
			}); err != nil {
				t.Fatal(err)
			}
			defer teardown()
			if (s.xdp != nil) != (mode != "userspace") {
				t.Fatalf("XDP attached: %v", s.xdp != nil)
			}
			var svc *toyService
			for _, d := range s.profiles {
				svc = d.services[protocols.Endpoint{Transport: protocols.UDP, Port: toyPort}].svc.(*toyService)
			}
			done := make(chan struct{})
			go func() { s.Run(ctx, nil); close(done) }()
			var once sync.Once
			stop := func() { once.Do(func() { cancel(); <-done }) }
			defer stop()

			dst := fmt.Sprintf("198.18.20.1:%d", toyPort)
			whoIs := []byte{0x81, 0x0b, 0x00, 0x08, 0x01, 0x00, 0x10, 0x08}
			whoIsGlobal := []byte{0x81, 0x0b, 0x00, 0x0c, 0x01, 0x20, 0xff, 0xff, 0x00, 0xff, 0x10, 0x08}
			write := []byte{0x00, 0x02, 'f', 0, 'o', 'c', 't', 'e', 't', 0}
			other := []byte{0x00, 0x05, 0, 1, 'x', 0}
			steps := []struct {
				src     string
				payload []byte
				n, want int
			}{
				{"198.18.20.2", whoIs, 10, 2},       // per-source burst
				{"198.18.20.3", whoIsGlobal, 10, 1}, // the global bucket's last token
				{"198.18.20.4", whoIs, 10, 0},       // global bucket empty
				{"198.18.20.2", write, 25, 20},      // per-source burst of the config class
				{"198.18.20.3", write, 25, 10},      // its global burst
				{"198.18.20.4", other, 10, 10},      // the port's default class: unlimited
			}
			// Warm up from a fourth source with unlimited requests until the sensor
			// answers (a loaded machine may take a while to start serving).
			probes := 0
			for ; probes < 20; probes++ {
				if udpBurst(t, clientNS, "198.18.20.5", dst, other, 1) == 1 {
					probes++
					break
				}
			}
			sent, passed := 0, 0
			for i, st := range steps {
				got := udpBurst(t, clientNS, st.src, dst, st.payload, st.n)
				t.Logf("step %d: %s sent %d, answered %d", i, st.src, st.n, got)
				if got != st.want {
					t.Errorf("step %d: %s got %d of %d answered, want %d", i, st.src, got, st.n, st.want)
				}
				sent += st.n
				passed += st.want
			}
			if got := svc.served(); got != passed+probes {
				t.Errorf("the service served %d datagrams, want %d (and %d probes)", got-probes, passed, probes)
			}
			rejected := int(counterValue(t, s, "icsnare_connections_rejected_total"))
			if mode != "xdp" {
				if rejected != sent-passed {
					t.Errorf("userspace rejected %d, want %d", rejected, sent-passed)
				}
			}
			if mode == "xdp-partial" {
				rs, err := s.xdp.Rules()
				if err != nil || len(rs) != 1 || rs[0].Port != 9 || rs[0].Global != 60 {
					t.Errorf("kernel rules %+v, %v; want only port 9's", rs, err)
				}
			}
			if mode != "xdp" {
				return
			}
			if rejected != 0 {
				t.Errorf("userspace rejected %d of what the kernel passed", rejected)
			}
			cs, err := s.xdp.Counters()
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]uint64{}
			for _, c := range cs {
				if c.Packets > 0 {
					got[fmt.Sprintf("%d/%s/%s", c.Port, c.Class, c.Reason)] = c.Packets
				}
			}
			want := map[string]uint64{
				// C's requests find the global bucket empty: dropped before any per-source lookup.
				"47808/who-is/ok": 3, "47808/who-is/per_source": 8, "47808/who-is/global": 19,
				"47808/write/ok": 30, "47808/write/per_source": 5, "47808/write/global": 15,
				"47808//ok": uint64(10 + probes),
			}
			t.Logf("kernel counters: %v", got)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("kernel counters %v, want %v", got, want)
			}
			time.Sleep(300 * time.Millisecond) // let the notification reader deliver
			stop()
			if !strings.Contains(events.String(), `"event_type":"xdp.limit_start"`) || !strings.Contains(events.String(), `"class":"who-is"`) {
				t.Errorf("no xdp.limit_start event for the who-is class:\n%s", events.String())
			}
		})
	}
}
