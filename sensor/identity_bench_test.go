package sensor

import (
	"encoding/binary"
	"golang.org/x/sys/unix"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/profiles"
)

// Modbus's answer latency in a profile: the persona's timing model, or a fixed delay.
var (
	timingElement = regexp.MustCompile(`<timing\b[^>]*/>`)
	delayElement  = regexp.MustCompile(`<delay>[^<]*</delay>`)
)

// fastModbusProfile exports the default profile with Modbus's answer latency off, so a
// benchmark measures the path, not the latency model.
func fastModbusProfile(b testing.TB) string {
	b.Helper()
	p, err := profiles.Open(profiles.DefaultName)
	if err != nil {
		b.Fatal(err)
	}
	dir := filepath.Join(b.TempDir(), "s7fast")
	if err := p.Export(dir); err != nil {
		b.Fatal(err)
	}
	file := filepath.Join(dir, "modbus", "modbus.xml")
	x, err := os.ReadFile(file)
	if err != nil {
		b.Fatal(err)
	}
	// The persona's latency model (a <timing> element, or a fixed <delay>) would make this
	// a measure of the model: remove it.
	y := timingElement.ReplaceAllString(string(x), "")
	y = delayElement.ReplaceAllString(y, "<delay>0</delay>")
	if y == string(x) {
		b.Fatal("no <timing> or <delay> in modbus.xml")
	}
	if err := os.WriteFile(file, []byte(y), 0o644); err != nil {
		b.Fatal(err)
	}
	return dir
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// BenchmarkIdentityModbusFC3 reads 10 holding registers over one Modbus/TCP connection
// through the veth, with the identity programs (XDP generic on veth, TC egress rewriting
// every frame) and without them.
//
//	go test ./sensor -run '^$' -bench IdentityModbusFC3 -benchtime 20000x
func BenchmarkIdentityModbusFC3(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "plain"
		if on {
			name = "identity"
		}
		b.Run(name, func(b *testing.B) {
			s, c := newKiPair(b)
			dir := fastModbusProfile(b)
			sen, _ := kiSensorWith(b, s, func(cfg *Config) {
				cfg.Hosts = []HostRule{{Addresses: []string{"198.18.37.0/25"}, Profile: dir}}
				cfg.XDP.Identity.Enabled = on
				if !on {
					cfg.XDP.Interface = ""
				}
			})
			if on {
				sen.identityForTest(b)
			}
			var conn net.Conn
			c.do(b, func() error {
				var err error
				conn, err = net.DialTimeout("tcp4", "198.18.37.3:502", 3*time.Second)
				return err
			})
			defer conn.Close()
			req := []byte{0, 0, 0, 0, 0, 6, 1, 3, 0, 0, 0, 10}
			resp := make([]byte, 9+20)
			b.ResetTimer()
			start := time.Now()
			for i := range b.N {
				binary.BigEndian.PutUint16(req, uint16(i))
				if _, err := conn.Write(req); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(conn, resp); err != nil {
					b.Fatal(err)
				}
				if resp[7] != 3 || binary.BigEndian.Uint16(resp) != uint16(i) {
					b.Fatalf("response %x", resp)
				}
			}
			el := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/el.Seconds(), "req/s")
			b.Logf("%s: %d requests in %v, %.0f req/s, load average %s", name, b.N, el.Round(time.Millisecond), float64(b.N)/el.Seconds(), loadAvg())
		})
	}
}

// BenchmarkIdentityARP65k sends ARP requests for random addresses of a /16 (65534
// emulated hosts) from a packet socket in the client namespace for two seconds and
// reports the answers XDP sent per second (its arp_reply counter) against the requests
// sent. On veth the program runs in generic mode.
//
//	go test ./sensor -run '^$' -bench IdentityARP65k -benchtime 1x
func BenchmarkIdentityARP65k(b *testing.B) {
	s, c := newKiPair(b)
	s.ip(b, "addr", "add", "198.19.0.1/16", "dev", s.link)
	c.ip(b, "addr", "add", "198.19.255.250/16", "dev", c.link)
	sen, _ := kiSensorWith(b, s, func(cfg *Config) {
		cfg.Hosts = []HostRule{{Addresses: []string{"198.19.0.0/16"}, Profile: "default"}}
	})
	id := sen.identityForTest(b)
	var sent int
	var el time.Duration
	var before, after map[string]uint64
	b.ResetTimer()
	c.do(b, func() error {
		ifi, err := net.InterfaceByName(c.link)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		_ = unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1)
		to := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: ifi.Index, Halen: 6, Addr: [8]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}
		frames := make([][]byte, 4096)
		for i := range frames {
			f := make([]byte, 0, 60)
			f = append(f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
			f = append(f, ifi.HardwareAddr...)
			f = append(f, 0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1)
			f = append(f, ifi.HardwareAddr...)
			f = append(f, 198, 19, 255, 250, 0, 0, 0, 0, 0, 0)
			h := uint32(i)*2654435761 + 12345
			f = append(f, 198, 19, byte(h>>8), byte(h>>16)|1) // never .0 (the network address)
			f = append(f, make([]byte, 60-len(f))...)
			frames[i] = f
		}
		before, _ = id.Counters()
		start := time.Now()
		for time.Since(start) < 2*time.Second {
			for range 256 {
				if err := unix.Sendto(fd, frames[sent%len(frames)], 0, to); err == nil {
					sent++
				}
			}
		}
		el = time.Since(start)
		time.Sleep(200 * time.Millisecond)
		after, _ = id.Counters()
		return nil
	})
	b.StopTimer()
	answers := after["arp_reply"] - before["arp_reply"]
	b.ReportMetric(float64(answers)/el.Seconds(), "answers/s")
	b.ReportMetric(float64(sent)/el.Seconds(), "requests/s")
	b.Logf("65534 hosts: %d requests sent, %d answered by XDP in %v: %.0f answers/s; load average %s", sent, answers, el.Round(time.Millisecond), float64(answers)/el.Seconds(), loadAvg())
}
