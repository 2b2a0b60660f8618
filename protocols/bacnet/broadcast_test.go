package bacnet_test

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/internal/netnstest"
	"github.com/icsnare/icsnare/sensor"
)

// globalWhoIs is a Who-Is to every network, as YABE and bacnet-js send it.
var globalWhoIs, _ = hex.DecodeString("810b000c0120ffff00ff1008")

// iAm decodes the device instance of an I-Am answer (BVLC, a two-octet NPDU, 10 00 c4…).
func iAm(t *testing.T, b []byte) uint32 {
	t.Helper()
	if len(b) < 12 || b[0] != 0x81 || b[1] != 0x0a || b[6] != 0x10 || b[7] != 0x00 || b[8] != 0xc4 {
		t.Fatalf("not a unicast I-Am: %x", b)
	}
	return binary.BigEndian.Uint32(b[9:]) & 0x3fffff
}

// collect reads answers until want have come and quiet passes without another, or wait
// passes without any.
func collect(c net.PacketConn, want int, quiet time.Duration) map[netip.Addr][]byte {
	got := map[netip.Addr][]byte{}
	buf := make([]byte, 2048)
	for n := 0; n <= 2*want+10; n++ {
		wait := 5 * time.Second
		if len(got) >= want {
			wait = quiet
		}
		c.SetReadDeadline(time.Now().Add(wait))
		k, from, err := c.ReadFrom(buf)
		if err != nil {
			break
		}
		a := from.(*net.UDPAddr).AddrPort()
		if a.Port() != 47808 {
			continue
		}
		if _, dup := got[a.Addr().Unmap()]; dup {
			got[netip.IPv4Unspecified()] = nil // counts duplicates as an extra answer
		}
		got[a.Addr().Unmap()] = append([]byte(nil), buf[:k]...)
	}
	return got
}

func metric(t *testing.T, s *sensor.Sensor, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := s.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// TestBroadcastWhoIsLoopback sends a global Who-Is to a served /24's broadcast address:
// every host answers once, from its own address, with its own device instance; with a cap
// on the fan-out, only that many answer and the metric says so.
func TestBroadcastWhoIsLoopback(t *testing.T) {
	for _, tc := range []struct {
		name string
		cap  int
		want int
	}{{"every host", 300, 254}, {"capped", 100, 100}} {
		t.Run(tc.name, func(t *testing.T) {
			r := startSensor(t, "testdata/controller", func(c *sensor.Config) { c.Limits.BroadcastMaxHosts = tc.cap })
			c, err := net.ListenPacket("udp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			to := &net.UDPAddr{IP: net.ParseIP(r.host(255)), Port: 47808}
			if _, err := c.WriteTo(globalWhoIs, to); err != nil {
				t.Fatal(err)
			}
			got := collect(c, tc.want, 500*time.Millisecond)
			if len(got) != tc.want {
				t.Fatalf("%d hosts answered, want %d", len(got), tc.want)
			}
			instances := map[uint32]bool{}
			prefix := netip.MustParsePrefix(r.net + ".0/24")
			for a, b := range got {
				if !prefix.Contains(a) || a == prefix.Addr() || a.As4()[3] == 255 {
					t.Fatalf("answer from %s", a)
				}
				instances[iAm(t, b)] = true
			}
			if len(instances) < tc.want-2 {
				t.Fatalf("%d answers carry only %d distinct device instances", tc.want, len(instances))
			}
			capped := metric(t, r.s, "icsnare_broadcast_capped_total", map[string]string{"reason": "hosts"})
			if tc.cap < 254 && capped != 1 {
				t.Fatalf("capped metric %v, want 1", capped)
			}
			if tc.cap >= 254 && capped != 0 {
				t.Fatalf("capped metric %v, want 0", capped)
			}
			// The same host answers a unicast Who-Is with the instance it broadcast.
			one := netip.MustParseAddr(r.host(10))
			if b, ok := got[one]; ok {
				if _, err := c.WriteTo(globalWhoIs, &net.UDPAddr{IP: one.AsSlice(), Port: 47808}); err != nil {
					t.Fatal(err)
				}
				again := collect(c, 1, 200*time.Millisecond)
				if len(again) != 1 || iAm(t, again[one]) != iAm(t, b) {
					t.Fatalf("unicast Who-Is to %s: %d answers", one, len(again))
				}
			}
		})
	}
}

// TestBroadcastWhoIsNetns sends a Who-Is from another network namespace to the broadcast
// address of a /24 made local with AnyIP: as many I-Ams as hosts, up to the fan-out cap, and
// the metric counts the cap.
func TestBroadcastWhoIsNetns(t *testing.T) {
	sensorNS, clientNS := netnstest.NewPair(t,
		[]netip.Prefix{netip.MustParsePrefix("198.18.51.1/30")},
		[]netip.Prefix{netip.MustParsePrefix("198.18.51.2/30")})
	if err := clientNS.AddRoute(netip.MustParsePrefix("198.18.50.0/24"), netip.MustParseAddr("198.18.51.1")); err != nil {
		t.Fatal(err)
	}
	var c net.PacketConn
	if err := clientNS.Do(func() error {
		var err error
		c, err = net.ListenPacket("udp4", "198.18.51.2:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, tc := range []struct{ cap, want int }{{300, 254}, {50, 50}} {
		func() {
			cfg := sensor.DefaultConfig()
			cfg.Hosts = []sensor.HostRule{{Addresses: []string{"198.18.50.0/24"}, Profile: "testdata/controller"}}
			cfg.Netcfg.AnyIP = true
			cfg.Metrics.Listen = ""
			cfg.Privileges.User = ""
			cfg.Events.File = ""
			cfg.Limits.BroadcastMaxHosts = tc.cap
			s, err := sensor.New(cfg, discardLog())
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var teardown func()
			err = sensorNS.Do(func() error {
				var err error
				if teardown, err = s.SetupNetwork(ctx); err != nil {
					return err
				}
				return s.Bind(ctx)
			})
			if err != nil {
				t.Fatal(err)
			}
			defer teardown()
			done := make(chan struct{})
			go func() { s.Run(ctx, nil); close(done) }()
			defer func() { cancel(); <-done }()

			if _, err := c.WriteTo(globalWhoIs, &net.UDPAddr{IP: net.ParseIP("198.18.50.255"), Port: 47808}); err != nil {
				t.Fatal(err)
			}
			got := collect(c, tc.want, 500*time.Millisecond)
			if len(got) != tc.want {
				t.Fatalf("cap %d: %d I-Ams through the veth, want %d", tc.cap, len(got), tc.want)
			}
			for a, b := range got {
				if !netip.MustParsePrefix("198.18.50.0/24").Contains(a) {
					t.Fatalf("answer from %s", a)
				}
				iAm(t, b)
			}
			capped := metric(t, s, "icsnare_broadcast_capped_total", map[string]string{"reason": "hosts"})
			if want := float64(map[bool]int{true: 1}[tc.cap < 254]); capped != want {
				t.Fatalf("cap %d: capped metric %v, want %v", tc.cap, capped, want)
			}
			t.Logf("a Who-Is to 198.18.50.255 from another namespace, fan-out cap %d: %d I-Ams, each from its own address; icsnare_broadcast_capped_total{reason=\"hosts\"} = %v", tc.cap, len(got), capped)
		}()
	}
}

// TestRateLimitThroughSensor: a profile's confirmed class limit is enforced by the sensor
// (in userspace here, no XDP program attached); discovery is a class of its own.
func TestRateLimitThroughSensor(t *testing.T) {
	dir := plantProfile(t, 0)
	file := filepath.Join(dir, "bacnet", "bacnet.xml")
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), "<device_info>", `<rate_limit class="confirmed">5;0</rate_limit><device_info>`, 1)
	if err := os.WriteFile(file, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	r := startSensor(t, dir, nil)
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	to := &net.UDPAddr{IP: net.ParseIP(r.host(20)), Port: 47808}
	rp, _ := hex.DecodeString("810a001101040005010c0c023fffff194d")
	answered := 0
	for range 8 {
		if _, err := c.WriteTo(rp, to); err != nil {
			t.Fatal(err)
		}
		// An answer on loopback comes within milliseconds; a dropped request gets none.
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		if _, _, err := c.ReadFrom(make([]byte, 1500)); err == nil {
			answered++
		}
	}
	if answered != 5 {
		t.Fatalf("%d of 8 ReadProperty answered, want 5", answered)
	}
	if _, err := c.WriteTo(globalWhoIs, to); err != nil {
		t.Fatal(err)
	}
	if got := collect(c, 1, 200*time.Millisecond); len(got) != 1 {
		t.Fatalf("Who-Is after the confirmed limit: %d answers", len(got))
	}
}
