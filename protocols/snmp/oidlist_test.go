package snmp

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func TestOIDListField(t *testing.T) {
	var vbs []varbind
	var want []string
	for _, s := range []string{"1.3.6.1.2.1.1.1.0", "1.3.6.1.4.1.4294967295.7", "2.999.3", "0.0"} {
		oid, err := parseOIDString(s)
		if err != nil {
			t.Fatal(err)
		}
		vbs = append(vbs, varbind{oid: appendOIDContent(nil, oid)})
		want = append(want, s)
	}
	vbs = append(vbs, varbind{oid: []byte{0x2b, 0x86}}, varbind{oid: nil}) // truncated, empty
	want = append(want, "?", "?")
	l := newOIDList(vbs)
	vbs[0].oid[0] = 0xff // the request buffer is reused: the field keeps its own copy
	if got := l.Strings(); !slices.Equal(got, want) {
		t.Fatalf("Strings %q, want %q", got, want)
	}
	var decoded []string
	if err := json.Unmarshal(l.AppendJSON(nil), &decoded); err != nil || !slices.Equal(decoded, want) {
		t.Fatalf("AppendJSON %s (%v), want %q", l.AppendJSON(nil), err, want)
	}
	if j, _ := json.Marshal(l); string(j) != string(l.AppendJSON(nil)) {
		t.Fatalf("MarshalJSON %s", j)
	}
	many := make([]varbind, maxEventOIDs+5)
	for i := range many {
		many[i].oid = vbs[1].oid
	}
	if n := len(newOIDList(many).Strings()); n != maxEventOIDs {
		t.Fatalf("%d OIDs kept, want %d", n, maxEventOIDs)
	}
	if got := (oidList{}).AppendJSON(nil); string(got) != "[]" {
		t.Fatalf("empty list %s", got)
	}
}

func BenchmarkOIDListField(b *testing.B) {
	oid, _ := parseOIDString("1.3.6.1.2.1.1.1.0")
	vbs := []varbind{{oid: appendOIDContent(nil, oid)}}
	buf := make([]byte, 0, 128)
	b.ReportAllocs()
	for b.Loop() {
		buf = newOIDList(vbs).AppendJSON(buf[:0])
	}
}

// TestAppendOIDString checks the OID text parser: what it accepts, what it refuses, the
// 128 sub-identifier bound, and that it appends to a caller's buffer without touching what
// the buffer already holds.
func TestAppendOIDString(t *testing.T) {
	long := strings.Repeat("1.", maxOIDLen-1) + "1"
	cases := []struct {
		in   string
		want []uint32 // nil: refused
	}{
		{"1.3.6.1", []uint32{1, 3, 6, 1}},
		{".1.3.6.1.4.1.4294967295", []uint32{1, 3, 6, 1, 4, 1, 4294967295}},
		{"0", []uint32{0}},
		{"", nil},
		{".", nil},
		{"1..3", nil},
		{"1.3.", nil},
		{"1.3a", nil},
		{"1.4294967296", nil},
		{long, slices.Repeat([]uint32{1}, maxOIDLen)},
		{long + ".1", nil},
	}
	for _, c := range cases {
		buf := []uint32{7, 7}
		got, err := appendOIDString(buf, c.in)
		if c.want == nil {
			if err == nil {
				t.Errorf("%.40q: %v, want an error", c.in, got)
			}
			continue
		}
		if err != nil || !slices.Equal(got, append([]uint32{7, 7}, c.want...)) {
			t.Errorf("%.40q: %v, %v; want 7 7 then %v", c.in, got, err, c.want)
		}
	}
	var buf [32]uint32
	if n := testing.AllocsPerRun(100, func() { _, _ = appendOIDString(buf[:0], "1.3.6.1.4.1.311.1.1.3.1.2") }); n != 0 {
		t.Errorf("%v allocations into a buffer that fits", n)
	}
}
