// Command testreport reads `go test -json` on stdin and prints what `go test` prints (a
// line per package, the output of failed tests), then every skipped test with its reason,
// so a run where clients were missing says which checks it did not make. It exits 1 when a
// test or package failed or the stream was cut short.
//
//	go test -json ./... | go run ./internal/testreport
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

// event is one line of test2json's output.
type event struct {
	Time    time.Time
	Action  string
	Package string
	Test    string
	Elapsed float64
	Output  string
}

// maxKept bounds the output kept per test (the end of it is what explains a failure).
const maxKept = 64 << 10

type report struct {
	out     io.Writer
	output  map[string]*strings.Builder // package + "\x00" + test → its output so far
	skipped []string
	failed  bool
	done    map[string]bool // packages that ended
	started map[string]bool
}

func newReport(out io.Writer) *report {
	return &report{out: out, output: map[string]*strings.Builder{}, done: map[string]bool{}, started: map[string]bool{}}
}

func (r *report) add(e event) {
	key := e.Package + "\x00" + e.Test
	switch e.Action {
	case "start", "run":
		r.started[e.Package] = true
	case "output":
		b := r.output[key]
		if b == nil {
			b = &strings.Builder{}
			r.output[key] = b
		}
		if b.Len() > maxKept {
			s := b.String()[b.Len()-maxKept/2:]
			b.Reset()
			b.WriteString("[…]\n" + s)
		}
		b.WriteString(e.Output)
		if e.Test == "" && !strings.HasPrefix(e.Output, "ok ") && !strings.HasPrefix(e.Output, "FAIL") &&
			!strings.HasPrefix(e.Output, "PASS") && !strings.HasPrefix(e.Output, "?") &&
			!strings.HasPrefix(e.Output, "=== ") && !strings.HasPrefix(e.Output, "--- ") {
			fmt.Fprint(r.out, e.Output) // build errors, panics outside tests
		}
	case "build-output": // Go 1.24+: compiler messages of a package that failed to build
		fmt.Fprint(r.out, e.Output)
	case "build-fail":
		r.failed = true
	case "skip":
		if e.Test != "" {
			r.skipped = append(r.skipped, fmt.Sprintf("%s %s: %s", e.Package, e.Test, skipReason(r.text(key))))
		} else {
			r.done[e.Package] = true // a package with no test files
		}
		delete(r.output, key)
	case "pass":
		if e.Test == "" {
			fmt.Fprintf(r.out, "ok  \t%s\t%.3fs\n", e.Package, e.Elapsed)
			r.done[e.Package] = true
		}
		delete(r.output, key)
	case "fail":
		r.failed = true
		if e.Test != "" {
			fmt.Fprintf(r.out, "--- FAIL: %s %s (%.2fs)\n%s", e.Package, e.Test, e.Elapsed, r.text(key))
		} else {
			fmt.Fprintf(r.out, "FAIL\t%s\t%.3fs\n", e.Package, e.Elapsed)
			r.done[e.Package] = true
		}
		delete(r.output, key)
	}
}

func (r *report) text(key string) string {
	if b := r.output[key]; b != nil {
		return b.String()
	}
	return ""
}

// skipReason is the message a test gave t.Skip: the output line after "--- SKIP", or the
// last line that says why.
func skipReason(out string) string {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if l == "" || strings.HasPrefix(l, "--- SKIP") || strings.HasPrefix(l, "=== ") {
			continue
		}
		return l
	}
	return "(no reason given)"
}

// finish prints the skips and reports whether the run passed.
func (r *report) finish() bool {
	for p := range r.started {
		if !r.done[p] {
			fmt.Fprintf(r.out, "FAIL\t%s\t(no result: the run was cut short)\n", p)
			r.failed = true
		}
	}
	if len(r.skipped) > 0 {
		sort.Strings(r.skipped)
		fmt.Fprintf(r.out, "\n%d tests skipped (under CI=true a missing client fails instead):\n", len(r.skipped))
		for _, s := range r.skipped {
			fmt.Fprintf(r.out, "  SKIP %s\n", s)
		}
	}
	return !r.failed
}

func main() {
	r := newReport(os.Stdout)
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			fmt.Println(sc.Text()) // go test's own messages that are not JSON
			continue
		}
		r.add(e)
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintf(os.Stderr, "testreport: %v\n", err)
		os.Exit(1)
	}
	if !r.finish() {
		os.Exit(1)
	}
}
