package sensor

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/icsnare/icsnare/internal/netnstest"

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
	return copyProfile(t, "snmp/snmp.xml", func(s string) string {
		var kept []string
		for _, line := range strings.Split(s, "\n") {
			if !strings.Contains(line, `name="tarpit"`) && !strings.Contains(line, `name="evasion"`) {
				kept = append(kept, line)
			}
		}
		out := strings.Replace(strings.Join(kept, "\n"), "<config>", `<config><entity name="evasion" command="get">20;30</entity>`, 1)
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
