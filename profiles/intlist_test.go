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
		width string // "u8", "u16", "i64" or "" (left as it was)
	}{
		{"bits", []any{int64(0), int64(1), int64(1)}, "u8"},
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
		w := map[string]bool{"u8": l.u8 != nil, "u16": l.u16 != nil, "i64": l.i64 != nil}
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
// the []any an Update returns.
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
	if _, ok, _ := db.GetIntList("regs"); ok {
		t.Fatal("a written list is still the template's compact one")
	}
	if v, _ := db.Get("regs"); v.([]any)[1] != int64(42) || v.([]any)[8] != int64(70000) {
		t.Fatalf("after Update: %v", v)
	}
}
