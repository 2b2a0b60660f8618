package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// The tests here own 127.40.0.0/16: every 127/8 address is local, so no route is needed.

// sensorProc is one run of the binary that the test stops itself (to restart it).
type sensorProc struct {
	cmd     *exec.Cmd
	log     *syncLog
	metrics string // host:port of /metrics
	done    chan error
}

// launch runs bin with args plus a metrics listener on a kernel-picked port of addr.
func launch(t *testing.T, bin, metricsAddr string, args ...string) *sensorProc {
	t.Helper()
	args = append(args, "--metrics", metricsAddr+":0", "--log-level", "info")
	p := &sensorProc{cmd: exec.Command(bin, args...), log: &syncLog{}, done: make(chan error, 1)}
	p.cmd.Stderr = p.log
	p.cmd.Stdout = io.Discard
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() { p.stop(t) })
	re := regexp.MustCompile(`url=http://([0-9.]+:[0-9]+)/metrics`)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(p.log.String()); m != nil {
			p.metrics = m[1]
			return p
		}
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("icsnare exited: %v\n%s", err, p.log.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("icsnare did not start:\n%s", p.log.String())
	return nil
}

// stop sends SIGTERM and waits for the exit (at most 5 s).
func (p *sensorProc) stop(t *testing.T) {
	t.Helper()
	if p.cmd.ProcessState != nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
		if err != nil {
			t.Errorf("icsnare exited with %v\n%s", err, p.log.String())
		}
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		t.Error("icsnare did not exit within 5 s of SIGTERM")
	}
}

// metric returns the value of one series (name with labels, as written) from /metrics.
func (p *sensorProc) metric(t *testing.T, series string) float64 {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + p.metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 4<<20))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("no series %s in /metrics", series)
	return 0
}

// snmpClient runs net-snmp against one emulated host.
type snmpClient struct {
	get, set, target string
}

func (c snmpClient) value(t *testing.T, oid string) string {
	t.Helper()
	out, err := protocoltest.Run(t, 20*time.Second, c.get, "-v2c", "-c", "public", "-On", "-Oqv", "-t", "2", "-r", "2", c.target, oid)
	if err != nil {
		t.Fatalf("snmpget %s: %v", oid, err)
	}
	return strings.TrimSpace(out)
}

const (
	oidSysUpTime   = ".1.3.6.1.2.1.1.3.0"
	oidSysLocation = ".1.3.6.1.2.1.1.6.0"
	oidEngineBoots = ".1.3.6.1.6.3.10.2.1.2.0"
)

// ticks reads sysUpTime printed with -Oqvt (hundredths of a second).
func (c snmpClient) ticks(t *testing.T) int64 {
	t.Helper()
	out, err := protocoltest.Run(t, 20*time.Second, c.get, "-v2c", "-c", "public", "-On", "-Oqvt", "-t", "2", "-r", "2", c.target, oidSysUpTime)
	if err != nil {
		t.Fatalf("snmpget sysUpTime: %v", err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
	if err != nil {
		t.Fatalf("sysUpTime %q: %v", out, err)
	}
	return n
}

// TestSNMPSetSurvivesEvictionAndRestart: an SNMP SET of sysLocation on one host of a /24
// is still there after 100,000 contacts with other hosts evicted it (max_hosts 1000), and
// after a SIGTERM and a restart of the binary on the same state directory; sysUpTime
// goes on from where it was; a restart configured as a reboot shows uptime near 0 and
// snmpEngineBoots + 1.
func TestSNMPSetSurvivesEvictionAndRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("100,000 host contacts")
	}
	snmpget := protocoltest.NeedTool(t, "snmpget")
	snmpset := protocoltest.NeedTool(t, "snmpset")
	bin := buildStatic(t)
	stateDir := t.TempDir()
	off := protocoltest.FreeOffset(t)
	cfgPath := t.TempDir() + "/icsnare.toml"
	cfg := fmt.Sprintf(`sensor_id = "state-e2e"
[[hosts]]
addresses = ["127.40.0.0/16"]
profile = "default"
[bind]
port_offset = %d
[limits]
max_hosts = 1000
[events]
file = ""
[privileges]
user = "root"
[state]
dir = %q
`, off, stateDir)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	start := func() *sensorProc { return launch(t, bin, "127.40.255.1", "run", "--config", cfgPath) }
	p := start()
	waitListening(t, fmt.Sprintf("127.40.1.7:%d", 502+off))
	c := snmpClient{get: snmpget, set: snmpset, target: fmt.Sprintf("udp:127.40.1.7:%d", 161+off)}
	const where = "Halle 4, Schrank 12"
	if _, err := protocoltest.Run(t, 20*time.Second, snmpset, "-v2c", "-c", "private", "-t", "2", "-r", "2", c.target,
		oidSysLocation, "s", where); err != nil {
		t.Fatalf("snmpset: %v", err)
	}
	if got := c.value(t, oidSysLocation); !strings.Contains(got, where) {
		t.Fatalf("sysLocation right after the SET: %q", got)
	}

	// 100,000 contacts with other hosts of the /16 (all 64,770 of its other host
	// addresses, then again from the start): a Modbus TCP connect and close each, from
	// eight dialers.
	touch := func(n int) {
		var addrs []string
		for i := 0; len(addrs) < n; i++ {
			a := uint32(i%65536) + 1
			hi, lo := byte(a>>8), byte(a)
			if hi == 1 || hi == 255 || lo == 0 || lo == 255 {
				continue // the target's /24, the test's own addresses, subnet edges (no hosts)
			}
			addrs = append(addrs, fmt.Sprintf("127.40.%d.%d:%d", hi, lo, 502+off))
		}
		var wg sync.WaitGroup
		var failed atomic.Int64
		const dialers = 8
		for w := range dialers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d := net.Dialer{Timeout: 5 * time.Second}
				for i := w; i < len(addrs); i += dialers {
					c, err := d.Dial("tcp", addrs[i])
					if err != nil {
						failed.Add(1)
						continue
					}
					c.(*net.TCPConn).SetLinger(0) // no TIME_WAIT left behind
					c.Close()
				}
			}()
		}
		wg.Wait()
		if f := failed.Load(); f > int64(n/100) {
			t.Fatalf("%d of %d connects failed", f, n)
		}
	}
	before := p.metric(t, "icsnare_hosts_created_total")
	touch(100_000)
	deadline := time.Now().Add(30 * time.Second)
	for p.metric(t, "icsnare_hosts_created_total")-before < 90_000 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	created := p.metric(t, "icsnare_hosts_created_total") - before
	evicted := p.metric(t, "icsnare_hosts_evicted_total")
	active := p.metric(t, "icsnare_hosts_active")
	t.Logf("after 100,000 contacts: %.0f hosts created, %.0f evicted, %.0f in memory", created, evicted, active)
	if created < 90_000 || evicted < 80_000 || active > 1000 {
		t.Fatalf("eviction did not happen as planned: created %.0f, evicted %.0f, active %.0f", created, evicted, active)
	}
	createdBefore := p.metric(t, "icsnare_hosts_created_total")
	if got := c.value(t, oidSysLocation); !strings.Contains(got, where) {
		t.Fatalf("sysLocation after eviction: %q", got)
	}
	if p.metric(t, "icsnare_hosts_created_total") == createdBefore {
		t.Fatal("the target host was still in memory: it was never evicted")
	}
	upBefore := c.ticks(t)
	boots := c.value(t, oidEngineBoots)
	if p.metric(t, "icsnare_state_writes_total") < 1 {
		t.Fatal("no state write committed")
	}
	p.stop(t)

	p2 := start()
	waitListening(t, fmt.Sprintf("127.40.1.7:%d", 502+off))
	if got := c.value(t, oidSysLocation); !strings.Contains(got, where) {
		t.Fatalf("sysLocation after a restart: %q\n%s", got, p2.log.String())
	}
	upAfter := c.ticks(t)
	t.Logf("sysUpTime %d before the restart, %d after", upBefore, upAfter)
	if upAfter < upBefore {
		t.Fatalf("sysUpTime ran backwards across the restart: %d, then %d", upBefore, upAfter)
	}
	if got := c.value(t, oidEngineBoots); got != boots {
		t.Fatalf("snmpEngineBoots %s after a restart that continues, was %s", got, boots)
	}
	p2.stop(t)

	// on_restart = "reboot": the host looks freshly rebooted, its write still there.
	if err := os.WriteFile(cfgPath, []byte(cfg+"on_restart = \"reboot\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	start()
	waitListening(t, fmt.Sprintf("127.40.1.7:%d", 502+off))
	n0, _ := strconv.Atoi(boots)
	if got := c.value(t, oidEngineBoots); got != strconv.Itoa(n0+1) {
		t.Fatalf("snmpEngineBoots %s after a simulated reboot, was %s", got, boots)
	}
	if up := c.ticks(t); up > 60*100 {
		t.Fatalf("sysUpTime %d ticks after a simulated reboot, want under a minute", up)
	}
	if got := c.value(t, oidSysLocation); !strings.Contains(got, where) {
		t.Fatalf("sysLocation after a simulated reboot: %q", got)
	}
	fi, err := os.Stat(stateDir + "/seed")
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("seed file: %v, mode %v", err, fi)
	}
}

// TestSubnetEdgesAreNotModbusHosts: mbpoll gets no Modbus answer from the network and
// broadcast addresses of a served /24, and answers from .1 and .254. As root on the
// wildcard the kernel's port filter refuses the edges before any handshake; a connection
// that does reach the sensor is rejected there as an unknown host.
func TestSubnetEdgesAreNotModbusHosts(t *testing.T) {
	mbpoll := protocoltest.NeedTool(t, "mbpoll")
	bin := buildStatic(t)
	off := protocoltest.FreeOffset(t)
	p := launch(t, bin, "127.40.255.1", "run", "--listen", "127.40.2.0/24", "--port-offset", strconv.Itoa(off),
		"--events", os.DevNull, "--user", "root", "--state", t.TempDir())
	waitListening(t, fmt.Sprintf("127.40.2.1:%d", 502+off))
	reached := 0
	for _, c := range []struct {
		last   int
		answer bool
	}{{0, false}, {255, false}, {1, true}, {254, true}} {
		out, err := protocoltest.Run(t, 20*time.Second, mbpoll, "-m", "tcp", "-a", "1", "-1", "-o", "2", "-p", strconv.Itoa(502+off),
			"-t", "4", "-r", "1", "-c", "2", fmt.Sprintf("127.40.2.%d", c.last))
		got := err == nil && strings.Contains(out, "[1]:")
		if got != c.answer {
			t.Errorf(".%d: Modbus answer %v, want %v (err %v)\n%s", c.last, got, c.answer, err, out)
		}
		if !c.answer && !strings.Contains(out, "Connection refused") {
			reached++ // accepted, then closed by the sensor
		}
	}
	if n := p.metric(t, `icsnare_connections_rejected_total{protocol="none",reason="unknown_host"}`); n < float64(reached) {
		t.Errorf("unknown_host rejections %v, want at least %d (edges the kernel did not refuse)", n, reached)
	}
}
