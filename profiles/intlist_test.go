package profiles

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestCompactList(t *testing.T) {
	cases := []struct {
		name  string
		in    any
		width string // "u1", "u8", "u16", "i64" or "" (left as it was)
	}{
		{"bits", []any{int64(0), int64(1), int64(1)}, "u1"},
		{"bytes", []any{int64(0), int64(2), int64(255)}, "u8"},
		{"registers", []any{int64(0), int64(65535), int64(300)}, "u16"},
		{"negative", []any{int64(-1), int64(2)}, "i64"},
		{"large", []any{int64(1 << 40)}, "i64"},
		{"mixed", []any{int64(1), "x"}, ""},
		{"floats", []any{1.5}, ""},
		{"empty", []any{}, ""},
		{"scalar", int64(7), ""},
	}
	for _, c := range cases {
		got := compactList(c.in)
		l, ok := got.(*IntList)
		if c.width == "" {
			if ok || !reflect.DeepEqual(got, c.in) {
				t.Errorf("%s: %#v became %#v", c.name, c.in, got)
			}
			continue
		}
		w := map[string]bool{"u1": l.width == 1, "u8": l.width == 8, "u16": l.width == 16, "i64": l.width == 64}
		if !ok || !w[c.width] {
			t.Fatalf("%s: %#v, want an IntList of %s", c.name, got, c.width)
		}
		if !reflect.DeepEqual(l.List(), c.in) || l.Len() != len(c.in.([]any)) {
			t.Errorf("%s: List() = %v, want %v", c.name, l.List(), c.in)
		}
	}
}

// TestDatabusCompactLists: a template's number list is kept compact, read through Get as a
// fresh []any (changing it changes nothing), through GetIntList in place, and replaced by
// the []any an Update returns, itself kept compact.
func TestDatabusCompactLists(t *testing.T) {
	dir := t.TempDir()
	xml := `<core><databus><key_value_mappings>
<key name="regs"><value type="value">[random.randint(0, 9) for i in range(8)] + [70000]</value></key>
<key name="text"><value type="value">["a", "b"]</value></key>
</key_value_mappings></databus></core>`
	if err := os.WriteFile(filepath.Join(dir, "template.xml"), []byte(xml), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	db := p.Schema.NewDatabus(EngineEnv{Seed: 1})
	il, ok, err := db.GetIntList("regs")
	if err != nil || !ok || il.Len() != 9 || il.At(8) != 70000 {
		t.Fatalf("GetIntList = %v, %v, %v", il, ok, err)
	}
	v, _ := db.Get("regs")
	l := v.([]any)
	l[0] = int64(-5)
	if il.At(0) == -5 {
		t.Fatal("Get returned the stored list, not a copy")
	}
	if _, ok, _ := db.GetIntList("text"); ok {
		t.Fatal("a list of strings reported as IntList")
	}
	err = db.Update("regs", func(cur any) (any, error) {
		c := append([]any(nil), cur.([]any)...)
		c[1] = int64(42)
		return c, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if w, ok, _ := db.GetIntList("regs"); !ok || w == il || w.At(1) != 42 {
		t.Fatal("a written list of numbers is not kept compact, or is still the template's")
	}
	if v, _ := db.Get("regs"); v.([]any)[1] != int64(42) || v.([]any)[8] != int64(70000) {
		t.Fatalf("after Update: %v", v)
	}
}

// TestIntListPacking reads back every element of lists of each width and of lengths that do
// not fill their last word.
func TestIntListPacking(t *testing.T) {
	for _, hi := range []int64{1, 255, 65535, 1 << 40} {
		for _, n := range []int{1, 7, 63, 64, 65, 129} {
			in := make([]any, n)
			for i := range in {
				in[i] = (int64(i)*2654435761 + 12345) % (hi + 1)
			}
			in[n-1] = hi
			l, ok := compactList(in).(*IntList)
			if !ok {
				t.Fatalf("max %d len %d: not compacted", hi, n)
			}
			if !reflect.DeepEqual(l.List(), in) {
				t.Fatalf("max %d len %d: %v, want %v", hi, n, l.List(), in)
			}
		}
	}
	neg := []any{int64(-5), int64(1 << 62), int64(-1 << 63)}
	if l := compactList(neg).(*IntList); !reflect.DeepEqual(l.List(), neg) {
		t.Fatalf("%v became %v", neg, l.List())
	}
}

// TestDatabusKeysOutsideTheSchema: keys a protocol adds (Init) or a write creates live beside
// the schema's, keep whether they were written, and are listed by Keys.
func TestDatabusKeysOutsideTheSchema(t *testing.T) {
	p := loadWithKey(t, `<value type="value">7</value>`)
	db := p.Schema.NewDatabus(EngineEnv{Seed: 1})
	for _, k := range []string{"snmp.z", "snmp.a", "snmp.m"} {
		db.Init(k, k)
	}
	db.Set("snmp.m", "written")
	db.Init("snmp.m", "start-up value") // a write wins
	db.Restore("snmp.b", []any{int64(1), int64(0)})
	for _, c := range []struct {
		key     string
		want    string
		written bool
	}{{"snmp.a", "snmp.a", false}, {"snmp.b", "[1, 0]", true}, {"snmp.m", "written", true}, {"snmp.z", "snmp.z", false}, {"k", "7", false}} {
		if v, err := db.GetString(c.key); err != nil || v != c.want || db.Written(c.key) != c.written {
			t.Errorf("%s = %q (%v), written %v; want %q, %v", c.key, v, err, db.Written(c.key), c.want, c.written)
		}
	}
	if got := db.Keys(); !reflect.DeepEqual(got, []string{"k", "snmp.a", "snmp.b", "snmp.m", "snmp.z"}) {
		t.Errorf("Keys() = %v", got)
	}
	if _, err := db.Get("nope"); err == nil {
		t.Error("an unknown key read without error")
	}
}

// BenchmarkIntListAt reads ten registers of a Modbus-style u16 block, as an FC 3 read does.
func BenchmarkIntListAt(b *testing.B) {
	in := make([]any, 100)
	for i := range in {
		in[i] = int64(i * 300)
	}
	l := compactList(in).(*IntList)
	var s int64
	for b.Loop() {
		for i := 40; i < 50; i++ {
			s += l.At(i)
		}
	}
	if s == 0 {
		b.Fatal("nothing read")
	}
}

// TestIntListAppendBE16 checks the bulk register encoding against At for every width,
// range and word boundary, and that a range out of bounds panics.
func TestIntListAppendBE16(t *testing.T) {
	for _, hi := range []int64{1, 255, 65535, 1 << 40} {
		in := make([]any, 130)
		for i := range in {
			in[i] = (int64(i)*2654435761 + 12345) % (hi + 1)
		}
		l := compactList(in).(*IntList)
		for _, r := range [][2]int{{0, 0}, {0, 130}, {3, 10}, {60, 9}, {63, 2}, {127, 3}, {130, 0}} {
			var want []byte
			for i := r[0]; i < r[0]+r[1]; i++ {
				v := l.At(i)
				want = append(want, byte(v>>8), byte(v))
			}
			got := l.AppendBE16([]byte{0xee}, r[0], r[1])
			if !reflect.DeepEqual(got, append([]byte{0xee}, want...)) {
				t.Errorf("max %d [%d:+%d]: % x, want % x", hi, r[0], r[1], got[1:], want)
			}
		}
		for _, r := range [][2]int{{-1, 2}, {129, 2}, {0, 131}, {5, -1}} {
			func() {
				defer func() {
					if recover() == nil {
						t.Errorf("max %d [%d:+%d]: no panic", hi, r[0], r[1])
					}
				}()
				l.AppendBE16(nil, r[0], r[1])
			}()
		}
	}
}
