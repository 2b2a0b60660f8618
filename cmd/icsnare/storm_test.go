package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"
	"golang.org/x/sys/unix"

	"github.com/icsnare/icsnare/internal/netnstest"
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// TestStorm runs the static binary in a namespace serving a /24 through AnyIP, with the XDP
// limiter on its veth, dropped to nobody under seccomp, and puts it through what a busy
// internet-facing sensor sees, all bounded in count and time:
//   - nmap -sV with the ICS scripts across the whole /24;
//   - a slowloris of 2,000 connections from 20 source addresses, trickling a byte a second;
//   - a flood of SNMP GETs from spoofed sources (raw IPv4 packets), which the XDP limiter
//     thins out in the kernel.
//
// Meanwhile and afterwards every protocol of sampled hosts answers real clients, and the
// sensor's descriptors, goroutines and memory come back within bounds.
func TestStorm(t *testing.T) {
	nmap := protocoltest.NeedTool(t, "nmap")
	mbpoll := protocoltest.NeedTool(t, "mbpoll")
	snmpget := protocoltest.NeedTool(t, "snmpget")
	curl := protocoltest.NeedTool(t, "curl")
	const served = "198.18.93.0/24"
	clientAddrs := []netip.Prefix{netip.MustParsePrefix("198.18.92.2/24")}
	// The slowloris sources sit in 20 different /24s (198.19.i.2), as 20 attackers would.
	for i := range 20 {
		clientAddrs = append(clientAddrs, netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 19, byte(i), 2}), 32))
	}
	sensorNS, clientNS := netnstest.NewPair(t, []netip.Prefix{netip.MustParsePrefix("198.18.92.1/24")}, clientAddrs)
	if err := clientNS.AddRoute(netip.MustParsePrefix(served), netip.MustParseAddr("198.18.92.1")); err != nil {
		t.Fatal(err)
	}
	if err := sensorNS.AddRoute(netip.MustParsePrefix("198.19.0.0/16"), netip.MustParseAddr("198.18.92.2")); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	events := filepath.Join(dir, "events.jsonl")
	conf := filepath.Join(dir, "icsnare.toml")
	os.WriteFile(conf, []byte(fmt.Sprintf(`
sensor_id = "storm"
[[hosts]]
addresses = [%q]
profile = "default"
[netcfg]
anyip = true
[xdp]
interface = %q
[[xdp.rules]]                   # a tighter global GET budget than the profile's, so the flood hits it
port = 161
class = "get"
per_source_per_minute = 600
global_per_minute = 3000
[metrics]
listen = "198.18.92.1:9108"
[events]
file = %q
[limits]
request_timeout = "5s"
`, served, sensorNS.Link, events)), 0o644)
	cmd, logs := startBinaryIn(t, sensorNS, "run", "--config", conf, "--user", "nobody")
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(logs.String(), "sensor running") {
		if time.Now().After(deadline) || cmd.ProcessState != nil {
			t.Fatalf("sensor did not start:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "XDP rate limiter attached") {
		t.Fatalf("XDP limiter not attached:\n%s", logs.String())
	}
	pid := cmd.Process.Pid
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

	sample := []int{1, 77, 128, 200, 254}
	host := func(last int) string { return fmt.Sprintf("198.18.93.%d", last) }
	// every protocol of the sampled hosts answers a real client
	checkAll := func(when string) {
		t.Helper()
		for _, last := range sample {
			h := host(last)
			if out, err := clientNS.Command(ctx, mbpoll, "-1", "-a", "1", "-r", "1", "-c", "2", "-t", "4", "-o", "3", h).CombinedOutput(); err != nil {
				t.Fatalf("%s: mbpoll %s: %v\n%s", when, h, err, out)
			}
			if out, err := clientNS.Command(ctx, snmpget, "-v2c", "-c", "public", "-r", "2", "-t", "2", h, "1.3.6.1.2.1.1.5.0").CombinedOutput(); err != nil || !strings.Contains(string(out), "STRING") {
				t.Fatalf("%s: snmpget %s: %v\n%s", when, h, err, out)
			}
			if out, err := clientNS.Command(ctx, curl, "-s", "-m", "5", "-o", "/dev/null", "-w", "%{http_code}", "http://"+h+"/").CombinedOutput(); err != nil || !regexp.MustCompile(`^[23]\d\d$`).Match(out) {
				t.Fatalf("%s: curl %s: %v %q", when, h, err, out)
			}
		}
		var targets []string
		for _, last := range sample {
			targets = append(targets, host(last))
		}
		out, err := clientNS.Command(ctx, nmap, append([]string{"-n", "-Pn", "-sT", "-p", "102", "--script", "s7-info"}, targets...)...).CombinedOutput()
		if err != nil || strings.Count(string(out), "Module:") != len(sample) {
			t.Fatalf("%s: nmap s7-info on %d hosts: %v\n%s", when, len(sample), err, out)
		}
	}
	checkAll("before the storm")
	base := sensorUsage(t, pid)
	base.goroutines = int(metricSum(fetchMetrics(t, clientNS, "http://198.18.92.1:9108/metrics"), "go_goroutines"))
	t.Logf("before: %+v", base)

	// 1. nmap -sV with the ICS scripts across the /24.
	start := time.Now()
	out, err := clientNS.Command(ctx, nmap, "-n", "-Pn", "-sT", "-T5", "--max-retries", "1", "--min-parallelism", "256",
		"-sV", "--version-intensity", "0", "-p", "80,102,502", "--script", "modbus-discover,s7-info", served).CombinedOutput()
	if err != nil {
		t.Fatalf("nmap -sV: %v\n%s", err, tail(out))
	}
	s7 := strings.Count(string(out), "Module:")
	modbus := strings.Count(string(out), "modbus-discover:")
	t.Logf("nmap -sV over the /24: %d s7-info and %d modbus-discover answers in %v", s7, modbus, time.Since(start).Round(time.Second))
	if s7 < 250 || modbus < 250 {
		t.Fatalf("nmap got %d s7-info and %d modbus-discover answers from 254 hosts\n%s", s7, modbus, tail(out))
	}

	// 2. Slowloris: 100 connections from each of 20 sources, trickling one byte a second.
	var wg sync.WaitGroup
	stopTrickle := make(chan struct{})
	var held, closedBySensor sync.Map
	ports := []int{80, 102, 502}
	for i := range 20 {
		src := clientAddrs[1+i].Addr()
		wg.Add(1)
		go func() {
			defer wg.Done()
			clientNS.Do(func() error {
				var conns []net.Conn
				d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: src.AsSlice()}}
				for j := range 100 {
					c, err := d.Dial("tcp4", net.JoinHostPort(host(1+(i*100+j)%254), strconv.Itoa(ports[j%3])))
					if err == nil {
						conns = append(conns, c)
						held.Store(c, true)
					}
				}
				go func() { // trickle from a goroutine of this namespace's sockets
					for n := 0; n < 30; n++ {
						select {
						case <-stopTrickle:
							return
						case <-time.After(time.Second):
						}
						for _, c := range conns {
							c.SetWriteDeadline(time.Now().Add(time.Second))
							if _, err := c.Write([]byte{'G'}); err != nil {
								closedBySensor.Store(c, true)
							}
						}
					}
				}()
				return nil
			})
		}()
	}
	wg.Wait()
	nheld := 0
	held.Range(func(_, _ any) bool { nheld++; return true })
	t.Logf("slowloris: %d connections open", nheld)
	if nheld < 1900 {
		t.Fatalf("slowloris opened only %d of 2,000 connections", nheld)
	}
	checkAll("during the slowloris")

	// 3. Spoofed-source SNMP flood through the XDP limiter.
	flooded := spoofedSNMPFlood(t, clientNS, 20000)
	checkAll("after the UDP flood")
	metrics := fetchMetrics(t, clientNS, "http://198.18.92.1:9108/metrics")
	xdpDrops := 0.0
	for _, line := range strings.Split(metrics, "\n") {
		if strings.HasPrefix(line, "icsnare_xdp_packets_total{") && strings.Contains(line, `action="drop"`) {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			xdpDrops += v
		}
	}
	t.Logf("UDP flood: %d spoofed GETs sent, %v dropped by XDP", flooded, xdpDrops)
	if xdpDrops < float64(flooded)/2 {
		var xdp []string
		for _, line := range strings.Split(metrics, "\n") {
			if strings.HasPrefix(line, "icsnare_xdp") || strings.Contains(line, "snmp") {
				xdp = append(xdp, line)
			}
		}
		t.Fatalf("the XDP limiter dropped %v of %d spoofed requests:\n%s\n%s", xdpDrops, flooded, strings.Join(xdp, "\n"), tail([]byte(metrics)))
	}

	// The trickling connections are cut off at the request deadline (5 s), long before
	// the idle timeout each byte would renew.
	time.Sleep(8 * time.Second)
	nclosed := 0
	closedBySensor.Range(func(_, _ any) bool { nclosed++; return true })
	close(stopTrickle)
	held.Range(func(c, _ any) bool { c.(net.Conn).Close(); return true })
	t.Logf("slowloris: %d of %d connections closed by the sensor", nclosed, nheld)
	if nclosed < nheld*9/10 {
		t.Fatalf("only %d of %d trickling connections were closed by the request deadline", nclosed, nheld)
	}
	checkAll("after the storm")

	// Descriptors, goroutines and memory come back within bounds.
	var after sensorUse
	for end := time.Now().Add(20 * time.Second); ; {
		after = sensorUsage(t, pid)
		after.goroutines = int(metricSum(fetchMetrics(t, clientNS, "http://198.18.92.1:9108/metrics"), "go_goroutines"))
		if after.fds <= base.fds+20 && after.goroutines <= base.goroutines+50 || time.Now().After(end) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("after: %+v", after)
	if after.goroutines > base.goroutines+50 {
		t.Errorf("%d goroutines after the storm, %d before", after.goroutines, base.goroutines)
	}
	if after.fds > base.fds+20 {
		t.Errorf("descriptors %d after the storm, %d before", after.fds, base.fds)
	}
	if after.rssKB > base.rssKB+512<<10 {
		t.Errorf("RSS %d kB after the storm, %d kB before", after.rssKB, base.rssKB)
	}
	if got := metricSum(fetchMetrics(t, clientNS, "http://198.18.92.1:9108/metrics"), "icsnare_handler_panics_total"); got != 0 {
		t.Errorf("%v handler panics", got)
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("errors in the sensor log:\n%s", tail([]byte(logs.String())))
	}
}

type sensorUse struct {
	fds, goroutines int
	rssKB           int64
}

func sensorUsage(t *testing.T, pid int) sensorUse {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	rss, _ := procStatus(pid, "VmRSS")
	return sensorUse{fds: len(ents), rssKB: rss}
}

func fetchMetrics(t *testing.T, ns *netnstest.NS, url string) string {
	t.Helper()
	// The transport dials from its own goroutine, so the dial must name the namespace.
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) { return ns.Dial(ctx, network, addr) }}}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("metrics: %s %v\n%s", resp.Status, err, body)
	}
	return string(body)
}

// metricSum adds the samples of the series whose name (and labels) start with prefix.
func metricSum(text, prefix string) float64 {
	var sum float64
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		rest := line[len(prefix):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '{' && !strings.HasSuffix(prefix, "}")) {
			continue
		}
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			sum += v
		}
	}
	return sum
}

func tail(b []byte) string {
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// spoofedSNMPFlood sends n SNMP v2c GETs to random hosts of the served /24 from random
// spoofed sources in 198.18.200.0/22, as raw IPv4 packets from inside ns, and returns how
// many it sent.
func spoofedSNMPFlood(t *testing.T, ns *netnstest.NS, n int) int {
	t.Helper()
	get := gosnmp.SnmpPacket{Version: gosnmp.Version2c, Community: "public", PDUType: gosnmp.GetRequest,
		Variables: []gosnmp.SnmpPDU{{Name: ".1.3.6.1.2.1.1.1.0", Type: gosnmp.Null}}, RequestID: 9}
	payload, err := get.MarshalMsg()
	if err != nil {
		t.Fatal(err)
	}
	sent := 0
	err = ns.Do(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		pkt := make([]byte, 28+len(payload))
		for i := 0; i < n; i++ {
			src := [4]byte{198, 18, 200 + byte(rand.IntN(4)), byte(rand.IntN(256))}
			dst := [4]byte{198, 18, 93, byte(1 + rand.IntN(254))}
			ipv4UDP(pkt, src, dst, uint16(1024+rand.IntN(60000)), 161, payload)
			if err := unix.Sendto(fd, pkt, 0, &unix.SockaddrInet4{Addr: dst}); err != nil {
				if err == syscall.ENOBUFS {
					time.Sleep(time.Millisecond)
					continue
				}
				return err
			}
			sent++
		}
		return nil
	})
	if err != nil {
		t.Fatalf("raw flood: %v", err)
	}
	return sent
}

// ipv4UDP writes an IPv4 header (checksummed) and a UDP header (checksum 0, allowed in
// IPv4) followed by payload into pkt.
func ipv4UDP(pkt []byte, src, dst [4]byte, sport, dport uint16, payload []byte) {
	total := 28 + len(payload)
	h := pkt[:20]
	h[0], h[1] = 0x45, 0
	binary.BigEndian.PutUint16(h[2:], uint16(total))
	binary.BigEndian.PutUint16(h[4:], uint16(rand.IntN(65536)))
	h[6], h[7], h[8], h[9] = 0, 0, 64, unix.IPPROTO_UDP
	h[10], h[11] = 0, 0
	copy(h[12:16], src[:])
	copy(h[16:20], dst[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(h[10:], ^uint16(sum))
	u := pkt[20:28]
	binary.BigEndian.PutUint16(u[0:], sport)
	binary.BigEndian.PutUint16(u[2:], dport)
	binary.BigEndian.PutUint16(u[4:], uint16(8+len(payload)))
	u[6], u[7] = 0, 0
	copy(pkt[28:], payload)
}
