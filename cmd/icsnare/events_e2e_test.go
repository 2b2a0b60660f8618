package main

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// evAddr is a loopback address of this file's tests (127.74.0.0/16).
func evAddr() string {
	return fmt.Sprintf("127.74.%d.%d", rand.IntN(256), 1+rand.IntN(250))
}

// modbusRequests sends n FC3 requests over one connection and reads every answer.
func modbusRequests(t *testing.T, target string, n int) {
	t.Helper()
	modbusReads(t, target, n, 0)
}

// modbusReads sends n FC3 requests for register addr over one connection and reads every
// answer.
func modbusReads(t *testing.T, target string, n int, addr uint16) {
	t.Helper()
	c, err := net.DialTimeout("tcp", target, 4*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := []byte{0, 0, 0, 0, 0, 6, 1, 3, 0, 0, 0, 1}
	binary.BigEndian.PutUint16(req[8:], addr)
	resp := make([]byte, 11)
	for i := range n {
		binary.BigEndian.PutUint16(req, uint16(i))
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(req); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if _, err := io.ReadFull(c, resp); err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
	}
}

// writeConfig writes a TOML configuration for a test run.
func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "icsnare.toml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestStalledStdoutShutdownWithinBudget: the sensor's stdout is a pipe nobody reads, so
// its events sink blocks for ever; SIGTERM still ends the sensor within the handlers'
// grace (1.2 s) plus events.shutdown_budget, and the log names what the sink lost.
func TestStalledStdoutShutdownWithinBudget(t *testing.T) {
	protocoltest.NeedTool(t, "go")
	bin := buildStatic(t)
	addr, off := evAddr(), protocoltest.FreeOffset(t)
	cfg := writeConfig(t, "[events]\nfile = \"-\"\nshutdown_budget = \"500ms\"\nbuffer = 1024\nper_session = 0\n")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cmd := exec.Command(bin, "run", "--config", cfg, "--listen", addr, "--port-offset", strconv.Itoa(off),
		"--metrics", "off", "--user", "root", "--state", t.TempDir(), "--timing=false")
	logs := &syncLog{}
	cmd.Stdout, cmd.Stderr = w, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer cmd.Process.Kill() // a no-op once it exited
	target := fmt.Sprintf("%s:%d", addr, 502+off)
	waitListening(t, target)
	// About 3000 events of some 450 bytes: far more than the pipe (64 KiB) and the sink's
	// buffer hold, so the sink is blocked in write(2) with events queued behind it.
	modbusRequests(t, target, 3000)
	start := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		took := time.Since(start)
		t.Logf("exited %v after SIGTERM in %s", err, took.Round(time.Millisecond))
		if err != nil {
			t.Errorf("exit: %v", err)
		}
	case <-time.After(1200*time.Millisecond + 500*time.Millisecond + 3*time.Second):
		t.Fatalf("still running %s after SIGTERM with a stalled stdout\n%s", time.Since(start), logs)
	}
	log := logs.String()
	t.Logf("shutdown report: %s", grepLines(log, "events:"))
	if !strings.Contains(log, "abandoned") || !strings.Contains(log, "sink=json_stdout") || !strings.Contains(log, "dropped_shutdown=") {
		t.Fatalf("the log does not report the stalled sink's losses:\n%s", log)
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// startSensor runs the built binary with a configuration; it returns the process (stopped
// with SIGTERM at the end of the test), its log and the Modbus target.
func startSensor(t *testing.T, bin, addr, config string, extra ...string) (*exec.Cmd, *syncLog, string) {
	t.Helper()
	off := protocoltest.FreeOffset(t)
	args := append([]string{"run", "--config", config, "--listen", addr, "--port-offset", strconv.Itoa(off),
		"--user", "root", "--timing=false"}, extra...)
	if !slices.Contains(args, "--state") {
		args = append(args, "--state", t.TempDir())
	}
	cmd := exec.Command(bin, args...)
	logs := &syncLog{}
	cmd.Stdout, cmd.Stderr = io.Discard, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	target := fmt.Sprintf("%s:%d", addr, 502+off)
	waitListening(t, target)
	return cmd, logs, target
}

// stopSensor sends SIGTERM and waits for a clean exit.
func stopSensor(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v", err)
	}
}

// eventLines reads a JSON-lines events file: every line must be a JSON object; it returns
// them and how many are modbus.request events.
func eventLines(t *testing.T, path string) (lines, requests int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for l := range strings.SplitSeq(strings.TrimSuffix(string(b), "\n"), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("%s: a broken line: %v\n%q", path, err, l)
		}
		lines++
		if m["event_type"] == "modbus.request" {
			requests++
		}
	}
	return lines, requests
}

// waitFor polls cond until it holds or 15 s passed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if !poll(cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
}

// poll reports whether cond held within 15 s.
func poll(cond func() bool) bool {
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

// TestReopenAfterMove: logrotate's way: the events file is moved away, the sensor is told
// to reopen (by `icsnare reopen`, then by a plain SIGHUP); new events land in a new file and
// none are lost: the requests sent equal the request events in all the files.
func TestReopenAfterMove(t *testing.T) {
	protocoltest.NeedTool(t, "go")
	bin := buildStatic(t)
	dir, state := t.TempDir(), t.TempDir()
	events := filepath.Join(dir, "events.jsonl")
	cfg := writeConfig(t, fmt.Sprintf("[events]\nfile = %q\nper_session = 0\n[metrics]\nlisten = \"\"\n", events))
	cmd, logs, target := startSensor(t, bin, evAddr(), cfg, "--state", state)
	sent := 0
	for i, moved := range []string{"events.1", "events.2"} {
		modbusRequests(t, target, 300)
		sent += 300
		if err := os.Rename(events, filepath.Join(dir, moved)); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			var out strings.Builder
			rc := run([]string{"reopen", "--state", state}, &out, &out)
			if rc != 0 {
				t.Fatalf("icsnare reopen: exit %d: %s", rc, out.String())
			}
			t.Logf("%s", strings.TrimSpace(out.String()))
		} else {
			cmd.Process.Signal(syscall.SIGHUP)
		}
		waitFor(t, "a new events file", func() bool { _, err := os.Stat(events); return err == nil })
	}
	modbusRequests(t, target, 300)
	sent += 300
	stopSensor(t, cmd)
	got := 0
	for _, f := range []string{"events.1", "events.2", "events.jsonl"} {
		_, n := eventLines(t, filepath.Join(dir, f))
		t.Logf("%s: %d request events", f, n)
		if n == 0 {
			t.Errorf("%s holds no request events", f)
		}
		got += n
	}
	if got != sent {
		t.Fatalf("%d requests sent, %d request events in the files\n%s", sent, got, logs)
	}
	if _, err := os.Stat(filepath.Join(state, "icsnare.pid")); !os.IsNotExist(err) {
		t.Errorf("pid file left behind after exit: %v", err)
	}
}

// metricValue scrapes one series from a metrics URL ("" when absent).
func metricValue(t *testing.T, url, series string) float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for l := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("%s: %v", l, err)
			}
			return f
		}
	}
	t.Fatalf("no series %s at %s", series, url)
	return 0
}

// TestDiskFullResumes: the events file is on a small tmpfs the test mounts; filling it
// stops events with one log line and the write_error drops count; freeing space lets
// writing resume by itself, with no broken line and no restart. Every event is either in
// the file or counted.
func TestDiskFullResumes(t *testing.T) {
	protocoltest.NeedTool(t, "go")
	protocoltest.NeedRoot(t)
	bin := buildStatic(t)
	dir := t.TempDir()
	if err := syscall.Mount("ev-tmpfs", dir, "tmpfs", 0, "size=1m,mode=0755"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	events := filepath.Join(dir, "events.jsonl")
	addr := evAddr()
	metrics := "http://" + addr + ":9108/metrics"
	cfg := writeConfig(t, fmt.Sprintf("[events]\nfile = %q\nper_session = 0\n[metrics]\nlisten = %q\n", events, addr+":9108"))
	cmd, logs, target := startSensor(t, bin, addr, cfg)
	// 1. Writing works.
	modbusReads(t, target, 50, 1)
	waitFor(t, "the first events", func() bool { _, n := eventLines(t, events); return n == 50 })
	// 2. The disk fills up.
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			break
		}
	}
	f.Close()
	modbusReads(t, target, 3000, 2) // ~1.3 MB of events: more than the sink's buffer holds
	series := `icsnare_events_dropped_total{reason="write_error",sink="json_file"}`
	waitFor(t, "write errors counted", func() bool { return metricValue(t, metrics, series) > 0 })
	if n := strings.Count(logs.String(), "events: write failed"); n != 1 {
		t.Fatalf("%d log lines about the full disk, want 1:\n%s", n, logs)
	}
	// 3. Space is freed: writing resumes by itself, at the next attempt of its back-off.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "writing to resume", func() bool { return strings.Contains(logs.String(), "events: writing again") })
	modbusReads(t, target, 50, 3)
	// Every event is written or counted: 3100 requests, a connect and a disconnect per
	// connection (three here, and waitListening's probe).
	const total = 3100 + 2*4
	var sent, dropped float64
	if !poll(func() bool {
		sent, dropped = metricValue(t, metrics, `icsnare_events_written_total{sink="json_file"}`), metricValue(t, metrics, series)
		return sent+dropped == total
	}) {
		t.Fatalf("sent %.0f + dropped %.0f != %d events\n%s", sent, dropped, total, logs)
	}
	stopSensor(t, cmd)
	lines, requests := eventLines(t, events)
	t.Logf("events file: %d lines (%d requests); write_error drops: %.0f; log: %s", lines, requests, dropped,
		grepLines(logs.String(), "events: w"))
	if float64(lines) != sent {
		t.Fatalf("%d lines in the file, %.0f events written", lines, sent)
	}
	b, _ := os.ReadFile(events)
	if !strings.Contains(string(b[len(b)/2:]), `"address":3`) {
		t.Errorf("no event of the requests sent after space was freed; the file ends with:\n%s", b[max(0, len(b)-2000):])
	}
}

// TestVolumeControlThroughSensor: with [events] per_session = 10 overridden to 5 for
// Modbus, a session of 200 reads and 3 writes writes its first 5 request events and every
// write; its disconnect event summarises the other reads, and the flood aggregate written
// at shutdown counts them for the source's /24.
func TestVolumeControlThroughSensor(t *testing.T) {
	protocoltest.NeedTool(t, "go")
	bin := buildStatic(t)
	events := filepath.Join(t.TempDir(), "events.jsonl")
	cfg := writeConfig(t, fmt.Sprintf("[events]\nfile = %q\nper_session = 10\n[events.protocols.modbus]\nper_session = 5\n[metrics]\nlisten = \"\"\n", events))
	cmd, _, target := startSensor(t, bin, evAddr(), cfg)
	c, err := net.DialTimeout("tcp", target, 4*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	resp := make([]byte, 12)
	for i := range 203 {
		req := []byte{0, byte(i), 0, 0, 0, 6, 1, 3, 0, 0, 0, 1} // FC3 read
		n := 11
		if i%70 == 69 {
			req[7], n = 6, 12 // FC6 write single register: echoed
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(req); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, resp[:n]); err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
	}
	c.Close()
	stopSensor(t, cmd) // the handler's disconnect event is written before the sinks close

	b, err := os.ReadFile(events)
	if err != nil {
		t.Fatal(err)
	}
	var reads, writes int
	var summarised, flood map[string]any
	for l := range strings.SplitSeq(strings.TrimSpace(string(b)), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("%v: %s", err, l)
		}
		switch m["event_type"] {
		case "modbus.request":
			if m["function_code"] == 6.0 {
				writes++
			} else {
				reads++
			}
		case "modbus.disconnect":
			if s, ok := m["summarised"].(map[string]any); ok && m["requests"] == 203.0 {
				summarised = s
			}
		case "flood.summary":
			flood = m
		}
	}
	t.Logf("reads written %d, writes %d, summary %v, flood %v", reads, writes, summarised, flood)
	if reads != 5 || writes != 2 {
		// 2 writes: i = 69 and 139 (and 209 is past the 203 requests)
		t.Fatalf("request events: %d reads, %d writes; want the first 5 and both writes", reads, writes)
	}
	if summarised == nil || summarised["events"] != 203.0-5-2 {
		t.Fatalf("disconnect summary %v, want %d events", summarised, 203-5-2)
	}
	if k, _ := summarised["kinds"].(map[string]any); len(k) != 1 {
		t.Errorf("summary kinds %v, want the reads' one kind", summarised["kinds"])
	}
	if flood == nil || flood["events"] != 203.0-5-2 || flood["source_prefix"] != "127.0.0.0/24" || flood["protocol"] != "modbus" {
		t.Fatalf("flood.summary %v", flood)
	}
}
