package profiles

import (
	"errors"
	"math"
	"reflect"
	"testing"
	"time"
)

func TestValueRoundTrip(t *testing.T) {
	cases := []any{
		nil, true, false, int64(0), int64(-1), int64(math.MaxInt64), int64(math.MinInt64), 3.25, math.Inf(-1),
		"", "Halle 4, Schrank 12", []byte{0, 1, 0xff}, []any{}, []any{int64(1), int64(0), true, "x", 1.5},
		[]any{[]any{int64(1)}, []any{}},
	}
	for _, v := range cases {
		b, err := AppendValue(nil, v)
		if err != nil {
			t.Fatalf("%#v: %v", v, err)
		}
		got, err := DecodeValue(b)
		if err != nil || !reflect.DeepEqual(got, v) {
			t.Errorf("%#v: decoded %#v, %v", v, got, err)
		}
		for i := range b { // every truncation is an error, never a panic
			if _, err := DecodeValue(b[:i]); err == nil {
				t.Errorf("%#v truncated to %d bytes decoded", v, i)
			}
		}
	}
	if b, _ := AppendValue(nil, 7); b[0] != tagInt {
		t.Error("int not stored as an integer")
	}
}

func TestValueRejects(t *testing.T) {
	deep := any(int64(1))
	for range maxValueDepth + 1 {
		deep = []any{deep}
	}
	for _, v := range []any{map[string]any{}, DynamicFunc(func(time.Time) any { return 1 }), deep} {
		if _, err := AppendValue(nil, v); !errors.Is(err, ErrValueType) {
			t.Errorf("%T: err %v", v, err)
		}
	}
	for _, b := range [][]byte{{99}, {tagList, 0xff, 0xff, 0xff, 0x0f}, {tagString, 5, 'a'}, {tagInt, 0x80}, {tagNil, tagNil}} {
		if _, err := DecodeValue(b); err == nil {
			t.Errorf("% x decoded", b)
		}
	}
}

func TestDatabusWriteHookInitRestore(t *testing.T) {
	p, err := Open(DefaultName)
	if err != nil {
		t.Fatal(err)
	}
	db := p.Schema.NewDatabus(EngineEnv{Seed: 1})
	type write struct {
		key string
		v   any
	}
	var seen []write
	db.SetWriteHook(func(k string, v any) { seen = append(seen, write{k, v}) })
	db.Restore("sysLocation", "kept")
	db.Init("sysLocation", "protocol default") // a kept write wins over start-up values
	db.Init("sysContact", "protocol default")
	db.Set("sysName", "pwned")
	if err := db.Update("sysName", func(cur any) (any, error) { return cur.(string) + "!", nil }); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		key, want string
		written   bool
	}{
		{"sysLocation", "kept", true}, {"sysContact", "protocol default", false}, {"sysName", "pwned!", true},
	}
	for _, s := range steps {
		if v, _ := db.GetString(s.key); v != s.want || db.Written(s.key) != s.written {
			t.Errorf("%s = %q written %v, want %q %v", s.key, v, db.Written(s.key), s.want, s.written)
		}
	}
	want := []write{{"sysName", "pwned"}, {"sysName", "pwned!"}}
	if !reflect.DeepEqual(seen, want) {
		t.Errorf("hook saw %v, want %v (Restore and Init are not writes)", seen, want)
	}
}
