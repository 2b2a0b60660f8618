package iec104

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// TestTemplate: the IEC104 template's registers map to the octets conpot.md states.
func TestTemplate(t *testing.T) {
	svc, _ := configure(t, "IEC104")
	for name, octets := range map[string]ioa{"22_20": {0x00, 0x16, 0x14}, "13_20": {0x00, 0x0d, 0x14}, "109_41": {0x00, 0x6d, 0x29}} {
		p := svc.cfg.points[octets]
		if p == nil || p.name != name {
			t.Errorf("%s is not at % x", name, octets[:])
		}
	}
	if p := svc.cfg.points[ioa{0, 22, 20}]; p.rel == nil || p.rel.name != "13_20" {
		t.Fatal("22_20 has no relation to 13_20")
	}
	if a, _ := parseIOAName("300_7"); a != (ioa{0x01, 0x2c, 0x07}) {
		t.Fatalf("300_7 -> % x", a[:])
	}
}

// TestConfigErrors: bad registers are errors naming file and line.
func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{`<category id="2"><register name="1_1"><value>a</value></register></category>`, "category id \"2\""},
		{`<category id="1"><register name="1-1"><value>a</value></register></category>`, "IEC104.xml:3: <register>"},
		{`<category id="1"><register name="70000_1"><value>a</value></register></category>`, "not an address"},
		{`<category id="1"><register name="1_1"><value>nope</value></register></category>`, "databus key \"nope\""},
		{`<category id="1"><register name="1_1"><value>two</value></register></category>`, "single points are 0 or 1"},
		{`<category id="3"><register name="1_1"><value>five</value></register></category>`, "double points are 0 to 3"},
		{`<category id="45"><register name="1_1" rel="9_9"><value>a</value></register></category>`, "names no register"},
		{`<category id="1"><register name="2_2"><value>a</value></register></category><category id="46"><register name="1_1" rel="2_2"><value>a</value></register></category>`, "not 3"},
		{`<category id="1"><register name="1_1"><value>a</value></register><register name="1_1"><value>a</value></register></category>`, "has the address"},
		{`<category id="1"><register name="1_1" group="17"><value>a</value></register></category>`, "group"},
	} {
		dir := t.TempDir()
		os.MkdirAll(filepath.Join(dir, "IEC104"), 0o755)
		os.WriteFile(filepath.Join(dir, "template.xml"), []byte(`<core><databus><key_value_mappings>
<key name="a"><value type="value">1</value></key><key name="two"><value type="value">2</value></key>
<key name="five"><value type="value">5</value></key></key_value_mappings></databus></core>`), 0o644)
		os.WriteFile(filepath.Join(dir, "IEC104", "IEC104.xml"), []byte("<IEC104 enabled=\"True\">\n<categories>\n"+tc.body+"\n</categories></IEC104>"), 0o644)
		p, err := profiles.LoadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		_, err = protocol{}.Configure(p.Sections[Name], nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.body, err, tc.want)
		}
	}
}

// TestCommonAddressPerHost: without a CommonAddress in the template every host draws its
// own; with one, every host has it.
func TestCommonAddressPerHost(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "IEC104"), 0o755)
	os.WriteFile(filepath.Join(dir, "template.xml"), []byte(`<core><databus><key_value_mappings>
<key name="a"><value type="value">1</value></key></key_value_mappings></databus></core>`), 0o644)
	os.WriteFile(filepath.Join(dir, "IEC104", "IEC104.xml"), []byte(`<IEC104 enabled="True"><categories>
<category id="1"><register name="1_1"><value>a</value></register></category></categories></IEC104>`), 0o644)
	p, err := profiles.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := protocol{}.Configure(p.Sections[Name], nil)
	if err != nil {
		t.Fatal(err)
	}
	s := svc.(*service)
	a := s.params(protocoltest.Host(p, netip.MustParseAddr("198.18.70.1"), 1)).ca
	b := s.params(protocoltest.Host(p, netip.MustParseAddr("198.18.70.2"), 2)).ca
	if a == b || a == 0 || a == 0xFFFF {
		t.Fatalf("common addresses %d and %d", a, b)
	}
	fixed, _ := configure(t, "IEC104")
	_, p2 := configure(t, "IEC104")
	if ca := fixed.params(protocoltest.Host(p2, netip.MustParseAddr("198.18.70.3"), 3)).ca; ca != 7720 {
		t.Fatalf("template common address gave %d", ca)
	}
}
