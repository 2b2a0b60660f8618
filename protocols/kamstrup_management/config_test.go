package kamstrupmgmt

import (
	"strings"
	"testing"
	"testing/fstest"

	"github.com/icsnare/icsnare/profiles"
)

func TestConfigure(t *testing.T) {
	load := func(xml string) *profiles.Profile {
		p, err := profiles.Load(fstest.MapFS{
			"template.xml": {Data: []byte(`<core><template><entity name="unit">382</entity></template><databus><key_value_mappings>` +
				`<key name="mac_address"><value type="value">'00:13:EA:00:00:00'</value></key></key_value_mappings></databus></core>`)},
			"kamstrup_management/kamstrup_management.xml": {Data: []byte(xml)},
		}, "mini", "mini")
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := load(`<kamstrup_management enabled="True" host="0.0.0.0" port="50100"/>`)
	svc, err := protocol{}.Configure(p.Sections[Name], nil)
	if err != nil || len(p.Warnings()) != 0 {
		t.Fatalf("%v %v", err, p.Warnings())
	}
	if ep := svc.Endpoints(); len(ep) != 1 || ep[0].Port != Port {
		t.Fatalf("%v", ep)
	}
	p = load(`<kamstrup_management enabled="True"><banner>x</banner></kamstrup_management>`)
	if _, err := (protocol{}).Configure(p.Sections[Name], nil); err != nil {
		t.Fatal(err)
	}
	if w := p.Warnings(); len(w) != 1 || !strings.Contains(w[0], "kamstrup_management.xml:1") || !strings.Contains(w[0], "<banner>") {
		t.Fatalf("warnings %v", w)
	}
}

// TestMissingKeys: a template without the console's keys answers with the module's
// defaults instead of failing.
func TestMissingKeys(t *testing.T) {
	st := databusStore{}
	if r := Respond(st, "!GV"); r.Reply != "\r\nSoftware Version: 5.5 (E5)\r\n" {
		t.Fatalf("%q", r.Reply)
	}
	if r := Respond(st, "!SK"); !strings.Contains(r.Reply, "Software watchdog: ENABLED 3600") {
		t.Fatalf("%q", r.Reply)
	}
	if b := Banner(st); !strings.HasPrefix(b, "\r\nWelcome...\r\nConnected to [00:13:EA:") || strings.Contains(b, "00:13:EA:00:00:00") {
		t.Fatalf("%q", b)
	}
}
