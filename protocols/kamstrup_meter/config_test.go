package kamstrupmeter

import (
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/icsnare/icsnare/profiles"
)

const miniTemplate = `<core><template><entity name="unit">382</entity></template><databus><key_value_mappings>
<key name="register_1"><value type="value">5</value></key>
<key name="register_2"><value type="value">6</value></key>
</key_value_mappings></databus></core>`

func configureMeter(t *testing.T, meterXML string) (*config, error) {
	t.Helper()
	p, err := profiles.Load(fstest.MapFS{
		"template.xml":                      {Data: []byte(miniTemplate)},
		"kamstrup_meter/kamstrup_meter.xml": {Data: []byte(meterXML)},
	}, "mini", "mini")
	if err != nil {
		return nil, err
	}
	sec, ok := p.Sections[Name]
	if !ok {
		t.Fatal("no section")
	}
	return parseConfig(sec)
}

func TestConfig(t *testing.T) {
	c, err := configureMeter(t, `<kamstrup_meter enabled="True" host="0.0.0.0" port="1025"><config>
<communication_address>0x10</communication_address><reply_delay>0.5-0.1</reply_delay></config><registers>
<register name="1" length="4" units="2" unknown="65"><value>register_1</value></register>
<register name="2" length="64" units="255" unknown="0"><value>register_2</value></register>
</registers></kamstrup_meter>`)
	if err != nil {
		t.Fatal(err)
	}
	if c.addr != 0x10 || len(c.registers) != 2 || c.delayMin != 100*time.Millisecond || c.delayMax != 500*time.Millisecond {
		t.Fatalf("%+v", c)
	}
	if r := c.registers[1]; r.length != 4 || r.units != 2 || r.siex != 65 || r.key != "register_1" {
		t.Fatalf("%+v", r)
	}
	c, err = configureMeter(t, `<kamstrup_meter enabled="True"/>`)
	if err != nil || c.addr != defaultAddr || c.delayMin != defaultDelayMin || c.delayMax != defaultDelayMax {
		t.Fatalf("defaults %+v %v", c, err)
	}
}

func TestConfigErrors(t *testing.T) {
	reg := func(attrs, val string) string {
		return `<kamstrup_meter enabled="True"><registers><register ` + attrs + `><value>` + val + `</value></register></registers></kamstrup_meter>`
	}
	for _, tc := range []struct {
		xml, want string
	}{
		{`<kamstrup_meter enabled="True"><config><communication_address>300</communication_address></config></kamstrup_meter>`, "communication_address"},
		{`<kamstrup_meter enabled="True"><config><reply_delay>9</reply_delay></config></kamstrup_meter>`, "reply_delay"},
		{`<kamstrup_meter enabled="True"><config><reply_delay>x</reply_delay></config></kamstrup_meter>`, "reply_delay"},
		{reg(`name="1" length="4" units="2"`, "register_1"), "unknown attribute"},
		{reg(`name="70000" length="4" units="2" unknown="0"`, "register_1"), "name"},
		{reg(`name="1" length="0" units="2" unknown="0"`, "register_1"), "length"},
		{reg(`name="1" length="65" units="2" unknown="0"`, "register_1"), "length"},
		{reg(`name="1" length="4" units="256" unknown="0"`, "register_1"), "units"},
		{reg(`name="1" length="4" units="2" unknown="0"`, "register_99"), "not defined"},
		{reg(`name="1" length="4" units="2" unknown="0"`, ""), "no <value>"},
		{`<kamstrup_meter enabled="True"><registers>` + strings.Repeat(`<register name="1" length="4" units="2" unknown="0"><value>register_1</value></register>`, 2) + `</registers></kamstrup_meter>`, "twice"},
	} {
		_, err := configureMeter(t, tc.xml)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "kamstrup_meter.xml:") {
			t.Errorf("%s: %v (want %q with file and line)", tc.xml, err, tc.want)
		}
	}
}
