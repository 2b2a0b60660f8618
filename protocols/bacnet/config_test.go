package bacnet

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/icsnare/icsnare/profiles"
)

// section loads a template whose bacnet.xml is body and configures it.
func section(t *testing.T, databus, body string) (*service, *profiles.Profile, error) {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "bacnet"), 0o755)
	os.WriteFile(filepath.Join(dir, "template.xml"), []byte(`<core><template><entity name="unit">t</entity></template><databus><key_value_mappings>`+databus+`</key_value_mappings></databus></core>`), 0o644)
	os.WriteFile(filepath.Join(dir, "bacnet", "bacnet.xml"), []byte(body), 0o644)
	p, err := profiles.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := protocol{}.Configure(p.Sections[Name], nil)
	if err != nil {
		return nil, p, err
	}
	return svc.(*service), p, nil
}

func TestConfigErrorsNameFileAndLine(t *testing.T) {
	for _, tc := range []struct {
		name, body, want string
	}{
		{"bad instance", "<bacnet enabled=\"True\">\n<device_info>\n<device_identifier>4194303</device_identifier></device_info></bacnet>", "bacnet.xml:3: <device_identifier>: device_identifier \"4194303\""},
		{"bad type", "<bacnet enabled=\"True\"><object_list>\n<object name=\"x\"><properties><object_identifier>1</object_identifier>\n<object_type>Flux Capacitor</object_type></properties></object></object_list></bacnet>", "bacnet.xml:3: <object_type>: object type \"Flux Capacitor\""},
		{"bad value", "<bacnet enabled=\"True\"><object_list><object name=\"x\"><properties><object_identifier>1</object_identifier><object_type>Analog Input</object_type>\n<present_value>warm</present_value></properties></object></object_list></bacnet>", "bacnet.xml:2: <present_value>: value \"warm\""},
		{"duplicate", "<bacnet enabled=\"True\"><object_list><object name=\"x\"><properties><object_identifier>1</object_identifier><object_type>Analog Input</object_type></properties></object>\n<object name=\"y\"><properties><object_identifier>analog-input,1</object_identifier><object_type>Analog Input</object_type></properties></object></object_list></bacnet>", "bacnet.xml:2: <object>: object analog-input,1 defined twice"},
		{"unknown databus key", "<bacnet enabled=\"True\"><device_info>\n<model_name databus=\"Nope\"/></device_info></bacnet>", "databus key \"Nope\" is not defined"},
		{"computed property", "<bacnet enabled=\"True\"><device_info><object_list>x</object_list></device_info></bacnet>", "computed"},
		{"bad segmentation", "<bacnet enabled=\"True\"><device_info><segmentation_supported>sometimes</segmentation_supported></device_info></bacnet>", "segmentation"},
		{"state texts and states disagree", "<bacnet enabled=\"True\"><object_list><object name=\"m\"><properties><object_identifier>1</object_identifier><object_type>Multi-state Value</object_type><number_of_states>3</number_of_states>\n<state_text>On;Off</state_text></properties></object></object_list></bacnet>", "bacnet.xml:2: <state_text>: 2 state texts for number_of_states 3"},
		{"empty state text", "<bacnet enabled=\"True\"><object_list><object name=\"m\"><properties><object_identifier>1</object_identifier><object_type>Multi-state Value</object_type>\n<state_text>On;;Off</state_text></properties></object></object_list></bacnet>", "bacnet.xml:2: <state_text>: value"},
		{"short password", "<bacnet enabled=\"True\">\n<password></password></bacnet>", "bacnet.xml:2: <password>: password must be 1-20 characters"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := section(t, "", tc.body)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestConfigAliasesAndWarnings(t *testing.T) {
	// The element names of another Conpot template generation, with databus keys as text.
	sv, p, err := section(t, `<key name="BacnetIdentifier"><value type="value">4711</value></key><key name="SystemName"><value type="value">"AHU-7"</value></key>`,
		`<bacnet enabled="True"><device_info>
<device_name>SystemName</device_name>
<device_identifier>BacnetIdentifier</device_identifier>
<max_apdu_length>480</max_apdu_length>
<segmentation_support>noSegmentation</segmentation_support>
<vendor_identification>15</vendor_identification>
<favourite_colour>green</favourite_colour>
</device_info></bacnet>`)
	if err != nil {
		t.Fatal(err)
	}
	if w := p.Warnings(); len(w) != 1 || !strings.Contains(w[0], "favourite_colour") || !strings.Contains(w[0], "bacnet.xml:7") {
		t.Fatalf("warnings %v", w)
	}
	if sv.cfg.maxAPDU != 480 || sv.cfg.segmentation != segNone {
		t.Fatalf("max APDU %d segmentation %d", sv.cfg.maxAPDU, sv.cfg.segmentation)
	}
	h := testHost(p)
	f := newFlow(t, sv, h)
	if v := f.readOne(testDevice, propObjectIdentifier); v.oid.inst != 4711 {
		t.Fatalf("instance %d", v.oid.inst)
	}
	if v := f.readOne(testDevice, propObjectName); v.s != "AHU-7" {
		t.Fatalf("name %q", v.s)
	}
	if v := f.readOne(testDevice, propVendorIdentifier); v.u != 15 {
		t.Fatalf("vendor %d", v.u)
	}
	// No segmentation: max-segments-accepted is not a property then.
	if sv.cfg.device.has(propMaxSegmentsAccepted) {
		t.Fatal("max-segments-accepted listed without segmentation")
	}
}
