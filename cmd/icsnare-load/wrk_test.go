package main

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestParseWrk reads wrk 4.1's output as it printed it: a clean run, one whose answers were
// all 404, and one whose server was killed halfway (socket errors).
func TestParseWrk(t *testing.T) {
	cases := []struct {
		file string
		want wrkResult
	}{
		{"wrk-index.txt", wrkResult{requests: 13510, elapsed: 2030 * time.Millisecond,
			p50: 3700 * time.Microsecond, p99: 11540 * time.Microsecond, max: 19360 * time.Microsecond}},
		{"wrk-404.txt", wrkResult{requests: 8933, errors: 8933, elapsed: 1010 * time.Millisecond,
			p50: 1990 * time.Microsecond, p99: 8870 * time.Microsecond, max: 14560 * time.Microsecond}},
		{"wrk-killed.txt", wrkResult{requests: 7694, errors: 37 + 2761, elapsed: 2020 * time.Millisecond,
			p50: 2890 * time.Microsecond, p99: 9340 * time.Microsecond, max: 15800 * time.Microsecond}},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", c.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := parseWrk(b)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Errorf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

// TestParseWrkRefusesPartialOutput: output without the totals or the latency distribution
// (wrk run without --latency, or cut short) is an error, not a run of zero requests.
func TestParseWrkRefusesPartialOutput(t *testing.T) {
	full, err := os.ReadFile(filepath.Join("testdata", "wrk-index.txt"))
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{
		"empty":          "",
		"no latency":     strings.Join(slicesWithout(strings.Split(string(full), "\n"), "50%", "99%"), "\n"),
		"no totals":      strings.Join(slicesWithout(strings.Split(string(full), "\n"), "requests in"), "\n"),
		"bad count":      strings.Replace(string(full), "13510 requests", "x requests", 1),
		"bad percentile": strings.Replace(string(full), "3.70ms", "3.70parsecs", 1),
	}
	for name, out := range cases {
		if _, err := parseWrk([]byte(out)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func slicesWithout(lines []string, subs ...string) []string {
	var out []string
	for _, l := range lines {
		keep := true
		for _, s := range subs {
			if strings.Contains(l, s) {
				keep = false
			}
		}
		if keep {
			out = append(out, l)
		}
	}
	return out
}

// TestWrkAgainstServer runs the real wrk against a loopback HTTP server with the sensor's
// own process standing in as the measured pid, and checks the report and the record.
func TestWrkAgainstServer(t *testing.T) {
	if _, err := exec.LookPath("wrk"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("wrk is not installed")
		}
		t.Skip("wrk is not installed")
	}
	addr := startHTTP(t)
	rec := filepath.Join(t.TempDir(), "runs.jsonl")
	var out, errOut bytes.Buffer
	code := run([]string{"wrk", "-target", addr, "-path", "/x", "-threads", "1", "-conns", "2", "-duration", "1s",
		"-pid", itoaPid(), "-json", rec, "-label", "http-wrk", "-server", "ceiling", "-round", "3"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d: %s%s", code, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), "mode=wrk") || !strings.Contains(out.String(), "cpu_per_request=") {
		t.Errorf("report:\n%s", out.String())
	}
	b, err := os.ReadFile(rec)
	if err != nil {
		t.Fatal(err)
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if r.Label != "http-wrk" || r.Server != "ceiling" || r.Round != 3 || r.Mode != "wrk" || r.Conns != 2 ||
		r.Requests <= 0 || r.Errors != 0 || r.Seconds < 0.9 || r.CPU <= 0 || r.PerCPU <= 0 {
		t.Errorf("record %+v", r)
	}
}

// TestWrkRefuses: targets outside loopback and the test ranges, and bad shapes, fail
// before wrk runs.
func TestWrkRefuses(t *testing.T) {
	cases := [][]string{
		{"wrk", "-target", "192.0.2.1:80", "-duration", "1s"},
		{"wrk", "-target", "127.0.0.1:80", "-duration", "100ms"},
		{"wrk", "-target", "127.0.0.1:80", "-threads", "4", "-conns", "2", "-duration", "1s"},
		{"wrk", "-target", "127.0.0.1:80", "-wrk", "/nonexistent/wrk", "-duration", "1s"},
	}
	for _, args := range cases {
		var out, errOut bytes.Buffer
		if code := run(args, &out, &errOut); code == 0 || errOut.Len() == 0 {
			t.Errorf("%v: exit %d, stderr %q", args, code, errOut.String())
		}
	}
}

// startHTTP serves a short page on a loopback port the kernel picks, for the test's life.
func startHTTP(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("<html>ok</html>"))
	}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func itoaPid() string { return strconv.Itoa(os.Getpid()) }
