package snmp

import (
	"strings"
	"testing"
)

func TestWalksAgree(t *testing.T) {
	srv, _ := serve(t, "default", "127.0.0.1:0")
	v1, err := netsnmp(t, "snmpwalk", "-v1", "-c", "public", target(srv), ".1")
	if err != nil {
		t.Fatalf("snmpwalk -v1: %v", err)
	}
	v2, err := netsnmp(t, "snmpwalk", "-v2c", "-c", "public", target(srv), ".1")
	if err != nil {
		t.Fatalf("snmpwalk -v2c: %v", err)
	}
	bulk, err := netsnmp(t, "snmpbulkwalk", "-v2c", "-c", "public", "-Cr10", target(srv), ".1")
	if err != nil {
		t.Fatalf("snmpbulkwalk: %v", err)
	}
	a, b, c := oidsOf(v1), oidsOf(v2), oidsOf(bulk)
	if len(a) < 30 {
		t.Fatalf("v1 walk returned %d objects", len(a))
	}
	if strings.Join(a, " ") != strings.Join(b, " ") || strings.Join(b, " ") != strings.Join(c, " ") {
		t.Fatalf("walks differ:\nv1 %v\nv2c %v\nbulk %v", a, b, c)
	}
	for i := 1; i < len(a); i++ {
		if compareOID(mustOID(t, a[i-1]), mustOID(t, a[i])) >= 0 {
			t.Fatalf("walk not in lexicographic order at %s, %s", a[i-1], a[i])
		}
	}
	for _, out := range []string{v2, bulk} {
		if !strings.Contains(out, "No more variables left in this MIB View") {
			t.Errorf("v2c walk did not end with endOfMibView:\n%s", out)
		}
	}
}
