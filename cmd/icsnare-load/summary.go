package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
)

// record is one measured run as -json writes it.
type record struct {
	Label    string  `json:"label"`
	Server   string  `json:"server"` // icsnare or ceiling
	Round    int     `json:"round"`
	Mode     string  `json:"mode"`
	Conns    int     `json:"conns"`
	Requests int64   `json:"requests"`
	Errors   int64   `json:"errors"`
	Lost     int     `json:"connections_lost,omitempty"` // connections that ended with an error before the run
	Seconds  float64 `json:"seconds"`
	Rate     float64 `json:"req_per_s"`
	CPU      float64 `json:"server_cpu_s"`
	PerCPU   float64 `json:"req_per_cpu_s"` // requests per server CPU-second; 0 if unknown
	P50us    int64   `json:"p50_us"`
	P99us    int64   `json:"p99_us"`
	Load1    float64 `json:"loadavg1"` // the machine's 1-minute load average at the end of the run
	Time     string  `json:"time"`
}

// recordFlags are a measured run's -json, -label, -server and -round.
type recordFlags struct {
	json, label, server *string
	round               *int
}

// addRecordFlags defines the record flags on fs, -label defaulting to label (note: what
// its help says of an empty default).
func addRecordFlags(fs *flag.FlagSet, label, note string) recordFlags {
	return recordFlags{
		json:   fs.String("json", "", "append the result as one JSON line to `file`"),
		label:  fs.String("label", label, strings.TrimSpace("-json: the workload's label "+note)),
		server: fs.String("server", "icsnare", "-json: which server was measured (icsnare or ceiling)"),
		round:  fs.Int("round", 0, "-json: the round number"),
	}
}

func newRecord(label, server string, round int, mode string, conns int, r result) record {
	rec := record{Label: label, Server: server, Round: round, Mode: mode, Conns: conns, Requests: r.ok, Errors: r.failed, Lost: r.lost,
		Seconds: r.elapsed.Seconds(), CPU: r.cpu.Seconds(), P50us: r.p50.Microseconds(), P99us: r.p99.Microseconds(),
		Load1: loadavg(), Time: time.Now().UTC().Format(time.RFC3339)}
	if rec.Seconds > 0 {
		rec.Rate = float64(r.ok) / rec.Seconds
	}
	if rec.CPU > 0 {
		rec.PerCPU = float64(r.ok) / rec.CPU
	}
	return rec
}

// loadavg is the 1-minute load average, or 0 if /proc/loadavg cannot be read.
func loadavg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	var l float64
	fmt.Sscan(string(b), &l)
	return l
}

func appendRecord(path string, r record) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("-json: %w", err)
	}
	b, _ := json.Marshal(r)
	_, err = f.Write(append(b, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("-json: %w", err)
	}
	return nil
}

// stats is the min, median and max of a series.
type stats struct {
	Min    float64 `json:"min"`
	Median float64 `json:"median"`
	Max    float64 `json:"max"`
}

func statsOf(v []float64) stats {
	if len(v) == 0 {
		return stats{}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return stats{Min: s[0], Median: m, Max: s[len(s)-1]}
}

// workloadSummary is one label's figures over its rounds.
type workloadSummary struct {
	Label          string  `json:"label"`
	Rounds         int     `json:"rounds"`
	IcsnareRate    stats   `json:"icsnare_req_per_s"`
	CeilingRate    stats   `json:"ceiling_req_per_s"`
	IcsnarePerCPU  stats   `json:"icsnare_req_per_cpu_s"`
	CeilingPerCPU  stats   `json:"ceiling_req_per_cpu_s"`
	RatioPerCPU    stats   `json:"ratio_per_cpu_s"` // icsnare / ceiling per round
	RatioRate      stats   `json:"ratio_req_per_s"`
	Errors         int64   `json:"errors"`
	LoadAvgMedian  float64 `json:"loadavg1_median"`
	LoadAvgMaximum float64 `json:"loadavg1_max"`
}

// summary is what summarize writes as JSON.
type summary struct {
	Time      string            `json:"time"`
	Workloads []workloadSummary `json:"workloads"`
	Runs      []record          `json:"runs"`
}

func summarize(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("icsnare-load summarize", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "write the summary with every run as JSON to `file`")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var recs []record
	for _, p := range fs.Args() {
		r, err := readRecords(p)
		if err != nil {
			fmt.Fprintf(stderr, "icsnare-load summarize: %v\n", err)
			return 1
		}
		recs = append(recs, r...)
	}
	if len(recs) == 0 {
		fmt.Fprintln(stderr, "icsnare-load summarize: no runs")
		return 1
	}
	s := summarizeRecords(recs)
	fmt.Fprint(stdout, s.table())
	if *out != "" {
		b, _ := json.MarshalIndent(s, "", "  ")
		if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
			fmt.Fprintf(stderr, "icsnare-load summarize: %v\n", err)
			return 1
		}
	}
	return 0
}

func readRecords(path string) ([]record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var recs []record
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var r record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		recs = append(recs, r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(recs) == 0 {
		return nil, errors.New(path + ": no runs")
	}
	return recs, nil
}

// summarizeRecords pairs each label's icsnare and ceiling runs by round, in the order the
// labels first appear.
func summarizeRecords(recs []record) summary {
	s := summary{Time: time.Now().UTC().Format(time.RFC3339), Runs: recs}
	var labels []string
	byLabel := map[string]map[int]map[string]record{}
	for _, r := range recs {
		if byLabel[r.Label] == nil {
			labels = append(labels, r.Label)
			byLabel[r.Label] = map[int]map[string]record{}
		}
		if byLabel[r.Label][r.Round] == nil {
			byLabel[r.Label][r.Round] = map[string]record{}
		}
		byLabel[r.Label][r.Round][r.Server] = r
	}
	for _, l := range labels {
		w := workloadSummary{Label: l}
		var ir, cr, ic, cc, rp, rr, la []float64
		for _, round := range byLabel[l] {
			i, iok := round["icsnare"]
			c, cok := round["ceiling"]
			for _, r := range []record{i, c} {
				w.Errors += r.Errors
				if r.Load1 > 0 {
					la = append(la, r.Load1)
				}
			}
			if !iok || !cok {
				continue
			}
			w.Rounds++
			ir, cr = append(ir, i.Rate), append(cr, c.Rate)
			ic, cc = append(ic, i.PerCPU), append(cc, c.PerCPU)
			if c.PerCPU > 0 {
				rp = append(rp, i.PerCPU/c.PerCPU)
			}
			if c.Rate > 0 {
				rr = append(rr, i.Rate/c.Rate)
			}
		}
		w.IcsnareRate, w.CeilingRate = statsOf(ir), statsOf(cr)
		w.IcsnarePerCPU, w.CeilingPerCPU = statsOf(ic), statsOf(cc)
		w.RatioPerCPU, w.RatioRate = statsOf(rp), statsOf(rr)
		ls := statsOf(la)
		w.LoadAvgMedian, w.LoadAvgMaximum = ls.Median, ls.Max
		s.Workloads = append(s.Workloads, w)
	}
	return s
}

func (s summary) table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-14s %6s %22s %22s %22s %22s %20s %9s\n", "workload", "rounds", "icsnare req/s", "ceiling req/s",
		"icsnare req/CPU-s", "ceiling req/CPU-s", "ratio/CPU-s min/med/max", "load1")
	f := func(st stats) string { return fmt.Sprintf("%.0f/%.0f/%.0f", st.Min, st.Median, st.Max) }
	for _, w := range s.Workloads {
		fmt.Fprintf(&b, "%-14s %6d %22s %22s %22s %22s %20s %9s\n", w.Label, w.Rounds, f(w.IcsnareRate), f(w.CeilingRate),
			f(w.IcsnarePerCPU), f(w.CeilingPerCPU),
			fmt.Sprintf("%.2f/%.2f/%.2f", w.RatioPerCPU.Min, w.RatioPerCPU.Median, w.RatioPerCPU.Max),
			fmt.Sprintf("%.1f-%.1f", w.LoadAvgMedian, w.LoadAvgMaximum))
	}
	return b.String()
}
