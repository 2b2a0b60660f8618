package profiles

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// templateWith writes a template whose databus holds the given expressions, one key per
// line from line 3 on, and loads it.
func templateWith(t *testing.T, exprs ...string) (*Profile, error) {
	t.Helper()
	var b strings.Builder
	b.WriteString("<core><databus>\n<key_value_mappings>\n")
	for i, e := range exprs {
		e = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(e)
		fmt.Fprintf(&b, "<key name=\"k%d\"><value type=\"value\">%s</value></key>\n", i, e)
	}
	b.WriteString("</key_value_mappings></databus></core>\n")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "template.xml"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return LoadDir(dir)
}

func TestTemplateBombsAreRefusedAtLoad(t *testing.T) {
	megs := make([]string, 20)
	for i := range megs {
		megs[i] = fmt.Sprintf("'%c'*1000000", 'A'+i)
	}
	for _, tc := range []struct {
		name  string
		exprs []string
		line  int
	}{
		{"string repetition", []string{"1", "'A'*1000000000"}, 4},
		{"list repetition", []string{"[0]*200000000"}, 3},
		{"chained repetition", []string{"'A'*1000*1000*1000"}, 3},
		{"repetition with the count first", []string{"200000000*[0]"}, 3},
		{"materialised range", []string{"list(range(100000000))"}, 3},
		{"join", []string{"'x'.join(['A'*1000000 for i in range(100)])"}, 3},
		{"str of a big list", []string{"str([('A'*1000000)]*1000)"}, 3},
		{"formatting", []string{"('%s'*1000) % tuple(['A'*1000000]*1000)"}, 3},
		{"replace", []string{"('A'*1000000).replace('A', 'BB')"}, 3},
		{"format method", []string{"('{0}'*100).format('A'*1000000)"}, 3},
		{"many allowed concatenations", []string{"[('A'*1000000) + str(i) for i in range(100)]"}, 3},
		{"many allowed repetitions", []string{"{'k%d' % i: 'A'*100000 for i in range(1000)}"}, 3},
		{"big integer", []string{"[x*x for x in [7]*40]", "(1 << 500) * (1 << 500)"}, -1},
		{"profile total", megs, 19},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := templateWith(t, tc.exprs...)
			runtime.ReadMemStats(&after)
			if tc.line < 0 {
				if err != nil {
					t.Fatalf("a legitimate template was refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("loaded without error")
			}
			if want := fmt.Sprintf("template.xml:%d:", tc.line); !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "too large") {
				t.Fatalf("error %q, want a size error at %s", err, want)
			}
			// Bounded memory: far below what the expression asks for.
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 200<<20 {
				t.Fatalf("loading allocated %d MiB", grew>>20)
			}
		})
	}
}

func TestBoundedExpressionsStillWork(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"[random.randint(0,1) for b in range(0,4)] == [0,0,0,0] or True", "True"},
		{"'A'*3", "AAA"},
		{"3*'ab'", "ababab"},
		{"[0]*3", "[0, 0, 0]"},
		{"'%s-%d' % ('x', 5)", "x-5"},
		{"'{}/{a}'.format(3, a='b')", "3/b"},
		{"','.join(['a', 'b'])", "a,b"},
		{"'abc'.replace('b', 'x')", "axc"},
		{"'abc'.upper()", "ABC"},
		{"str(12) + repr('x')", "12\"x\""},
		{"list(range(3)) + [3]", "[0, 1, 2, 3]"},
		{"sorted([3, 1, 2])", "[1, 2, 3]"},
		{"len(dict(a=1, b=2))", "2"},
		{"7 * 6", "42"},
		{"1.5 * 2", "3"},
		{"10 % 4", "2"},
	} {
		e, err := CompileExpr("t", tc.src)
		if err != nil {
			t.Fatalf("%s: %v", tc.src, err)
		}
		v, err := e.Eval(1)
		if err != nil {
			t.Fatalf("%s: %v", tc.src, err)
		}
		if got := FormatValue(v); got != tc.want {
			t.Errorf("%s = %s, want %s", tc.src, got, tc.want)
		}
	}
}

func TestHostIndependentValuesAreShared(t *testing.T) {
	p, err := templateWith(t, "['x']*4", "[random.randint(0, 1000000) for i in range(4)]")
	if err != nil {
		t.Fatal(err)
	}
	a := p.Schema.NewDatabus(EngineEnv{Seed: 1})
	b := p.Schema.NewDatabus(EngineEnv{Seed: 2})
	va, _ := a.Get("k0")
	vb, _ := b.Get("k0")
	if &va.([]any)[0] != &vb.([]any)[0] {
		t.Error("a host-independent list was evaluated per host")
	}
	ra, _ := a.GetString("k1")
	rb, _ := b.GetString("k1")
	if ra == rb {
		t.Errorf("random values equal across hosts: %s", ra)
	}
	// Copy on write: a write on one host leaves the other's shared value alone.
	if err := a.Update("k0", func(cur any) (any, error) {
		l := append([]any(nil), cur.([]any)...)
		l[0] = "changed"
		return l, nil
	}); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.GetString("k0"); got != `["x", "x", "x", "x"]` {
		t.Fatalf("the other host sees %s", got)
	}
}

func TestTemplatePrintGoesNowhereNearStderr(t *testing.T) {
	e, err := CompileExpr("t", `print("hello") or 1`)
	if err != nil {
		t.Fatal(err)
	}
	r, w, _ := os.Pipe()
	old := os.Stderr
	os.Stderr = w
	_, err = e.Eval(1)
	os.Stderr = old
	w.Close()
	buf := make([]byte, 64)
	n, _ := r.Read(buf)
	if err != nil || n > 0 {
		t.Fatalf("eval %v, stderr %q", err, buf[:n])
	}
}
