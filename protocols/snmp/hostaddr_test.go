package snmp

import (
	"strings"
	"testing"

	"github.com/gosnmp/gosnmp"
)

// TestHostAddrInstances walks the default persona's ipAddrTable and LLDP management
// address, whose instances are the host's own address (instance="@addr"): GET, GETNEXT and
// GETBULK see the host's address and step through the columns in order; another address
// is noSuchInstance.
func TestHostAddrInstances(t *testing.T) {
	a := newAgent(t, "default") // host 192.0.2.10
	const col = "1.3.6.1.2.1.4.20.1."
	get := decodeResp(t, a.do(request(t, version2c, "public", pduGet, 0, 0,
		vbSpec{oid: col + "1.192.0.2.10"}, vbSpec{oid: col + "3.192.0.2.10"}, vbSpec{oid: col + "1.192.0.2.11"})))
	if v := get.Variables; v[0].Value != "192.0.2.10" || v[1].Value != "255.255.255.0" || v[2].Type != gosnmp.NoSuchInstance {
		t.Fatalf("GET: %+v", v)
	}
	// GETNEXT from the table walks its five columns, then leaves it.
	oid := "1.3.6.1.2.1.4.20"
	var seen []string
	for range 6 {
		r := decodeResp(t, a.do(request(t, version2c, "public", pduGetNext, 0, 0, vbSpec{oid: oid})))
		oid = r.Variables[0].Name[1:]
		seen = append(seen, oid)
	}
	for i := range 5 {
		if want := col + string(rune('1'+i)) + ".192.0.2.10"; seen[i] != want {
			t.Fatalf("step %d: %s, want %s (walk %v)", i, seen[i], want, seen)
		}
	}
	if strings.HasPrefix(seen[5], col) || seen[5] < col {
		t.Fatalf("after the table: %s", seen[5])
	}
	// GETBULK from just before the LLDP management address table.
	r := decodeResp(t, a.do(request(t, version2c, "public", pduGetBulk, 0, 5, vbSpec{oid: "1.0.8802.1.1.2.1.3.8"})))
	want := []string{".1.0.8802.1.1.2.1.3.8.1.3.1.4.192.0.2.10", ".1.0.8802.1.1.2.1.3.8.1.4.1.4.192.0.2.10",
		".1.0.8802.1.1.2.1.3.8.1.5.1.4.192.0.2.10", ".1.0.8802.1.1.2.1.3.8.1.6.1.4.192.0.2.10"}
	for i, w := range want {
		if i >= len(r.Variables) || r.Variables[i].Name != w {
			t.Fatalf("GETBULK %d: %+v, want %s", i, r.Variables, w)
		}
	}
}

// TestHostAddrColumnAlone refuses a static instance beside an address instance of the
// same column: the address could sort on either side of it.
func TestHostAddrColumnAlone(t *testing.T) {
	tr := &tree{}
	tr.add(&object{oid: []uint32{1, 3, 6, 1, 2, 1, 4, 20, 1, 1}, typeLen: 10, name: "ipAdEntAddr.@addr", hostAddr: true})
	tr.add(&object{oid: []uint32{1, 3, 6, 1, 2, 1, 4, 20, 1, 1, 10, 0, 0, 1}, typeLen: 10, name: "ipAdEntAddr.10.0.0.1"})
	if err := tr.finish(); err == nil {
		t.Fatal("accepted")
	}
}
