package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestReport(t *testing.T) {
	stream := []event{
		{Action: "start", Package: "p/a"},
		{Action: "run", Package: "p/a", Test: "TestOK"},
		{Action: "output", Package: "p/a", Test: "TestOK", Output: "=== RUN   TestOK\n"},
		{Action: "pass", Package: "p/a", Test: "TestOK"},
		{Action: "run", Package: "p/a", Test: "TestNmap"},
		{Action: "output", Package: "p/a", Test: "TestNmap", Output: "    x_test.go:9: nmap not installed (apt-get install nmap)\n"},
		{Action: "output", Package: "p/a", Test: "TestNmap", Output: "--- SKIP: TestNmap (0.00s)\n"},
		{Action: "skip", Package: "p/a", Test: "TestNmap"},
		{Action: "pass", Package: "p/a", Elapsed: 1.5},
		{Action: "start", Package: "p/b"},
		{Action: "run", Package: "p/b", Test: "TestBad"},
		{Action: "output", Package: "p/b", Test: "TestBad", Output: "    b_test.go:3: got 1, want 2\n"},
		{Action: "fail", Package: "p/b", Test: "TestBad", Elapsed: 0.1},
		{Action: "fail", Package: "p/b", Elapsed: 0.2},
		{Action: "start", Package: "p/c"}, // never ends: a cut-short run
		{Action: "start", Package: "p/d"},
		{Action: "output", Package: "p/d", Output: "?   \tp/d\t[no test files]\n"},
		{Action: "skip", Package: "p/d"}, // no test files: done, not skipped
	}
	var out strings.Builder
	r := newReport(&out)
	for _, e := range stream {
		b, _ := json.Marshal(e)
		var back event
		json.Unmarshal(b, &back)
		r.add(back)
	}
	if !r.done["p/d"] {
		t.Error("a package without test files is not done")
	}
	if r.finish() {
		t.Fatal("a run with a failure passed")
	}
	got := out.String()
	for _, want := range []string{
		"ok  \tp/a\t1.500s\n",
		"--- FAIL: p/b TestBad (0.10s)\n    b_test.go:3: got 1, want 2\n",
		"FAIL\tp/b\t0.200s\n",
		"FAIL\tp/c\t(no result: the run was cut short)\n",
		"1 tests skipped",
		"SKIP p/a TestNmap: x_test.go:9: nmap not installed (apt-get install nmap)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
}
