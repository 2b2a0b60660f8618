package enip

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// TestConpotDefaultSection: Conpot's enip.xml parses; its cpppo serial is refused with a
// warning naming file and line.
func TestConpotDefaultSection(t *testing.T) {
	svc, p := configure(t, "default")
	id := svc.cfg.id
	if id.vendor != 1 || id.deviceType != 14 || id.productCode != 90 || id.major != 2 || id.minor != 10 ||
		id.productName != "1756-L61/B LOGIX5561" || len(svc.cfg.tags) != 3 {
		t.Fatalf("config %+v", svc.cfg)
	}
	w := p.Warnings()
	if len(w) != 1 || !strings.Contains(w[0], "enip/enip.xml:7: <SerialNumber>") {
		t.Fatalf("warnings %q", w)
	}
	if tg := svc.cfg.byAddr[[3]uint32{22, 1, 2}]; tg == nil || tg.name != "TEXT" || tg.size != 32 || tg.initial != "A" {
		t.Fatalf("TEXT tag %+v", tg)
	}
}

// TestConfigErrors: bad values are errors naming file, line and element.
func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{`<device_info><VendorId>70000</VendorId></device_info>`, "enip.xml:2: <VendorId>"},
		{`<device_info><ProductRevision>1.x</ProductRevision></device_info>`, "<ProductRevision>: revision"},
		{`<mode>serial</mode>`, "<mode>"},
		{`<tags><tag name="A"><type>LREAL</type></tag></tags>`, "type \"LREAL\""},
		{`<tags><tag name="A"><type>SINT</type><value>300</value></tag></tags>`, "outside SINT's range"},
		{`<tags><tag name="A"><type>INT</type><size>0</size></tag></tags>`, "<size>"},
		{`<tags><tag name="A"><type>INT</type><addr>1/1/1</addr></tag></tags>`, "device's own objects"},
		{`<tags><tag name="A"><type>INT</type></tag><tag name="a"><type>INT</type></tag></tags>`, "defined twice"},
		{`<device_info><SerialNumber databus="nope"/></device_info>`, "databus key \"nope\""},
		{`<device_info><ProductRevision databus="nope"/></device_info>`, "databus key \"nope\""},
	} {
		dir := t.TempDir()
		os.MkdirAll(filepath.Join(dir, "enip"), 0o755)
		os.WriteFile(filepath.Join(dir, "template.xml"), []byte("<core><databus><key_value_mappings/></databus></core>"), 0o644)
		os.WriteFile(filepath.Join(dir, "enip", "enip.xml"), []byte("<enip enabled=\"True\">\n"+tc.body+"\n</enip>"), 0o644)
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

// TestRevisionOf: a databus revision is "major.minor" with each part 0..255; anything
// else is refused (the literal or the default is served instead).
func TestRevisionOf(t *testing.T) {
	for _, tc := range []struct {
		in         string
		maj, minor uint8
		ok         bool
	}{
		{"30.11", 30, 11, true},
		{" 20.19 ", 20, 19, true},
		{"0.0", 0, 0, true},
		{"255.255", 255, 255, true},
		{"256.1", 0, 0, false},
		{"30", 0, 0, false},
		{"30.11.2", 0, 0, false},
		{"-1.2", 0, 0, false},
		{"a.b", 0, 0, false},
		{"", 0, 0, false},
		{"30.", 0, 0, false},
	} {
		a, b, ok := revisionOf(tc.in)
		if ok != tc.ok || a != tc.maj || b != tc.minor {
			t.Errorf("revisionOf(%q) = %d, %d, %v; want %d, %d, %v", tc.in, a, b, ok, tc.maj, tc.minor, tc.ok)
		}
	}
}

// TestRevisionFromDatabus: <ProductRevision databus="…"> serves the host's value; a value
// that is not major.minor falls back to the element's literal.
func TestRevisionFromDatabus(t *testing.T) {
	for _, tc := range []struct {
		value, literal string
		maj, minor     byte
	}{
		{`"24.11"`, "", 24, 11},
		{`"24.11"`, "20.11", 24, 11},
		{`"V24"`, "20.11", 20, 11},
		{`"300.1"`, "20.11", 20, 11},
		{`"V24"`, "", 2, 10}, // no literal: the default, Conpot's 2.10
	} {
		dir := t.TempDir()
		os.MkdirAll(filepath.Join(dir, "enip"), 0o755)
		os.WriteFile(filepath.Join(dir, "template.xml"), []byte(`<core><databus><key_value_mappings>
<key name="Revision"><value type="value">`+tc.value+`</value></key></key_value_mappings></databus></core>`), 0o644)
		os.WriteFile(filepath.Join(dir, "enip", "enip.xml"), []byte(`<enip enabled="True"><device_info>
<ProductRevision databus="Revision">`+tc.literal+`</ProductRevision></device_info></enip>`), 0o644)
		p, err := profiles.LoadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		s, err := protocol{}.Configure(p.Sections[Name], nil)
		if err != nil {
			t.Fatal(err)
		}
		svc := s.(*service)
		h := protocoltest.Host(p, netip.MustParseAddr("192.0.2.7"), 3)
		x := exec{svc: svc, db: h.Databus, dev: svc.hostDevice(h)}
		got, gs := x.attribute(nil, classIdentity, 1, 4)
		want := []byte{tc.maj, tc.minor}
		if gs != gsSuccess || !bytes.Equal(got, want) {
			t.Errorf("Revision %s, literal %q: identity revision % x (status %#x), want % x", tc.value, tc.literal, got, gs, want)
		}
	}
}
