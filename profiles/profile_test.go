package profiles

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestDefaultProfileLoads(t *testing.T) {
	p, err := Open(DefaultName)
	if err != nil {
		t.Fatal(err)
	}
	if p.Meta.Vendor != "Siemens" || p.Meta.Unit != "S7-300 CPU 315-2 PN/DP" {
		t.Fatalf("meta = %+v", p.Meta)
	}
	if w := p.Warnings(); len(w) != 0 {
		t.Fatalf("warnings: %v", w)
	}
	for _, k := range p.Schema.Keys() {
		db := p.Schema.NewDatabus(EngineEnv{Seed: 42})
		if _, err := db.Get(k); err != nil {
			t.Errorf("key %s: %v", k, err)
		}
	}
}

func TestPerHostValuesAreStableAndDistinct(t *testing.T) {
	p, err := Open(DefaultName)
	if err != nil {
		t.Fatal(err)
	}
	get := func(seed uint64, key string) string {
		v, err := p.Schema.NewDatabus(EngineEnv{Seed: seed}).GetString(key)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if a, b := get(1, "s7_id"), get(1, "s7_id"); a != b {
		t.Fatalf("same seed gave %q and %q", a, b)
	}
	distinct := map[string]bool{}
	for s := uint64(0); s < 20; s++ {
		distinct[get(s, "s7_id")] = true
	}
	if len(distinct) < 19 {
		t.Fatalf("20 hosts share serial numbers: %v", distinct)
	}
	if v := get(3, "s7_id"); !strings.HasPrefix(v, "S C-") || len(v) != 16 {
		t.Fatalf("serial %q has the wrong shape", v)
	}
}

func TestDatabusUpdateAndSet(t *testing.T) {
	p, err := Open(DefaultName)
	if err != nil {
		t.Fatal(err)
	}
	db := p.Schema.NewDatabus(EngineEnv{Seed: 7})
	err = db.Update("memoryModbusHoldingRegisters", func(cur any) (any, error) {
		l := append([]any(nil), cur.([]any)...)
		l[5] = int64(1234)
		return l, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	v, _ := db.Get("memoryModbusHoldingRegisters")
	if v.([]any)[5] != int64(1234) {
		t.Fatalf("update lost: %v", v)
	}
	db.Set("sysLocation", "Halle 7")
	if s, _ := db.GetString("sysLocation"); s != "Halle 7" {
		t.Fatalf("set lost: %q", s)
	}
	if _, err := db.Get("nope"); !errors.Is(err, ErrNoKey) {
		t.Fatalf("missing key: %v", err)
	}
}

func TestStarlarkRandomModule(t *testing.T) {
	cases := []struct {
		expr string
		ok   func(any) bool
	}{
		{"random.randint(3, 3)", func(v any) bool { return v == int64(3) }},
		{"random.randrange(10, 20, 5)", func(v any) bool { return v == int64(10) || v == int64(15) }},
		{"random.randrange(4)", func(v any) bool { x := v.(int64); return x >= 0 && x < 4 }},
		{"random.choice(['a'])", func(v any) bool { return v == "a" }},
		{"random.uniform(1.0, 1.0)", func(v any) bool { return v == 1.0 }},
		{"random.random() < 1.0", func(v any) bool { return v == true }},
		{"random.getrandbits(8) < 256", func(v any) bool { return v == true }},
		{"[random.randint(0,1) for b in range(0,128)]", func(v any) bool { return len(v.([]any)) == 128 }},
		{"round(2.5)", func(v any) bool { return v == int64(2) }},
		{"{'a': 1}", func(v any) bool { return v.(map[string]any)["a"] == int64(1) }},
	}
	for _, c := range cases {
		e, err := CompileExpr("t", c.expr)
		if err != nil {
			t.Fatalf("%s: %v", c.expr, err)
		}
		v, err := e.Eval(99)
		if err != nil {
			t.Fatalf("%s: %v", c.expr, err)
		}
		if !c.ok(v) {
			t.Errorf("%s = %#v", c.expr, v)
		}
	}
}

func TestExpressionsCannotEscape(t *testing.T) {
	for _, src := range []string{
		`open("/etc/passwd")`,
		`__import__("os").system("id")`,
		`[x for x in range(100000000)]`, // bounded by the step limit
		`load("x", "y")`,
	} {
		e, err := CompileExpr("t", src)
		if err != nil {
			continue
		}
		if _, err := e.Eval(1); err == nil {
			t.Errorf("%s: evaluated without error", src)
		}
	}
}

func TestBrokenTemplatesNameFileAndLine(t *testing.T) {
	cases := []struct {
		name, xml, want string
	}{
		{"malformed", "<core>\n<databus>\n</core>", "template.xml:3"},
		{"bad expression", "<core><databus><key_value_mappings>\n<key name=\"a\">\n<value type=\"value\">1 +</value></key></key_value_mappings></databus></core>", "template.xml:3: <value>"},
		{"runtime error", "<core><databus><key_value_mappings>\n\n<key name=\"a\"><value type=\"value\">1 // 0</value></key></key_value_mappings></databus></core>", "template.xml:3"},
		{"unknown function", "<core><databus><key_value_mappings>\n<key name=\"a\"><value type=\"function\">conpot.nope.Nope</value></key></key_value_mappings></databus></core>", "Conpot's databus function \"conpot.nope.Nope\" is not implemented"},
		{"unknown non-Conpot function", "<core><databus><key_value_mappings>\n<key name=\"a\"><value type=\"function\">mine.Nope</value></key></key_value_mappings></databus></core>", "unknown function"},
		{"duplicate key", "<core><databus><key_value_mappings>\n<key name=\"a\"><value type=\"value\">1</value></key>\n<key name=\"a\"><value type=\"value\">2</value></key></key_value_mappings></databus></core>", "template.xml:3: <key>: duplicate"},
		{"bad type", "<core><databus><key_value_mappings>\n<key name=\"a\"><value type=\"eval\">1</value></key></key_value_mappings></databus></core>", "neither"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "template.xml"), []byte(c.xml), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := LoadDir(dir)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want it to contain %q", err, c.want)
			}
		})
	}
}

func TestSectionsAndWarnings(t *testing.T) {
	dir := t.TempDir()
	write := func(rel, s string) {
		p := filepath.Join(dir, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("template.xml", "<core><template><entity name=\"unit\">X</entity><entity name=\"colour\">red</entity></template><bogus/></core>")
	write("modbus/modbus.xml", "<modbus enabled=\"True\" host=\"0.0.0.0\" port=\"5020\"><mode>tcp</mode></modbus>")
	write("snmp/snmp.xml", "<snmp enabled=\"False\"/>")
	write("enip/enip.xml", "<enip enabled=\"maybe\"/>")
	if _, err := LoadDir(dir); err == nil || !strings.Contains(err.Error(), "enip.xml:1: <enip>") {
		t.Fatalf("bad enabled: %v", err)
	}
	os.Remove(filepath.Join(dir, "enip/enip.xml"))
	p, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if s := p.Sections["modbus"]; s == nil || s.Port != 5020 || s.Root.Child("mode").TextTrim() != "tcp" {
		t.Fatalf("modbus section: %+v", s)
	}
	if _, ok := p.Sections["snmp"]; ok || len(p.Disabled) != 1 {
		t.Fatalf("disabled section handled wrongly: %v", p.Disabled)
	}
	if w := p.Warnings(); len(w) != 2 {
		t.Fatalf("warnings = %v", w)
	}
}

// TestDatabusConcurrentReadersAndWriters: readers that take no lock see each key's writes in
// order while other keys are materialised and written beside them, and no write is lost
// to a concurrent materialisation (run it with -race).
func TestDatabusConcurrentReadersAndWriters(t *testing.T) {
	p, err := Open(DefaultName)
	if err != nil {
		t.Fatal(err)
	}
	db := p.Schema.NewDatabus(EngineEnv{Seed: 11})
	keys := p.Schema.Keys()
	if len(keys) < 8 {
		t.Fatalf("the default profile has %d databus keys", len(keys))
	}
	written, others := keys[:4], keys[4:]
	const writes = 500
	var wg sync.WaitGroup
	for _, k := range written {
		wg.Go(func() {
			for i := range writes {
				db.Set(k, int64(i))
			}
		})
		wg.Go(func() { // a reader of the same key: never a value older than one it saw
			last := int64(-1)
			for range writes {
				v, err := db.Get(k)
				if err != nil {
					t.Error(err)
					return
				}
				if n, ok := v.(int64); ok {
					if n < last {
						t.Errorf("%s: read %d after %d", k, n, last)
						return
					}
					last = n
				}
			}
		})
	}
	for g := range 4 {
		wg.Go(func() { // materialise every other key, in a different order each
			for i := range others {
				if _, err := db.Get(others[(i*(g+1))%len(others)]); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	for _, k := range written {
		if v, err := db.Get(k); err != nil || v != int64(writes-1) {
			t.Errorf("%s = %v, %v; want the last write %d", k, v, err, writes-1)
		}
		if !db.Written(k) {
			t.Errorf("%s not marked written", k)
		}
	}
}

// BenchmarkDatabusGetIntListParallel reads one host's Modbus registers from every CPU, as
// the connections of one busy host do.
func BenchmarkDatabusGetIntListParallel(b *testing.B) {
	p, err := Open(DefaultName)
	if err != nil {
		b.Fatal(err)
	}
	db := p.Schema.NewDatabus(EngineEnv{Seed: 3})
	const key = "memoryModbusHoldingRegisters"
	if _, ok, err := db.GetIntList(key); err != nil || !ok {
		b.Fatalf("%s: not a compact list (%v)", key, err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, _, err := db.GetIntList(key); err != nil {
				b.Fatal(err)
			}
		}
	})
}
