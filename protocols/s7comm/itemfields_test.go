package s7comm

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"testing"
)

// mapItemFields is the items list as maps, which encoding/json renders with sorted keys:
// what AppendJSON must write.
func mapItemFields(l itemFields) []map[string]any {
	var out []map[string]any
	for _, f := range l {
		it := f.it
		m := map[string]any{"area": areaName(it.Area), "offset": it.ByteOffset(), "length": it.ByteLen(),
			"transport_size": int(it.TransportSize), "return_code": fmt.Sprintf("0x%02X", f.rc)}
		if it.Area == AreaDB || it.Area == AreaDI {
			m["db"] = int(it.DB)
		}
		if it.TransportSize == TSBit {
			m["bit"] = int(it.BitAddr & 7)
		}
		if it.Syntax != syntaxS7Any {
			m["syntax"] = int(it.Syntax)
		}
		if f.write {
			m["value"] = f.value
		}
		out = append(out, m)
	}
	return out
}

func TestItemFieldsJSON(t *testing.T) {
	for _, tc := range []struct {
		name string
		l    itemFields
	}{
		{"none", itemFields{}},
		{"read M", itemFields{{it: VarItem{Syntax: syntaxS7Any, TransportSize: TSByte, Count: 10, Area: AreaM, BitAddr: 8 * 4}, rc: RCSuccess}}},
		{"read DB bit and odd syntax", itemFields{
			{it: VarItem{Syntax: syntaxS7Any, TransportSize: TSBit, Count: 1, DB: 7, Area: AreaDB, BitAddr: 8*3 + 5}, rc: RCSuccess},
			{it: VarItem{Syntax: 0xb2, TransportSize: TSWord, Count: 2, DB: 65535, Area: AreaDI}, rc: 0x0a},
			{it: VarItem{Syntax: syntaxS7Any, TransportSize: TSByte, Count: 1, Area: 0x42}, rc: 0x05},
		}},
		{"write", itemFields{{it: VarItem{Syntax: syntaxS7Any, TransportSize: TSByte, Count: 2, Area: AreaM}, rc: RCSuccess,
			value: hex.EncodeToString([]byte{0xde, 0xad}), write: true}}},
	} {
		want, err := json.Marshal(mapItemFields(tc.l))
		if err != nil {
			t.Fatal(err)
		}
		if len(tc.l) == 0 {
			want = []byte("[]")
		}
		if got := tc.l.AppendJSON(nil); string(got) != string(want) {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, want)
		}
		if got, _ := json.Marshal(tc.l); string(got) != string(want) {
			t.Errorf("%s: MarshalJSON %s, want %s", tc.name, got, want)
		}
	}
}

func BenchmarkItemFieldsJSON(b *testing.B) {
	l := itemFields{{it: VarItem{Syntax: syntaxS7Any, TransportSize: TSByte, Count: 10, Area: AreaM}, rc: RCSuccess}}
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = l.AppendJSON(buf[:0])
	}
}
