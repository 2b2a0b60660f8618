package snmp

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/icsnare/icsnare/profiles"
)

// writeProfile writes a minimal template directory with the given snmp.xml body.
func writeProfile(t *testing.T, snmpXML string) string {
	t.Helper()
	dir := t.TempDir()
	tmpl := `<core><databus><key_value_mappings>
<key name="sysDescr"><value type="value">"d"</value></key>
</key_value_mappings></databus></core>`
	if err := os.WriteFile(filepath.Join(dir, "template.xml"), []byte(tmpl), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "snmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "snmp", "snmp.xml"), []byte(snmpXML), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestConfigErrors(t *testing.T) {
	const head = "<snmp enabled=\"True\">\n<config><entity name=\"community\">public</entity></config>\n<mibs>\n"
	tests := []struct {
		name, body string
		line       int
		want       string
	}{
		{"unknown module", `<mib name="NONEXISTENT-MIB"><symbol name="x"><value>sysDescr</value></symbol></mib>`, 4, "NONEXISTENT-MIB not found"},
		{"unknown symbol", `<mib name="SNMPv2-MIB"><symbol name="sysNothing"><value>sysDescr</value></symbol></mib>`, 4, "has no symbol sysNothing"},
		{"table, not an object", `<mib name="IF-MIB"><symbol name="ifTable"><value>1</value></symbol></mib>`, 4, "not a scalar"},
		{"not-accessible", `<mib name="IP-MIB"><symbol name="ipAddrEntry"><value>1</value></symbol></mib>`, 4, "not a scalar"},
		{"bad literal", `<mib name="SNMPv2-MIB"><symbol name="sysServices"><value>lots</value></symbol></mib>`, 4, "neither a databus key"},
		{"bad engine", `<mib name="SNMPv2-MIB"><symbol name="sysServices"><value>1</value><engine type="warp">1</engine></symbol></mib>`, 4, "unknown engine type"},
		{"bad instance", `<mib name="SNMPv2-MIB"><symbol name="sysDescr" instance="a.b"><value>sysDescr</value></symbol></mib>`, 4, "instance"},
		{"duplicate OID", `<mib name="SNMPv2-MIB"><symbol name="sysDescr"><value>sysDescr</value></symbol><symbol name="sysDescr"><value>sysDescr</value></symbol></mib>`, 1, "same OID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeProfile(t, head+tt.body+"\n</mibs>\n</snmp>\n")
			p, err := profiles.Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			_, err = protocol{}.Configure(p.Sections["snmp"], testOptions())
			if err == nil {
				t.Fatal("Configure succeeded")
			}
			want := filepath.Join(dir, "snmp", "snmp.xml") + ":"
			if !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q, want file %s and %q", err, want, tt.want)
			}
			var pe *profiles.Error
			if !asError(err, &pe) || pe.Line != tt.line {
				t.Fatalf("error %q: want line %d", err, tt.line)
			}
		})
	}
}

func TestConfigEntities(t *testing.T) {
	tests := []struct {
		name, entity, want string
	}{
		{"tarpit", `<entity name="tarpit" command="get">abc</entity>`, "not a number of seconds"},
		{"tarpit order", `<entity name="tarpit" command="get">2;1</entity>`, "upper bound"},
		{"tarpit command", `<entity name="tarpit" command="walk">1</entity>`, "not one of get"},
		{"evasion", `<entity name="evasion" command="bulk">10</entity>`, "per-IP;overall"},
		{"user short pass", `<entity name="user" auth="SHA" authpass="short">u</entity>`, "at least 8"},
		{"user priv without auth", `<entity name="user" priv="AES" privpass="longenough">u</entity>`, "needs an auth"},
		{"user unknown auth", `<entity name="user" auth="SHA-3" authpass="longenough">u</entity>`, "is not one of"},
		{"engine id", `<entity name="engine_id" format="mac">zz:zz</entity>`, "neither a databus key nor a MAC"},
		{"max size", `<entity name="max_message_size">100</entity>`, "max_message_size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeProfile(t, "<snmp enabled=\"True\">\n<config>\n"+tt.entity+"\n</config>\n</snmp>\n")
			p, err := profiles.Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			_, err = protocol{}.Configure(p.Sections["snmp"], testOptions())
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "snmp.xml:3:") {
				t.Fatalf("error %v, want %q at snmp.xml:3", err, tt.want)
			}
		})
	}
}

func TestParseTarpit(t *testing.T) {
	tests := []struct {
		in     string
		lo, hi float64
	}{{"0.5", 0.5, 0.5}, {"0.1;0.2", 0.1, 0.2}, {"0", 0, 0}, {" 1 ; 2 ", 1, 2}}
	for _, tt := range tests {
		tp, err := parseTarpit(tt.in)
		if err != nil || tp.lo.Seconds() != tt.lo || tp.hi.Seconds() != tt.hi {
			t.Errorf("parseTarpit(%q) = %v, %v", tt.in, tp, err)
		}
	}
}

func TestEngines(t *testing.T) {
	env := profiles.EngineEnv{Seed: 1}
	tests := []struct {
		kind, arg string
		initial   int64
		want      []int64
	}{
		{"increment", "", 5, []int64{5, 6, 7}},
		{"increment", "10:25", 0, []int64{0, 10, 20, 0}},
		{"decrement", "2:-3", 0, []int64{0, -2, 0, -2}},
		{"static", "", 9, []int64{9, 9}},
	}
	for _, tt := range tests {
		spec, err := profiles.ParseEngine(tt.kind, tt.arg)
		if err != nil {
			t.Fatal(err)
		}
		d, err := spec.New(env, "x", tt.initial)
		if err != nil {
			t.Fatal(err)
		}
		for i, w := range tt.want {
			if got, _ := profiles.ToInt(d.Value(env.Start)); got != w {
				t.Errorf("%s %q read %d = %d, want %d", tt.kind, tt.arg, i, got, w)
			}
		}
	}
	spec, _ := profiles.ParseEngine("randominc", "1:10:1000")
	d, _ := spec.New(env, "x", int64(100))
	prev := int64(99)
	for i := 0; i < 50; i++ {
		v, _ := profiles.ToInt(d.Value(env.Start))
		if v <= prev && v != 100 {
			t.Fatalf("randominc went from %d to %d", prev, v)
		}
		prev = v
	}
	for _, bad := range [][2]string{{"randomint", "10:1"}, {"increment", "a"}, {"evaluate", ""}, {"nope", ""}} {
		if _, err := profiles.ParseEngine(bad[0], bad[1]); err == nil {
			t.Errorf("ParseEngine(%q, %q) accepted", bad[0], bad[1])
		}
	}
}
