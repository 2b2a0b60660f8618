package collect

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLine(t *testing.T) {
	for _, c := range []struct {
		in, want string
		ok       bool
	}{
		{`{"a":1}`, `{"a":1}`, true},
		{"{\n \"a\": 1\r\n}", `{"a":1}`, true},
		{`{"a":"x\ny"}`, `{"a":"x\ny"}`, true}, // an escaped newline is no line break
		{`{"a":1}` + "\n" + `{"b":2}`, "", false},
		{`{"a":`, "", false},
		{"", "", false},
		{"\xff", "", false},
		{`[1,2]`, `[1,2]`, true},
	} {
		got, ok := Line([]byte(c.in))
		if ok != c.ok || string(got) != c.want {
			t.Errorf("Line(%q) = %q, %v; want %q, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func TestSensorOf(t *testing.T) {
	for _, c := range []struct{ subject, prefix, want string }{
		{"icsnare.plant-1.modbus.request", "icsnare", "plant-1"},
		{"org.ics.plant-2.snmp.request", "org.ics", "plant-2"},
		{"icsnare.plant-1", "icsnare", "_unknown"},
		{"other.plant-1.modbus.request", "icsnare", "_unknown"},
		{"icsnare..x", "icsnare", "_unknown"},
		{"icsnarex.plant.x", "icsnare", "_unknown"},
		{"icsnare.a/b\\c.x", "icsnare", "a_b_c"},
		{"icsnare." + strings.Repeat("z", 200) + ".x", "icsnare", strings.Repeat("z", 64)},
	} {
		if got := SensorOf(c.subject, c.prefix); got != c.want {
			t.Errorf("SensorOf(%q, %q) = %q, want %q", c.subject, c.prefix, got, c.want)
		}
	}
}

func TestDay(t *testing.T) {
	fallback := time.Date(2026, 3, 4, 23, 0, 0, 0, time.FixedZone("x", -2*3600)) // 2026-03-05 UTC
	for _, c := range []struct{ line, want string }{
		{`{"timestamp":"2026-11-29T23:59:59.999999999Z","event_type":"x"}`, "2026-11-29"},
		{`{"timestamp":"2026-11-29T23:30:00+02:00"}`, "2026-11-29"},
		{`{"timestamp":"2026-11-29T23:30:00-02:00"}`, "2026-11-30"},
		{`{"timestamp":"yesterday"}`, "2026-03-05"},
		{`{"event_type":"x"}`, "2026-03-05"},
		{`{"timestamp":"../../etc/passwd"}`, "2026-03-05"},
	} {
		if got := Day([]byte(c.line), fallback); got != c.want {
			t.Errorf("Day(%s) = %s, want %s", c.line, got, c.want)
		}
	}
}

func TestWindowForgetsTheOldest(t *testing.T) {
	w := newWindow(3)
	for _, id := range []string{"a", "b", "c", "a", "d"} {
		w.add(id)
	}
	for id, want := range map[string]bool{"a": false, "b": true, "c": true, "d": true, "e": false} {
		if w.has(id) != want {
			t.Errorf("has(%s) = %v, want %v", id, !want, want)
		}
	}
	if len(w.set) != 3 {
		t.Errorf("%d ids kept, want 3", len(w.set))
	}
}

func TestCutPartialLine(t *testing.T) {
	long := strings.Repeat("x", 200<<10)
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"{}\n", "{}\n"},
		{"{}\n{\"a\":", "{}\n"},
		{"{\"a\":", ""},
		{"{}\n" + long, "{}\n"},
		{long + "\n" + long, long + "\n"},
	} {
		p := filepath.Join(t.TempDir(), "f.jsonl")
		if err := os.WriteFile(p, []byte(c.in), 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := cutPartialLine(f); err != nil {
			t.Fatal(err)
		}
		f.WriteString("Z")
		f.Close()
		b, _ := os.ReadFile(p)
		if string(b) != c.want+"Z" {
			t.Errorf("cutPartialLine(%.20q…) left %d bytes, want %d then the next write", c.in, len(b), len(c.want)+1)
		}
	}
}

func TestSeedRemembersWrittenIDs(t *testing.T) {
	out := t.TempDir()
	dir := filepath.Join(out, "plant-1")
	os.Mkdir(dir, 0o750)
	os.WriteFile(filepath.Join(dir, "2026-11-28.jsonl"), []byte(`{"x":1,"event_id":"old-1"}`+"\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "2026-11-29.jsonl"), []byte(
		`{"event_type":"x","event_id":"plant-1-7"}`+"\n"+
			`{"event_type":"x","event_id":"a\u003cb-8"}`+"\n"+
			`{"event_type":"x","event_id":"cut`), 0o600)
	os.WriteFile(filepath.Join(out, "stray.jsonl"), []byte(`{"event_id":"stray"}`+"\n"), 0o600)
	c := &collector{o: Options{Out: out}, seen: newWindow(10)}
	n, err := c.seed()
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]bool{"plant-1-7": true, "a<b-8": true, "old-1": true, "cut": false, "stray": false} {
		if c.seen.has(id) != want {
			t.Errorf("seeded has(%q) = %v, want %v", id, !want, want)
		}
	}
	if n != 3 {
		t.Errorf("seeded %d ids, want 3", n)
	}
}

func TestOptionsCheck(t *testing.T) {
	ok := Options{Stream: "S", Out: "/tmp/x"}
	ok.Conn.Servers = []string{"nats://127.0.0.1:4222"}
	for _, c := range []struct {
		name string
		edit func(*Options)
		want string
	}{
		{"valid", func(*Options) {}, ""},
		{"no url", func(o *Options) { o.Conn.Servers = nil }, "no NATS URL"},
		{"bad stream", func(o *Options) { o.Stream = "a.b" }, "stream"},
		{"bad durable", func(o *Options) { o.Durable = "a b" }, "durable"},
		{"no out", func(o *Options) { o.Out = "" }, "output"},
		{"big batch", func(o *Options) { o.Batch = 1 << 20 }, "batch"},
	} {
		o := ok
		c.edit(&o)
		o.defaults()
		err := o.check()
		if (c.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: check = %v, want %q", c.name, err, c.want)
		}
	}
}
