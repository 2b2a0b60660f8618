package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// natsServer runs a real nats-server with JetStream on an address in 127.77.0.0/16 that
// the test owns, at a port the kernel picked (kept across restarts), with its own store
// directory.
type natsServer struct {
	t              *testing.T
	bin, addr, dir string
	port           int
	cmd            *exec.Cmd
	log            *os.File
}

func startNATSServer(t *testing.T, addr string) *natsServer {
	t.Helper()
	s := &natsServer{t: t, bin: protocoltest.NeedTool(t, "nats-server"), addr: addr, dir: t.TempDir()}
	ln, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		t.Fatal(err)
	}
	s.port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	if s.log, err = os.Create(filepath.Join(s.dir, "server.log")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.kill()
		s.log.Close()
		if t.Failed() {
			b, _ := os.ReadFile(s.log.Name())
			t.Logf("nats-server log:\n%s", b)
		}
	})
	s.start()
	return s
}

func (s *natsServer) hostPort() string { return net.JoinHostPort(s.addr, strconv.Itoa(s.port)) }

func (s *natsServer) url() string { return "nats://" + s.hostPort() }

func (s *natsServer) start() {
	s.t.Helper()
	s.cmd = exec.Command(s.bin, "-a", s.addr, "-p", strconv.Itoa(s.port), "-n", "icsnare-test", "-js", "-sd", filepath.Join(s.dir, "store"))
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	waitListening(s.t, s.hostPort())
}

// kill ends the server the hard way (a crash, not a shutdown).
func (s *natsServer) kill() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	s.cmd.Wait()
	s.cmd = nil
}

// fleetSensor is one `icsnare run` publishing to NATS.
type fleetSensor struct {
	id, addr, events, state string
	bin                     string
	args                    []string
	cmd                     *exec.Cmd
	logs                    *syncLog
	restarted               bool
}

func (s *fleetSensor) start(t *testing.T) {
	t.Helper()
	s.cmd = exec.Command(s.bin, s.args...)
	s.cmd.Stderr = s.logs
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
}

func (s *fleetSensor) stop(t *testing.T) {
	t.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
	if err := s.cmd.Wait(); err != nil {
		t.Fatalf("%s exit: %v", s.id, err)
	}
}

// readJSONLines parses a JSON-lines file (absent: none).
func readJSONLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("%s: a line that is not JSON: %v\n%s", path, err, sc.Bytes())
		}
		out = append(out, m)
	}
	return out
}

// collected reads every line icsnare collect wrote for a sensor, over its day files in order.
func collected(t *testing.T, out, sensor string) []map[string]any {
	t.Helper()
	names, _ := filepath.Glob(filepath.Join(out, sensor, "*.jsonl"))
	var all []map[string]any
	for _, n := range names { // Glob sorts: day order
		all = append(all, readJSONLines(t, n)...)
	}
	return all
}

// TestNATSFleetSurvivesServerOutage is the fleet acceptance test: three sensors publish
// their events (real Modbus requests) to a real nats-server; the server is killed for 10 s
// in the middle of the run and restarted; icsnare collect must write exactly the events
// each sensor wrote to its own events file: same count, same order, no duplicate ids.
func TestNATSFleetSurvivesServerOutage(t *testing.T) {
	protocoltest.NeedTool(t, "go")
	bin := buildStatic(t)
	net2 := 1 + rand.IntN(250)
	srv := startNATSServer(t, fmt.Sprintf("127.77.%d.1", net2))
	off := protocoltest.FreeOffset(t)
	out := t.TempDir()

	var sensors []*fleetSensor
	for i := range 3 {
		dir := t.TempDir()
		s := &fleetSensor{id: fmt.Sprintf("plant-%d", i+1), addr: fmt.Sprintf("127.77.%d.%d", net2, 10+i),
			events: filepath.Join(dir, "events.jsonl"), state: filepath.Join(dir, "state"), bin: bin, logs: &syncLog{}}
		cfg := filepath.Join(dir, "icsnare.toml")
		conf := fmt.Sprintf(`[sinks.nats]
servers = [%q]
stream = "FLEET"
create_stream = true
ack_timeout = "2s"
retry_max = "1s"
close_timeout = "10s"
buffer = 16
`, srv.url())
		if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		s.args = []string{"run", "--config", cfg, "--listen", s.addr, "--port-offset", strconv.Itoa(off),
			"--metrics", "off", "--events", s.events, "--user", "root", "--sensor-id", s.id, "--state", s.state}
		s.start(t)
		t.Cleanup(func() {
			if s.cmd.ProcessState == nil {
				s.cmd.Process.Kill()
				s.cmd.Wait()
			}
			if t.Failed() {
				t.Logf("%s log:\n%s", s.id, s.logs.String())
			}
		})
		sensors = append(sensors, s)
	}
	for _, s := range sensors {
		waitListening(t, fmt.Sprintf("%s:%d", s.addr, 502+off))
	}

	col := exec.Command(bin, "collect", "--nats", srv.url(), "--stream", "FLEET", "--out", out, "--batch", "64")
	colLog := &syncLog{}
	col.Stderr = colLog
	if err := col.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if col.ProcessState == nil {
			col.Process.Kill()
			col.Wait()
		}
		if t.Failed() {
			t.Logf("collect log:\n%s", colLog.String())
		}
	})

	sent := 0
	traffic := func(n int) {
		t.Helper()
		for range n {
			for _, s := range sensors {
				if _, err := readHolding(fmt.Sprintf("%s:%d", s.addr, 502+off)); err != nil {
					t.Fatalf("%s: %v", s.id, err)
				}
			}
			sent++
		}
	}
	traffic(20)
	srv.kill()
	down := time.Now()
	t.Log("nats-server killed")
	traffic(10)
	// one sensor restarts during the outage: what it spooled must survive
	restarted := sensors[2]
	restarted.stop(t)
	restarted.start(t)
	restarted.restarted = true
	waitListening(t, fmt.Sprintf("%s:%d", restarted.addr, 502+off))
	traffic(10)
	for _, s := range sensors {
		segs, _ := filepath.Glob(filepath.Join(s.state, "nats", s.id, "spool", "*.seg"))
		if len(segs) == 0 {
			t.Errorf("%s: no spool segment on disk during the outage", s.id)
		}
	}
	time.Sleep(time.Until(down.Add(10 * time.Second)))
	srv.start()
	t.Logf("nats-server restarted after %s", time.Since(down).Round(100*time.Millisecond))
	traffic(20)

	// complete: every event of each sensor's own file has reached collect's files
	complete := func() bool {
		for _, s := range sensors {
			if n := len(readJSONLines(t, s.events)); n == 0 || len(collected(t, out, s.id)) < n {
				return false
			}
		}
		return true
	}
	waitFor := func(what string) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for !complete() {
			if time.Now().After(deadline) {
				for _, s := range sensors {
					t.Logf("%s: %d events in its file, %d collected", s.id, len(readJSONLines(t, s.events)), len(collected(t, out, s.id)))
				}
				t.Fatalf("collect did not catch up %s", what)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	waitFor("after the restart")
	for _, s := range sensors {
		logs := s.logs.String()
		if !strings.Contains(logs, "cannot deliver; spooling") || !strings.Contains(logs, "delivering again") {
			t.Errorf("%s did not log the outage and the recovery while running:\n%s", s.id, logs)
		}
	}
	for _, s := range sensors {
		s.stop(t)
	}
	waitFor("after the sensors stopped")
	time.Sleep(time.Second) // anything more would be a duplicate: give it time to show
	col.Process.Signal(syscall.SIGTERM)
	if err := col.Wait(); err != nil {
		t.Fatalf("collect exit after SIGTERM: %v", err)
	}

	ids := map[string]bool{}
	for _, s := range sensors {
		logs := s.logs.String()
		if s.restarted && !strings.Contains(logs, "events spooled by an earlier run") {
			t.Errorf("%s: the restarted run did not find the spool of the first:\n%s", s.id, logs)
		}
		want := readJSONLines(t, s.events)
		got := collected(t, out, s.id)
		requests := 0
		for _, e := range want {
			if e["event_type"] == "modbus.request" {
				requests++
			}
		}
		if requests != sent {
			t.Errorf("%s: %d modbus.request events in its file, %d requests sent", s.id, requests, sent)
		}
		if len(got) != len(want) {
			t.Errorf("%s: collect wrote %d events, the sensor %d", s.id, len(got), len(want))
		}
		var prev uint64
		for i := range min(len(got), len(want)) {
			id, _ := got[i]["event_id"].(string)
			if ids[id] {
				t.Errorf("%s: event id %s written twice", s.id, id)
			}
			ids[id] = true
			seqText, ok := strings.CutPrefix(id, s.id+"-")
			seq, err := strconv.ParseUint(seqText, 10, 64)
			if !ok || err != nil {
				t.Fatalf("%s: event id %q is not <sensor>-<sequence>", s.id, id)
			}
			// a restart continues after the block of sequences it had reserved
			if i > 0 && (seq <= prev || seq != prev+1 && !s.restarted) {
				t.Errorf("%s: event %d has sequence %d after %d (order or loss)", s.id, i, seq, prev)
			}
			prev = seq
			g := maps.Clone(got[i])
			delete(g, "event_id")
			if !equalJSON(g, want[i]) {
				t.Errorf("%s: event %d differs:\ncollected %v\nsensor    %v", s.id, i, g, want[i])
				break
			}
		}
		t.Logf("%s: %d requests, %d events in its file, %d collected", s.id, requests, len(want), len(got))
	}
	t.Logf("collect: %s", lastLine(colLog.String()))
}

func equalJSON(a, b map[string]any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

func TestCollectUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"collect"}, exitUsage, "--nats URL and --out DIR are required"},
		{[]string{"collect", "--nats", "nats://127.77.0.1:1"}, exitUsage, "required"},
		{[]string{"collect", "--nats", "nats://127.77.0.1:1", "--out", "x", "extra"}, exitUsage, "unexpected argument"},
		{[]string{"collect", "--nats", "nats://127.77.0.1:1", "--out", t.TempDir(), "--stream", "a.b"}, 1, "stream"},
		{[]string{"collect", "--nats", "nats://127.77.0.1:1", "--out", t.TempDir(), "--user", "u", "--nkey", "f"}, 1, "at most one"},
	} {
		var stderr strings.Builder
		if code := run(c.args, io.Discard, &stderr); code != c.code || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%q: exit %d, %q; want %d and %q", c.args, code, stderr.String(), c.code, c.want)
		}
	}
}

// TestNATSSpoolFullIsNotAStall: with the NATS server away and a 64 KiB spool, a sensor under
// Modbus traffic answers every request, its events file gets every event, the events the
// spool cannot take are counted as failures of the nats sink, and SIGTERM still ends it.
func TestNATSSpoolFullIsNotAStall(t *testing.T) {
	protocoltest.NeedTool(t, "go")
	bin := buildStatic(t)
	net2 := 1 + rand.IntN(250)
	away := fmt.Sprintf("127.77.%d.1", net2)
	ln, err := net.Listen("tcp", away+":0") // a port where nothing listens afterwards
	if err != nil {
		t.Fatal(err)
	}
	natsURL := "nats://" + ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "icsnare.toml")
	conf := fmt.Sprintf(`[sinks.nats]
servers = [%q]
buffer = 16
spool_max_bytes = 65536
spool_segment_bytes = 65536
close_timeout = "1s"
`, natsURL)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.77.%d.20", net2)
	off := protocoltest.FreeOffset(t)
	events := filepath.Join(dir, "events.jsonl")
	p := launch(t, bin, addr, "run", "--config", cfg, "--listen", addr, "--port-offset", strconv.Itoa(off),
		"--events", events, "--user", "root", "--sensor-id", "full", "--state", filepath.Join(dir, "state"))
	target := fmt.Sprintf("%s:%d", addr, 502+off)
	waitListening(t, target)
	const requests = 300
	for i := range requests {
		if v, err := readHolding(target); err != nil || v != 1 {
			t.Fatalf("request %d: %d, %v", i, v, err)
		}
	}
	var failed float64
	deadline := time.Now().Add(10 * time.Second)
	for failed == 0 && time.Now().Before(deadline) {
		time.Sleep(300 * time.Millisecond) // the bus flushes on a timer
		failed = p.metric(t, `icsnare_events_dropped_total{reason="write_error",sink="nats"}`)
	}
	p.stop(t)
	got := readJSONLines(t, events)
	n := 0
	for _, e := range got {
		if e["event_type"] == "modbus.request" {
			n++
		}
	}
	if n != requests {
		t.Fatalf("events file: %d modbus.request events, want %d", n, requests)
	}
	if failed == 0 {
		t.Fatalf("no failure of the nats sink counted with a full spool (%d events)", len(got))
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "state", "nats", "full", "spool", "*.seg"))
	var size int64
	for _, s := range segs {
		if st, err := os.Stat(s); err == nil {
			size += st.Size()
		}
	}
	// the memory queue (16 events) joins the spool at shutdown, past the bound
	if size == 0 || size > 65536+16*2048 {
		t.Fatalf("spool holds %d bytes, want some and at most the bound plus the memory queue", size)
	}
	if !strings.Contains(p.log.String(), "the spool cannot take more") {
		t.Errorf("no log line about the full spool:\n%s", p.log.String())
	}
	t.Logf("%d requests answered, %d events in the file, %.0f refused by the full spool (%d bytes spooled)", requests, len(got), failed, size)
}
