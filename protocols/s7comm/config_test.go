package s7comm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/icsnare/icsnare/protocols/protocoltest"
)

func TestDefaultProfileConfig(t *testing.T) {
	p := protocoltest.Profile(t, protocoltest.Station)
	svc := protocoltest.Configure(t, protocol{}, p).(*service)
	cfg := svc.config()
	if cfg.PDUSize != 240 || cfg.Rack != 0 || cfg.Slot != 2 || cfg.Mode != ModeRun {
		t.Fatalf("cpu knobs: %+v", cfg)
	}
	if len(cfg.Ident11) != 3 || len(cfg.Ident1C) != 8 {
		t.Fatalf("identity records: %v %v", cfg.Ident11, cfg.Ident1C)
	}
	if a := cfg.area(AreaDB, 1); a == nil || a.Size != 128 || a.Format != FormatWords {
		t.Fatalf("DB1: %+v", a)
	}
	if cfg.block(BlockDB, 10) == nil || cfg.block(BlockOB, 1) == nil {
		t.Fatalf("blocks: %v", cfg.Blocks)
	}
}

// A template written for Conpot (its s7comm.xml layout, no icsnare knobs) still loads:
// defaults fill the CPU, the duplicate W#16#0006 record draws a warning.
func TestConpotFormatSection(t *testing.T) {
	dir := t.TempDir()
	tpl := `<core><template><entity name="unit">S7-200</entity></template><databus><key_value_mappings>
<key name="SystemName"><value type="value">"PW7-CPU"</value></key>
<key name="SystemDescription"><value type="value">"Siemens, SIMATIC, S7-200"</value></key>
<key name="FacilityName"><value type="value">"Wasserwerk"</value></key>
<key name="s7_id"><value type="value">"S C-BHA123456789"</value></key>
<key name="s7_module_type"><value type="value">"CPU 224"</value></key>
<key name="empty"><value type="value">""</value></key>
</key_value_mappings></databus></core>`
	sec := `<s7comm enabled="True" host="0.0.0.0" port="10201">
<system_status_lists>
<ssl id="W#16#xy1C" name="Component Identification">
<system_name id="W#16#0001">SystemName</system_name>
<module_name id="W#16#0002">SystemDescription</module_name>
<plant_ident id="W#16#0003">FacilityName</plant_ident>
<serial id="W#16#0005">s7_id</serial>
<module_type_name id="W#16#0007">s7_module_type</module_type_name>
<oem_id id="W#16#000A">empty</oem_id>
<location id="W#16#000B">empty</location>
</ssl>
<ssl id="W#16#xy11" name="Module Identification">
<module_identification id="W#16#0001">empty</module_identification>
<hardware_identification id="W#16#0006">empty</hardware_identification>
<firmware_identification id="W#16#0006">empty</firmware_identification>
</ssl>
</system_status_lists>
</s7comm>`
	if err := os.MkdirAll(filepath.Join(dir, "s7comm"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "template.xml"), []byte(tpl), 0o644)
	os.WriteFile(filepath.Join(dir, "s7comm", "s7comm.xml"), []byte(sec), 0o644)
	p := protocoltest.Profile(t, dir)
	svc, err := protocol{}.Configure(p.Sections[Name], nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := svc.(*service).config()
	if len(cfg.Ident1C) != 7 || len(cfg.Ident11) != 2 || cfg.PDUSize != 240 || cfg.Slot != 2 {
		t.Fatalf("config %+v", cfg)
	}
	if w := p.Warnings(); len(w) != 1 || !strings.Contains(w[0], "W#16#0006 given twice") {
		t.Fatalf("warnings %q", w)
	}
	if p.Sections[Name].Port != 10201 {
		t.Fatalf("port %d", p.Sections[Name].Port)
	}
}

func TestParseVersion(t *testing.T) {
	tests := []struct {
		in   string
		want [3]byte
	}{
		{"V2.2.1", [3]byte{2, 2, 1}},
		{"2.6", [3]byte{2, 6, 0}},
		{"3", [3]byte{3, 0, 0}},
		{" v 4 . 5 ", [3]byte{4, 5, 0}},
		{"1.2.3.4", [3]byte{1, 2, 0}},
		{"300.1.x", [3]byte{0, 1, 0}},
		{"V3.", [3]byte{3, 0, 0}},
		{"", [3]byte{}},
		{"+1.-2.0255", [3]byte{0, 0, 0}},
		{"1.2.255", [3]byte{1, 2, 255}},
	}
	for _, tt := range tests {
		if got := parseVersion(tt.in); got != tt.want {
			t.Errorf("parseVersion(%q) = %v, want %v", tt.in, got, tt.want)
		}
		if n := testing.AllocsPerRun(10, func() { parseVersion(tt.in) }); n != 0 {
			t.Errorf("parseVersion(%q): %v allocations", tt.in, n)
		}
	}
}
