package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// runWrk is `icsnare-load wrk`: one HTTP run of wrk (the third-party load generator the
// HTTP target names: wrk -t THREADS -c CONNS), with the server's CPU time around it and
// the same output and -json record as a run of the built-in modes, so that bench-ratio.sh
// compares icsnare with the ceiling over wrk as it does over icsnare-load. wrk has no
// warm-up of its own: a -warmup run comes first and is not counted.
func runWrk(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("icsnare-load wrk", flag.ContinueOnError)
	fs.SetOutput(stderr)
	target := fs.String("target", "127.0.0.1:80", "server `host:port` (loopback or 198.18.0.0/15 / fd00::/8 only)")
	path := fs.String("path", "/", "HTTP path")
	threads := fs.Int("threads", 2, "wrk threads")
	conns := fs.Int("conns", 32, "wrk connections")
	duration := fs.Duration("duration", 10*time.Second, "measured run")
	warmup := fs.Duration("warmup", 0, "an unmeasured run before it (0: none)")
	pid := fs.Int("pid", 0, "the server's `pid`, for CPU time per request")
	bin := fs.String("wrk", "wrk", "the wrk `binary`")
	rf := addRecordFlags(fs, "http-wrk", "")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "icsnare-load wrk: %v\n", err)
		return 1
	}
	if err := checkTarget(*target); err != nil {
		return fail(err)
	}
	if *threads < 1 || *conns < *threads || *duration < time.Second || *warmup < 0 {
		return fail(fmt.Errorf("-threads %d -conns %d -duration %s -warmup %s: want 1 ≤ threads ≤ conns, a duration of at least 1s (wrk's unit)",
			*threads, *conns, *duration, *warmup))
	}
	u := (&url.URL{Scheme: "http", Host: *target, Path: *path}).String()
	wrk := func(d time.Duration) (wrkResult, error) {
		secs := max(int(d.Round(time.Second)/time.Second), 1)
		ctx, cancel := context.WithTimeout(context.Background(), d+30*time.Second) // wrk stops itself; this bounds a hung one
		defer cancel()
		cmd := exec.CommandContext(ctx, *bin, "-t", strconv.Itoa(*threads), "-c", strconv.Itoa(*conns),
			"-d", strconv.Itoa(secs)+"s", "--latency", u)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		if err := cmd.Run(); err != nil {
			return wrkResult{}, fmt.Errorf("%s: %w: %s%s", cmd, err, strings.TrimSpace(errOut.String()), strings.TrimSpace(out.String()))
		}
		return parseWrk(out.Bytes())
	}
	if *warmup > 0 {
		if _, err := wrk(*warmup); err != nil { // wrk runs whole seconds, at least one
			return fail(err)
		}
	}
	var cpu0 cpuSample
	if *pid > 0 {
		c, err := procCPU(*pid)
		if err != nil {
			return fail(fmt.Errorf("-pid %d: %w", *pid, err))
		}
		cpu0 = c
	}
	w, err := wrk(*duration)
	if err != nil {
		return fail(err)
	}
	res := result{ok: w.requests - w.errors, failed: w.errors, elapsed: w.elapsed, p50: w.p50, p99: w.p99, mx: w.max}
	if *pid > 0 {
		c, err := procCPU(*pid)
		if err != nil {
			return fail(fmt.Errorf("-pid %d: %w", *pid, err))
		}
		res.cpu = c.since(cpu0)
	}
	fmt.Fprintf(stdout, "mode=wrk target=%s threads=%d conns=%d duration=%s\n", *target, *threads, *conns, res.elapsed.Round(time.Millisecond))
	fmt.Fprint(stdout, res.String())
	if *rf.json != "" {
		if err := appendRecord(*rf.json, newRecord(*rf.label, *rf.server, *rf.round, "wrk", *conns, res)); err != nil {
			return fail(err)
		}
	}
	if res.ok == 0 {
		return 1
	}
	return 0
}

// wrkResult is what a wrk run printed.
type wrkResult struct {
	requests, errors int64 // errors: socket errors and non-2xx/3xx answers
	elapsed          time.Duration
	p50, p99, max    time.Duration
}

// parseWrk reads wrk's text output (run with --latency).
func parseWrk(out []byte) (wrkResult, error) {
	var r wrkResult
	var haveTotal, haveP50, haveP99 bool
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) >= 5 && f[1] == "requests" && f[2] == "in": // 13510 requests in 2.03s, 25.69MB read
			n, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return r, fmt.Errorf("wrk: request count %q", f[0])
			}
			d, err := time.ParseDuration(strings.TrimSuffix(f[3], ","))
			if err != nil {
				return r, fmt.Errorf("wrk: duration %q", f[3])
			}
			r.requests, r.elapsed, haveTotal = n, d, true
		case len(f) == 2 && (f[0] == "50%" || f[0] == "99%"): // the latency distribution
			d, err := wrkDuration(f[1])
			if err != nil {
				return r, err
			}
			if f[0] == "50%" {
				r.p50, haveP50 = d, true
			} else {
				r.p99, haveP99 = d, true
			}
		case len(f) >= 4 && f[0] == "Latency": // Latency avg stdev max +/-stdev
			d, err := wrkDuration(f[3])
			if err != nil {
				return r, err
			}
			r.max = d
		case len(f) == 10 && f[0] == "Socket" && f[1] == "errors:": // Socket errors: connect 0, read 37, write 2761, timeout 0
			for i := 3; i < len(f); i += 2 {
				n, err := strconv.ParseInt(strings.TrimSuffix(f[i], ","), 10, 64)
				if err != nil {
					return r, fmt.Errorf("wrk: socket errors %q", sc.Text())
				}
				r.errors += n
			}
		case len(f) == 5 && f[0] == "Non-2xx": // Non-2xx or 3xx responses: 7670
			n, err := strconv.ParseInt(f[4], 10, 64)
			if err != nil {
				return r, fmt.Errorf("wrk: %q", sc.Text())
			}
			r.errors += n
		}
	}
	if !haveTotal || !haveP50 || !haveP99 {
		return r, errors.New("wrk: output without a request count and a latency distribution (run with --latency)")
	}
	if r.elapsed <= 0 {
		return r, errors.New("wrk: a run of no duration")
	}
	r.errors = min(r.errors, r.requests) // socket errors may come on connections that answered nothing
	return r, nil
}

// wrkDuration reads one of wrk's durations (812.00us, 3.70ms, 1.02s, 2.00m, 1.00h: Go's
// units).
func wrkDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("wrk: duration %q", s)
	}
	return d, nil
}
