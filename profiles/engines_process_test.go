package profiles

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestProcessFunction(t *testing.T) {
	ctor, ok := lookupFunction("process")
	if !ok {
		t.Fatal("process is not registered")
	}
	mk := func(seed uint64) func(time.Time) any {
		v, err := ctor(EngineEnv{Seed: seed}, []any{21.5, 0.8, 1.2, int64(86400), 0.15, int64(1)})
		if err != nil {
			t.Fatal(err)
		}
		return v.(Dynamic).Value
	}
	a, b := mk(1), mk(2)
	t0 := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	differ := false
	lo, hi := math.Inf(1), math.Inf(-1)
	for i := range 24 * 60 {
		now := t0.Add(time.Duration(i) * time.Minute)
		va, vb := a(now).(float64), b(now).(float64)
		if va != vb {
			differ = true
		}
		if va < 21.5-0.8-1.2-0.15-0.05 || va > 21.5+0.8+1.2+0.15+0.05 {
			t.Fatalf("value %v out of its range at %v", va, now)
		}
		if next := a(now.Add(10 * time.Second)).(float64); math.Abs(next-va) > 0.2 {
			t.Fatalf("jumped from %v to %v in 10 s", va, next)
		}
		if va != math.Round(va*10)/10 {
			t.Fatalf("%v has more than one decimal", va)
		}
		lo, hi = min(lo, va), max(hi, va)
	}
	if !differ {
		t.Fatal("two hosts read the same values all day")
	}
	if hi-lo < 1.5 {
		t.Fatalf("a day's swing is %v..%v", lo, hi)
	}
	if a(t0) != mk(1)(t0) {
		t.Fatal("the same host seed gives another value")
	}
	gated, err := ctor(EngineEnv{Seed: 1}, []any{72.0, 0.0, 0.0, 3600.0, 0.0, 1.0, int64(5), int64(22)})
	if err != nil {
		t.Fatal(err)
	}
	if on, off := gated.(Dynamic).Value(t0), gated.(Dynamic).Value(t0.Add(-10*time.Hour)); on != 72.0 || off != 0.0 {
		t.Fatalf("gated by 05-22: %v at noon, %v at 02:00", on, off)
	}
	for _, bad := range [][]any{{}, {"x"}, {1.0, -1.0}, {1.0, 0.0, 1.0, 0.0}, {1.0, 0.0, 0.0, 60.0, 0.0, 9.0},
		{1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0}, {1.0, 0.0, 0.0, 60.0, 0.0, 1.0, 5.0, 25.0}, {1.0, 0.0, 0.0, 60.0, 0.0, 1.0, 5.0, 6.0, 7.0}} {
		if _, err := ctor(EngineEnv{}, bad); err == nil {
			t.Errorf("params %v accepted", bad)
		}
	}
}

func TestScheduleFunction(t *testing.T) {
	ctor, ok := lookupFunction("schedule")
	if !ok {
		t.Fatal("schedule is not registered")
	}
	for _, tc := range []struct {
		on, off int64
		hour    int
		want    int64
	}{
		{6, 19, 12, 1}, {6, 19, 3, 0}, {6, 19, 20, 0}, {22, 5, 23, 1}, {22, 5, 2, 1}, {22, 5, 12, 0},
	} {
		v, err := ctor(EngineEnv{Seed: 7}, []any{tc.on, tc.off})
		if err != nil {
			t.Fatal(err)
		}
		now := time.Date(2026, 11, 29, tc.hour, 30, 0, 0, time.UTC)
		if got := v.(Dynamic).Value(now); got != tc.want {
			t.Errorf("schedule %d-%d at %02d:30 = %v, want %d", tc.on, tc.off, tc.hour, got, tc.want)
		}
	}
	v, err := ctor(EngineEnv{Seed: 7}, []any{int64(6), int64(19), int64(1), int64(2)})
	if err != nil {
		t.Fatal(err)
	}
	if day, night := v.(Dynamic).Value(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)), v.(Dynamic).Value(time.Date(2026, 1, 1, 2, 0, 0, 0, time.UTC)); day != int64(1) || night != int64(2) {
		t.Errorf("occupancy schedule: day %v, night %v", day, night)
	}
	for _, bad := range [][]any{{int64(6)}, {int64(-1), int64(5)}, {"a", int64(5)}, {int64(1), int64(2), int64(3)}} {
		if _, err := ctor(EngineEnv{}, bad); err == nil {
			t.Errorf("params %v accepted", bad)
		}
	}
}

// TestProcessDrawsAsBefore holds the compact process values (drawn again from the seed on
// every read) to what a host showed when each value kept its draws: a rand.Rand on the
// key's seed, read in the same order.
func TestProcessDrawsAsBefore(t *testing.T) {
	params := []any{[]any{380.0, 40.0, 25.0, 86400.0, 3.0, 0.0}, []any{21.5, 0.8, 1.2, 3600.0, 0.15, 1.0}}
	ctor, _ := lookupFunction("processlist")
	now := time.Date(2026, 11, 29, 17, 3, 4, 5, time.UTC)
	for seed := uint64(1); seed < 50; seed++ {
		env := EngineEnv{Seed: seed}
		v, err := ctor(env, params)
		if err != nil {
			t.Fatal(err)
		}
		got := v.(Dynamic).Value(now).([]any)
		r := env.Rand("processlist")
		for i, p := range params {
			f, _ := processParams(p.([]any))
			off := (2*r.Float64() - 1) * f[1]
			p1, p2, p3 := 2*math.Pi*r.Float64(), 2*math.Pi*r.Float64(), 2*math.Pi*r.Float64()
			w := 2 * math.Pi * (float64(now.UnixNano()) / 1e9) / f[3]
			x := f[0] + off + f[2]*math.Sin(w+p1) + f[4]*(0.6*math.Sin(w*37.3+p2)+0.4*math.Sin(w*131.7+p3))
			scale := math.Pow(10, f[5])
			var want any = math.Round(x*scale) / scale
			if f[5] == 0 {
				want = int64(want.(float64))
			}
			if got[i] != want {
				t.Fatalf("seed %d element %d: %v, want %v", seed, i, got[i], want)
			}
		}
	}
}

// TestCompiledFunctionsShareParams checks that hosts of a profile share a process list's
// parsed parameters and keep only their seed, and still differ.
func TestCompiledFunctionsShareParams(t *testing.T) {
	p := loadWithKey(t, `<value type="function" param="[[100, 50, 10, 3600, 1, 0] for i in range(32)]">processlist</value>`)
	a := p.Schema.NewDatabus(EngineEnv{Seed: 1})
	b := p.Schema.NewDatabus(EngineEnv{Seed: 2})
	ra, _ := a.raw(nameKey("k"))
	rb, _ := b.raw(nameKey("k"))
	la, lb := ra.(*processList), rb.(*processList)
	if &la.specs[0] != &lb.specs[0] {
		t.Error("two hosts parsed the process list's params each")
	}
	va, _ := a.Get("k")
	vb, _ := b.Get("k")
	if len(va.([]any)) != 32 || fmt.Sprint(va) == fmt.Sprint(vb) {
		t.Errorf("host values %v and %v", va, vb)
	}
	// A param drawn per host is evaluated per host, as before.
	p = loadWithKey(t, `<value type="function" param="[random.randint(1, 1000), 0, 0, 3600, 0, 0]">process</value>`)
	x, _ := p.Schema.NewDatabus(EngineEnv{Seed: 1}).Get("k")
	y, _ := p.Schema.NewDatabus(EngineEnv{Seed: 2}).Get("k")
	if x == y {
		t.Errorf("per-host means gave %v on both hosts", x)
	}
}

// loadWithKey loads a profile whose databus holds one key "k" with the given <value>.
func loadWithKey(t *testing.T, value string) *Profile {
	t.Helper()
	dir := t.TempDir()
	xml := "<core><databus><key_value_mappings><key name=\"k\">" + value + "</key></key_value_mappings></databus></core>\n"
	if err := os.WriteFile(filepath.Join(dir, "template.xml"), []byte(xml), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// benchProcessList is the default persona's 32-register process list of input registers.
func benchProcessList(b *testing.B) *processList {
	params := make([]any, 32)
	for i := range params {
		params[i] = []any{13824.0, 13000.0, 1500.0, 3600.0, 80.0, 0.0}
	}
	ctor, _ := lookupFunction("processlist")
	v, err := ctor(EngineEnv{Seed: 7}, params)
	if err != nil {
		b.Fatal(err)
	}
	return v.(*processList)
}

// BenchmarkProcessListRead reads a 32-register process list (the default persona's input
// registers), whose draws are repeated from the host's seed at each read.
func BenchmarkProcessListRead(b *testing.B) {
	d := benchProcessList(b)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		d.Value(now)
	}
}

// TestProcessListAsIntList: a processlist of whole numbers reads through GetIntList as the
// same values Get gives, and one with decimals does not.
func TestProcessListAsIntList(t *testing.T) {
	p := loadWithKey(t, `<value type="function" param="[[100, 50, 10, 3600, 1, 0], [-20, 5, 3, 60, 1, 0], [5e12, 1e9, 1e6, 60, 10, 0]]">processlist</value>`)
	db := p.Schema.NewDatabus(EngineEnv{Seed: 3})
	if il, ok, err := db.GetIntList("k"); err != nil || !ok || il.Len() != 3 {
		t.Fatalf("GetIntList: %v %v %v", il, ok, err)
	}
	// The values move with the time: compare the two forms at one instant.
	raw, _ := db.raw(nameKey("k"))
	lst := raw.(*processList)
	for _, now := range []time.Time{time.Now(), time.Date(2026, 11, 29, 3, 4, 5, 6, time.UTC)} {
		il, _ := lst.IntList(now)
		if want := lst.Value(now).([]any); !reflect.DeepEqual(il.List(), want) {
			t.Fatalf("IntList %v, Value %v", il.List(), want)
		}
	}
	p = loadWithKey(t, `<value type="function" param="[[21.5, 0.8, 1.2, 86400, 0.15, 1]]">processlist</value>`)
	if _, ok, _ := p.Schema.NewDatabus(EngineEnv{Seed: 3}).GetIntList("k"); ok {
		t.Fatal("a list with decimals read as integers")
	}
}

func BenchmarkProcessListIntList(b *testing.B) {
	l := benchProcessList(b)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		l.IntList(now)
	}
}

// TestGetIntEngines checks that GetInt reads the integer engines (sysuptime, the counting
// ones) as Get does, without an allocation, and still converts other values.
func TestGetIntEngines(t *testing.T) {
	p := loadWithKey(t, `<value type="value">"17"</value>`)
	d := p.Schema.NewDatabus(EngineEnv{Seed: 1})
	up, err := ParseEngine("sysuptime", "")
	if err != nil {
		t.Fatal(err)
	}
	inc, err := ParseEngine("increment", "1:100")
	if err != nil {
		t.Fatal(err)
	}
	dynUp, err := up.New(EngineEnv{Start: time.Now().Add(-time.Hour)}, "up", nil)
	if err != nil {
		t.Fatal(err)
	}
	dynInc, err := inc.New(EngineEnv{Seed: 1}, "inc", int64(5))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := dynUp.(IntDynamic); !ok {
		t.Fatalf("sysuptime is a %T, not an IntDynamic", dynUp)
	}
	d.Set("up", dynUp)
	d.Set("inc", dynInc)
	if n, err := d.GetInt("up"); err != nil || n < 360000 {
		t.Errorf("uptime an hour after start: %d ticks, %v", n, err)
	}
	a, errA := d.GetInt("inc")
	b, errB := d.GetInt("inc")
	c, errC := d.Get("inc")
	if a != 5 || b != 6 || c != int64(7) || errA != nil || errB != nil || errC != nil {
		t.Errorf("increment read as %d, %d, then Get %v (%v %v %v); want 5, 6, 7", a, b, c, errA, errB, errC)
	}
	if n, err := d.GetInt("k"); n != 17 || err != nil {
		t.Errorf("a number in a string: %d, %v", n, err)
	}
	for _, key := range []string{"up", "inc"} {
		if allocs := testing.AllocsPerRun(100, func() { _, _ = d.GetInt(key) }); allocs != 0 {
			t.Errorf("GetInt(%q): %v allocations", key, allocs)
		}
	}
}

// TestResolvedKey checks that a key resolved against one schema reads its databuses, sees
// writes, reads a databus of another schema by name, and reports a key neither has.
func TestResolvedKey(t *testing.T) {
	p1 := loadWithKey(t, `<value type="value">7</value>`)
	p2 := loadWithKey(t, `<value type="value">9</value>`)
	d1, d2 := p1.Schema.NewDatabus(EngineEnv{Seed: 1}), p2.Schema.NewDatabus(EngineEnv{Seed: 1})
	k := p1.Schema.Key("k")
	if k.Name() != "k" {
		t.Fatalf("name %q", k.Name())
	}
	if n, err := d1.GetIntKey(k); n != 7 || err != nil {
		t.Errorf("own schema: %d, %v", n, err)
	}
	if n, err := d2.GetIntKey(k); n != 9 || err != nil {
		t.Errorf("another schema: %d, %v (want its own value, by name)", n, err)
	}
	d1.Set("k", []any{int64(1), int64(2)})
	if l, ok, err := d1.GetIntListKey(k); !ok || err != nil || l.Len() != 2 || l.At(1) != 2 {
		t.Errorf("after a write: %v, %v, %v", l, ok, err)
	}
	if v, err := d1.GetKey(k); err != nil || len(v.([]any)) != 2 {
		t.Errorf("GetKey after a write: %v, %v", v, err)
	}
	if _, err := d1.GetKey(p1.Schema.Key("nope")); !errors.Is(err, ErrNoKey) {
		t.Errorf("a key not in the schema: %v", err)
	}
	if allocs := testing.AllocsPerRun(100, func() { _, _, _ = d1.GetIntListKey(k) }); allocs != 0 {
		t.Errorf("GetIntListKey: %v allocations", allocs)
	}
}

// TestLookup: a key the template defines is found (evaluated on first use), a written key
// outside the schema too, and an undefined one is absent without an error or an
// allocation.
func TestLookup(t *testing.T) {
	p := loadWithKey(t, `<value type="value">7</value>`)
	d := p.Schema.NewDatabus(EngineEnv{Seed: 1})
	if v, ok, err := d.Lookup("k"); !ok || err != nil || fmt.Sprint(v) != "7" {
		t.Errorf("template key: %v, %v, %v", v, ok, err)
	}
	if v, ok, err := d.Lookup("extra"); ok || err != nil || v != nil {
		t.Errorf("undefined key: %v, %v, %v", v, ok, err)
	}
	if n := testing.AllocsPerRun(100, func() { _, _, _ = d.Lookup("extra") }); n != 0 {
		t.Errorf("an undefined key's lookup allocates %v times", n)
	}
	d.Set("extra", []any{"a"})
	if v, ok, err := d.Lookup("extra"); !ok || err != nil || len(v.([]any)) != 1 {
		t.Errorf("written key outside the schema: %v, %v, %v", v, ok, err)
	}
}
