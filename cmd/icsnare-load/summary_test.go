package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStatsOf(t *testing.T) {
	cases := []struct {
		in   []float64
		want stats
	}{
		{nil, stats{}},
		{[]float64{3}, stats{3, 3, 3}},
		{[]float64{3, 1, 2}, stats{1, 2, 3}},
		{[]float64{4, 1, 3, 2}, stats{1, 2.5, 4}},
	}
	for _, c := range cases {
		if got := statsOf(c.in); got != c.want {
			t.Errorf("statsOf(%v) = %+v, want %+v", c.in, got, c.want)
		}
	}
}

// TestSummarize pairs icsnare and ceiling runs by round and writes the ratios as JSON.
func TestSummarize(t *testing.T) {
	dir := t.TempDir()
	runs := filepath.Join(dir, "runs.jsonl")
	for _, r := range []record{
		{Label: "modbus", Server: "icsnare", Round: 1, Rate: 900, PerCPU: 800, Load1: 1},
		{Label: "modbus", Server: "ceiling", Round: 1, Rate: 1000, PerCPU: 1000, Load1: 2},
		{Label: "modbus", Server: "ceiling", Round: 2, Rate: 1000, PerCPU: 1000},
		{Label: "modbus", Server: "icsnare", Round: 2, Rate: 950, PerCPU: 900},
		{Label: "modbus", Server: "icsnare", Round: 3, Rate: 950, PerCPU: 600, Errors: 2},
		{Label: "modbus", Server: "ceiling", Round: 3, Rate: 1000, PerCPU: 1000},
		{Label: "snmp", Server: "icsnare", Round: 1, Rate: 10, PerCPU: 10}, // no ceiling run: no round
	} {
		if err := appendRecord(runs, r); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "bench.json")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"summarize", "-out", out, runs}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "0.60/0.80/0.90") {
		t.Fatalf("table:\n%s", stdout.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var s summary
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	if len(s.Workloads) != 2 || len(s.Runs) != 7 {
		t.Fatalf("%d workloads, %d runs", len(s.Workloads), len(s.Runs))
	}
	m := s.Workloads[0]
	if m.Label != "modbus" || m.Rounds != 3 || m.RatioPerCPU != (stats{0.6, 0.8, 0.9}) || m.RatioRate.Median != 0.95 || m.Errors != 2 ||
		m.LoadAvgMaximum != 2 {
		t.Fatalf("modbus summary %+v", m)
	}
	if s.Workloads[1].Rounds != 0 {
		t.Fatalf("snmp summary %+v", s.Workloads[1])
	}
	if code := run([]string{"summarize", filepath.Join(dir, "missing")}, &stdout, &stderr); code != 1 {
		t.Fatalf("missing file: exit %d", code)
	}
}
