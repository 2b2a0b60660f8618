package snmp

import (
	"strings"
	"testing"

	"github.com/icsnare/icsnare/profiles"
)

func TestRawSymbols(t *testing.T) {
	const head = "<snmp enabled=\"True\">\n<config><entity name=\"community\">public</entity></config>\n<mibs>\n<mib name=\"SNMPv2-SMI\">\n"
	body := `<symbol oid="1.3.6.1.4.1.2021.10.1.2.1" type="OctetString"><value>Load-1</value></symbol>
<symbol oid="1.3.6.1.4.1.99.1.0" type="HexString"><value>00:1b:1b:01:02:03</value></symbol>
<symbol oid="1.3.6.1.4.1.99.2.0" type="Counter64"><value>5</value><engine type="randominc">1:10:100000</engine></symbol>
<symbol oid="1.3.6.1.4.1.99.3.0" type="IpAddress"><value>192.0.2.1</value></symbol>
<symbol oid="1.3.6.1.4.1.99.4.0" type="ObjectIdentifier"><value>1.3.6.1.4.1.4329</value></symbol>
<symbol oid="1.3.6.1.4.1.99.5.0" type="OctetString"><value>sysDescr</value></symbol>
<symbol oid="1.3.6.1.4.1.99.6.0" type="Integer"><value>7</value><engine type="warp">1</engine></symbol>
`
	dir := writeProfile(t, head+body+"</mib>\n</mibs>\n</snmp>\n")
	p, err := profiles.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := protocol{}.Configure(p.Sections["snmp"], testOptions())
	if err != nil {
		t.Fatal(err)
	}
	if w := strings.Join(p.Warnings(), "\n"); !strings.Contains(w, "unknown engine type") {
		t.Errorf("no warning for the unknown engine: %q", w)
	}
	tr := svc.(*service).tree
	want := map[string]struct {
		tag  byte
		hint string
		key  string
	}{
		"1.3.6.1.4.1.2021.10.1.2.1": {tagOctetString, "", "snmp.SNMPv2-SMI::1.3.6.1.4.1.2021.10.1.2.1"},
		"1.3.6.1.4.1.99.1.0":        {tagOctetString, "1x:", "snmp.SNMPv2-SMI::1.3.6.1.4.1.99.1.0"},
		"1.3.6.1.4.1.99.2.0":        {tagCounter64, "", "snmp.SNMPv2-SMI::1.3.6.1.4.1.99.2.0"},
		"1.3.6.1.4.1.99.3.0":        {tagIPAddress, "", "snmp.SNMPv2-SMI::1.3.6.1.4.1.99.3.0"},
		"1.3.6.1.4.1.99.4.0":        {tagOID, "", "snmp.SNMPv2-SMI::1.3.6.1.4.1.99.4.0"},
		"1.3.6.1.4.1.99.5.0":        {tagOctetString, "", "sysDescr"}, // a databus key
		"1.3.6.1.4.1.99.6.0":        {tagInteger, "", "snmp.SNMPv2-SMI::1.3.6.1.4.1.99.6.0"},
	}
	found := 0
	for _, o := range tr.objs {
		w, ok := want[oidString(o.oid)]
		if !ok {
			continue
		}
		found++
		if o.tag != w.tag || o.hint != w.hint || o.key != w.key {
			t.Errorf("%s: tag %#x hint %q key %q, want %#x %q %q", oidString(o.oid), o.tag, o.hint, o.key, w.tag, w.hint, w.key)
		}
	}
	if found != len(want) {
		t.Errorf("%d of %d raw objects in the tree", found, len(want))
	}

	for _, tc := range []struct{ name, sym, want string }{
		{"bad oid", `<symbol oid="1.3.x" type="Integer"><value>1</value></symbol>`, "oid"},
		{"short oid", `<symbol oid="1" type="Integer"><value>1</value></symbol>`, "sub-identifiers"},
		{"bad type", `<symbol oid="1.3.6.1.4.1.99.1.0" type="Float"><value>1</value></symbol>`, "one of"},
		{"bad value", `<symbol oid="1.3.6.1.4.1.99.1.0" type="Integer"><value>many</value></symbol>`, "neither a databus key"},
		{"bad address", `<symbol oid="1.3.6.1.4.1.99.1.0" type="IpAddress"><value>300.1.1.1</value></symbol>`, "neither a databus key"},
		{"no value", `<symbol oid="1.3.6.1.4.1.99.1.0" type="Integer"></symbol>`, "neither <value> nor <engine>"},
		{"clash with a builtin", `<symbol oid="1.3.6.1.2.1.11.1.0" type="Counter32"><value>1</value></symbol>`, "same OID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeProfile(t, head+tc.sym+"\n</mib>\n</mibs>\n</snmp>\n")
			p, err := profiles.Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := (protocol{}).Configure(p.Sections["snmp"], testOptions()); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestNamer(t *testing.T) {
	n, err := NewNamer(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		oid  []uint32
		want OIDName
		ok   bool
	}{
		{[]uint32{1, 3, 6, 1, 2, 1, 1, 5, 0}, OIDName{"SNMPv2-MIB", "sysName", "0", "OctetString"}, true},
		{[]uint32{1, 3, 6, 1, 2, 1, 1, 3, 0}, OIDName{"SNMPv2-MIB", "sysUpTime", "0", "TimeTicks"}, true},
		{[]uint32{1, 3, 6, 1, 2, 1, 2, 2, 1, 6, 3}, OIDName{"IF-MIB", "ifPhysAddress", "3", "HexString"}, true},
		{[]uint32{1, 3, 6, 1, 2, 1, 2, 2, 1, 10, 1}, OIDName{"IF-MIB", "ifInOctets", "1", "Counter32"}, true},
		{[]uint32{1, 3, 6, 1, 2, 1, 1, 5, 1}, OIDName{}, false},           // a scalar's instance is 0
		{[]uint32{1, 3, 6, 1, 2, 1, 1, 5}, OIDName{}, false},              // the type, not an instance
		{[]uint32{1, 3, 6, 1, 4, 1, 2021, 10, 1, 2, 1}, OIDName{}, false}, // no module loaded
		{[]uint32{1, 3, 6, 1, 2, 1, 2, 2, 1}, OIDName{}, false},           // a table entry
	} {
		got, ok := n.Name(tc.oid)
		if ok != tc.ok || got != tc.want {
			t.Errorf("%s: %+v %v, want %+v %v", oidString(tc.oid), got, ok, tc.want, tc.ok)
		}
	}
	if _, err := NewNamer([]string{"/nonexistent-mib-dir"}); err == nil {
		t.Error("a missing MIB directory was accepted")
	}
}
