package main

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// TestRequestPathsAllocateNothing: the whole sensor process, serving the default persona
// with events on and the default volume control, allocates nothing per Modbus FC3, s7comm
// Read Var and SNMP GET once a connection or flow is past its first requests. The load
// generator (a process of its own, checking every answer) drives each for two seconds; the
// process's allocation count comes from the sensor's own /metrics
// (go_memstats_mallocs_total). SNMP runs without the profile's tarpit, as the bench does: a tarpit
// answers later and so takes a reply of its own per request.
func TestRequestPathsAllocateNothing(t *testing.T) {
	bin := buildStatic(t)
	load := filepath.Join(t.TempDir(), "icsnare-load")
	build := exec.Command("go", "build", "-o", load, "../icsnare-load")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build icsnare-load: %v\n%s", err, out)
	}
	dir := t.TempDir()
	profile := protocoltest.ExportDefault(t, "snmp/snmp.xml", protocoltest.WithoutSNMPDelays)
	cfg := filepath.Join(dir, "icsnare.toml")
	if err := os.WriteFile(cfg, []byte("[limits]\nudp_bytes_per_source_per_minute = 0\nudp_bytes_per_port_per_minute = 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.76.%d.%d", rand.IntN(256), 1+rand.IntN(250))
	metrics := addr + ":9108"
	_, logs, modbus := startSensor(t, bin, addr, cfg, "--profile", profile, "--metrics", metrics,
		"--events", filepath.Join(dir, "events.jsonl"))
	off, _ := strconv.Atoi(modbus[strings.LastIndexByte(modbus, ':')+1:])
	off -= 502

	mallocs := func() float64 {
		t.Helper()
		resp, err := http.Get("http://" + metrics + "/metrics")
		if err != nil {
			t.Fatalf("scrape: %v\n%s", err, logs)
		}
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "go_memstats_mallocs_total "); ok {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					t.Fatal(err)
				}
				return f
			}
		}
		t.Fatalf("no go_memstats_mallocs_total on /metrics: %v", sc.Err())
		return 0
	}
	requests := regexp.MustCompile(`requests=(\d+) errors=0 `)
	run := func(mode string, port int, d time.Duration) int {
		t.Helper()
		out, err := exec.Command(load, "-mode", mode, "-conns", "4", "-duration", d.String(),
			"-target", fmt.Sprintf("%s:%d", addr, port+off)).CombinedOutput()
		m := requests.FindSubmatch(out)
		if err != nil || m == nil {
			t.Fatalf("icsnare-load %s: %v\n%s", mode, err, out)
		}
		n, _ := strconv.Atoi(string(m[1]))
		return n
	}
	for _, w := range []struct {
		mode string
		port int
	}{{"modbus", 502}, {"s7comm", 102}, {"snmp", 161}} {
		t.Run(w.mode, func(t *testing.T) {
			run(w.mode, w.port, time.Second) // every counter, pool and series in place
			m0 := mallocs()
			m1 := mallocs()
			n := run(w.mode, w.port, 2*time.Second)
			m2 := mallocs()
			// Counted against the requests: the scrape's own allocations (m1-m0, a few
			// thousand) and those of the sensor's timers (flood summaries, flushes,
			// sweeps), so this is an upper bound; a request path that allocated would
			// show one or more per request.
			per := (m2 - m1) / float64(n)
			t.Logf("%s: %d requests, %.0f allocations in the process meanwhile (a scrape alone: %.0f), at most %.4f per request",
				w.mode, n, m2-m1, m1-m0, per)
			if per >= 0.5 {
				t.Errorf("%s: %.3f allocations per request, want 0", w.mode, per)
			}
		})
	}
}
