package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/icsnare/icsnare/internal/netnstest"
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// startBinary builds icsnare and runs it with args; it returns the process and a reader
// of its stderr log. The process is stopped with SIGTERM at the end of the test.
func startBinary(t *testing.T, args ...string) (*exec.Cmd, *syncLog) {
	t.Helper()
	return startBinaryIn(t, nil, args...)
}

// buildStatic builds icsnare the way `make build` does (no cgo).
func buildStatic(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "icsnare")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// startBinaryIn is startBinary inside a network namespace (nil: this one).
func startBinaryIn(t *testing.T, ns *netnstest.NS, args ...string) (*exec.Cmd, *syncLog) {
	t.Helper()
	bin := buildStatic(t)
	if !slices.Contains(args, "--state") && len(args) > 0 && args[0] == "run" {
		args = append(args, "--state", t.TempDir()) // not the machine's /var/lib/icsnare
	}
	cmd := exec.Command(bin, args...)
	if ns != nil {
		cmd = ns.Command(context.Background(), bin, args...)
	}
	logs := &syncLog{}
	cmd.Stderr = logs
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			t.Error("icsnare did not exit within 5 s of SIGTERM")
		}
	})
	return cmd, logs
}

type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *syncLog) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *syncLog) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

func waitListening(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("nothing listening on %s", addr)
}

// readHolding sends one FC3 request and returns the first register.
func readHolding(addr string) (uint16, error) {
	// 4 s: a SYN the kernel dropped is sent again after 1 s and 3 s.
	c, err := net.DialTimeout("tcp", addr, 4*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(4 * time.Second))
	if _, err := c.Write([]byte{0, 7, 0, 0, 0, 6, 1, 3, 0, 0, 0, 1}); err != nil {
		return 0, err
	}
	resp := make([]byte, 11)
	if _, err := io.ReadFull(c, resp); err != nil {
		return 0, err
	}
	if resp[7] != 3 {
		return 0, fmt.Errorf("exception % x", resp)
	}
	return binary.BigEndian.Uint16(resp[9:]), nil
}

func procStatus(pid int, field string) (int64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			f := strings.Fields(v) // "123 kB", or "65534 65534 65534 65534" for Uid
			if len(f) == 0 {
				break
			}
			return strconv.ParseInt(f[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("%s not in /proc/%d/status", field, pid)
}

// TestFloodOfConnectionsLeavesOtherHostsAnswering opens 20,000 TCP connections to one
// emulated host of a running sensor while another host is polled: the per-host cap keeps
// the flooded host from starving the rest, and the sensor's memory stays bounded.
func TestFloodOfConnectionsLeavesOtherHostsAnswering(t *testing.T) {
	if testing.Short() {
		t.Skip("20,000 connections")
	}
	net24 := fmt.Sprintf("127.%d.%d", 100+rand.IntN(100), rand.IntN(256))
	off := protocoltest.FreeOffset(t)
	cmd, logs := startBinary(t, "run", "--listen", net24+".0/24", "--port-offset", strconv.Itoa(off),
		"--metrics", "off", "--events", os.DevNull, "--user", "root", "--log-level", "warn")
	victim := fmt.Sprintf("%s.10:%d", net24, 502+off)
	bystander := fmt.Sprintf("%s.20:%d", net24, 502+off)
	waitListening(t, victim)

	const total, parallel = 20000, 400
	var opened, refused, served atomic.Int64
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	floodDone := make(chan struct{})
	go func() {
		for i := 0; i < total; i++ {
			sem <- struct{}{}
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				defer func() { <-sem }()
				d := net.Dialer{Timeout: 3 * time.Second,
					LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, byte(1+i%250), byte(1+i/250%250))}}
				c, err := d.Dial("tcp", victim)
				if err != nil {
					refused.Add(1)
					return
				}
				opened.Add(1)
				defer c.Close()
				// Hold the connection until the sensor closes it, at most 2 s.
				c.SetReadDeadline(time.Now().Add(2 * time.Second))
				if _, err := c.Read(make([]byte, 1)); err != nil {
					if ne, ok := err.(net.Error); ok && ne.Timeout() {
						served.Add(1)
					}
				}
			}(i)
		}
		wg.Wait()
		close(floodDone)
	}()

	var polls, failures int
	var peakRSS int64
	for done := false; !done; {
		select {
		case <-floodDone:
			done = true
		case <-time.After(100 * time.Millisecond):
		}
		// A Modbus master retries a poll that timed out; so does the bystander, once (the
		// kernel has already retransmitted its SYN within the dial's timeout). On a starved
		// machine the accept loop may lag the flood for a moment; what must not happen is
		// a host that stays unreachable.
		if _, err := readHolding(bystander); err != nil {
			t.Logf("bystander poll failed during the flood, retrying once: %v", err)
			if _, err := readHolding(bystander); err != nil {
				failures++
				t.Logf("bystander poll failed again: %v", err)
			}
		}
		polls++
		if rss, err := procStatus(cmd.Process.Pid, "VmRSS"); err == nil && rss > peakRSS {
			peakRSS = rss
		}
	}
	hwm, _ := procStatus(cmd.Process.Pid, "VmHWM")
	t.Logf("flood: %d connections opened (%d still open at the client's 2 s timeout, the rest closed by the sensor at once), %d reset during connect; bystander polls %d, failed %d; sensor RSS peak %d KiB (VmHWM %d KiB)",
		opened.Load(), served.Load(), refused.Load(), polls, failures, peakRSS, hwm)
	if opened.Load()+refused.Load() != total {
		t.Fatalf("flood accounting: %d + %d != %d", opened.Load(), refused.Load(), total)
	}
	if failures > 0 {
		t.Fatalf("%d of %d polls of another host failed during the flood", failures, polls)
	}
	if hwm > 256*1024 {
		t.Fatalf("sensor peak RSS %d KiB", hwm)
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Fatalf("sensor logged errors:\n%s", logs.String())
	}
}

// TestRunServesAndStopsOnSIGTERM runs the binary with the default profile and checks it
// answers Modbus and exits cleanly on SIGTERM, flushing its events.
func TestRunServesAndStopsOnSIGTERM(t *testing.T) {
	protocoltest.NeedTool(t, "go")
	events := filepath.Join(t.TempDir(), "events.jsonl")
	addr := fmt.Sprintf("127.%d.%d.%d", 100+rand.IntN(100), rand.IntN(256), 1+rand.IntN(250))
	off := protocoltest.FreeOffset(t)
	cmd, _ := startBinary(t, "run", "--listen", addr, "--port-offset", strconv.Itoa(off), "--metrics", "off",
		"--events", events, "--user", "root")
	target := fmt.Sprintf("%s:%d", addr, 502+off)
	waitListening(t, target)
	if v, err := readHolding(target); err != nil || v != 1 {
		t.Fatalf("holding register 0 = %d, %v", v, err)
	}
	start := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v", err)
	}
	t.Logf("exited %s after SIGTERM", time.Since(start).Round(time.Millisecond))
	b, err := os.ReadFile(events)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"event_type":"modbus.request"`) || !strings.Contains(string(b), `"dst_ip":"`+addr+`"`) {
		t.Fatalf("events file lacks the request:\n%s", b)
	}
}

// TestSNMPThroughSensor runs net-snmp against two hosts of one prefix served by the binary:
// each host has its own identity, and a SET changes only the host it was sent to.
func TestSNMPThroughSensor(t *testing.T) {
	snmpget := protocoltest.NeedTool(t, "snmpget")
	snmpset := protocoltest.NeedTool(t, "snmpset")
	net24 := fmt.Sprintf("127.%d.%d", 100+rand.IntN(100), rand.IntN(256))
	off := protocoltest.FreeOffset(t)
	events := filepath.Join(t.TempDir(), "events.jsonl")
	startBinary(t, "run", "--listen", net24+".0/24", "--port-offset", strconv.Itoa(off),
		"--metrics", "off", "--events", events, "--user", "root")
	waitListening(t, fmt.Sprintf("%s.1:%d", net24, 502+off))
	get := func(host string, oids ...string) string {
		t.Helper()
		args := append([]string{"-v2c", "-c", "public", "-On", "-t", "2", "-r", "1", fmt.Sprintf("udp:%s.%s:%d", net24, host, 161+off)}, oids...)
		out, err := protocoltest.Run(t, 20*time.Second, snmpget, args...)
		if err != nil {
			t.Fatalf("snmpget: %v", err)
		}
		return out
	}
	a := get("7", ".1.3.6.1.2.1.1.1.0", ".1.3.6.1.2.1.1.5.0", ".1.3.6.1.2.1.1.6.0")
	b := get("8", ".1.3.6.1.2.1.1.1.0", ".1.3.6.1.2.1.1.5.0", ".1.3.6.1.2.1.1.6.0")
	if strings.Count(a, "\n") != 3 || !strings.Contains(a, "CPU315-2 PN/DP") {
		t.Fatalf("host .7 answered:\n%s", a)
	}
	if a == b {
		t.Fatalf("two hosts of the prefix answered identically:\n%s", a)
	}
	if _, err := protocoltest.Run(t, 20*time.Second, snmpset, "-v2c", "-c", "private", "-t", "2", "-r", "1",
		fmt.Sprintf("udp:%s.7:%d", net24, 161+off), ".1.3.6.1.2.1.1.6.0", "s", "Halle 4, Schrank 12"); err != nil {
		t.Fatalf("snmpset: %v", err)
	}
	if out := get("7", ".1.3.6.1.2.1.1.6.0"); !strings.Contains(out, "Halle 4, Schrank 12") {
		t.Fatalf("SET not visible on the host it was sent to:\n%s", out)
	}
	if out := get("8", ".1.3.6.1.2.1.1.6.0"); strings.Contains(out, "Halle 4") {
		t.Fatalf("SET leaked to another host:\n%s", out)
	}
	// The same host's web HMI shows the value the SNMP SET wrote.
	curl := protocoltest.NeedTool(t, "curl")
	page, err := protocoltest.Run(t, 20*time.Second, curl, "-sS", "-L", fmt.Sprintf("http://%s.7:%d/", net24, 80+off))
	if err != nil || !strings.Contains(page, "Halle 4, Schrank 12") {
		t.Fatalf("HTTP page of the host does not show the SNMP-set location (%v)", err)
	}
}

// TestAnyIPAsNobody runs the static binary in a namespace with --anyip: it adds the AnyIP
// route, serves the prefix as nobody, and removes the route at exit with the
// CAP_NET_ADMIN it kept.
func TestAnyIPAsNobody(t *testing.T) {
	ns := netnstest.New(t)
	off := protocoltest.FreeOffset(t)
	cmd, logs := startBinaryIn(t, ns, "run", "--listen", "198.19.9.0/24", "--anyip", "--user", "nobody",
		"--port-offset", strconv.Itoa(off), "--metrics", "off", "--events", os.DevNull)
	routes := func() string {
		out, _ := ns.Command(context.Background(), "ip", "route", "show", "table", "local").CombinedOutput()
		return string(out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "sensor running") {
		if time.Now().After(deadline) {
			t.Fatalf("sensor did not start:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(routes(), "local 198.19.9.0/24 dev lo") {
		t.Fatalf("AnyIP route missing:\n%s", routes())
	}
	if uid, err := procStatus(cmd.Process.Pid, "Uid"); err != nil || uid != 65534 {
		t.Fatalf("sensor uid %d (%v), want nobody", uid, err)
	}
	// Least privilege: no_new_privs, the seccomp filter, and a bounding set that holds only
	// CAP_NET_ADMIN (kept to remove the route at exit).
	for field, want := range map[string]int64{"NoNewPrivs": 1, "Seccomp": 2} {
		if got, err := procStatus(cmd.Process.Pid, field); err != nil || got != want {
			t.Fatalf("%s %d (%v), want %d", field, got, err, want)
		}
	}
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if !strings.Contains(string(status), "CapBnd:\t0000000000001000\n") {
		t.Fatalf("capability bounding set is not CAP_NET_ADMIN alone:\n%s", status)
	}
	var got uint16
	err := ns.Do(func() error {
		var err error
		got, err = readHolding(fmt.Sprintf("198.19.9.77:%d", 502+off))
		return err
	})
	if err != nil || got != 1 {
		t.Fatalf("Modbus through AnyIP as nobody: %d, %v", got, err)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	if r := routes(); strings.Contains(r, "198.19.9.0/24") {
		t.Fatalf("route left after exit:\n%s\n%s", r, logs.String())
	}
}
