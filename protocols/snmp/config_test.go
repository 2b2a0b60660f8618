package snmp

import (
	"encoding/hex"
	"fmt"
	"github.com/icsnare/icsnare/protocols/protocoltest"
	"maps"
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
		{"table, not an object", `<mib name="IF-MIB"><symbol name="ifTable"><value>1</value></symbol></mib>`, 4, "not a scalar"},
		{"not-accessible", `<mib name="IP-MIB"><symbol name="ipAddrEntry"><value>1</value></symbol></mib>`, 4, "not a scalar"},
		{"bad literal", `<mib name="SNMPv2-MIB"><symbol name="sysServices"><value>lots</value></symbol></mib>`, 4, "neither a databus key"},
		{"bad engine argument", `<mib name="SNMPv2-MIB"><symbol name="sysServices"><value>1</value><engine type="increment">x</engine></symbol></mib>`, 4, "not an integer"},
		{"unknown engine, no value", `<mib name="SNMPv2-MIB"><symbol name="sysServices"><engine type="warp">1</engine></symbol></mib>`, 4, "unknown engine type"},
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

// TestConfigWarnings: where Conpot warns and goes on (a symbol its MIB lacks, like the
// IEC104 template's ifOutUNcastPkts; an engine it does not run), the agent warns with file
// and line and serves the rest.
func TestConfigWarnings(t *testing.T) {
	const head = "<snmp enabled=\"True\">\n<mibs>\n<mib name=\"IF-MIB\">\n"
	tests := []struct {
		name, body string
		line       int
		want       string
	}{
		{"unknown symbol", `<symbol name="ifOutUNcastPkts" instance="1"><value>143</value></symbol>`, 4, "IF-MIB has no symbol ifOutUNcastPkts"},
		{"unknown engine", `<symbol name="ifInOctets" instance="1"><value>7</value>` + "\n" + `<engine type="warp">1</engine></symbol>`, 5, "unknown engine type \"warp\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeProfile(t, head+tt.body+"\n<symbol name=\"ifMtu\" instance=\"1\"><value>1500</value></symbol>\n</mib>\n</mibs>\n</snmp>\n")
			p, err := profiles.Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			svc, err := protocol{}.Configure(p.Sections["snmp"], testOptions())
			if err != nil {
				t.Fatalf("Configure: %v", err)
			}
			want := fmt.Sprintf("%s:%d: ", filepath.Join(dir, "snmp", "snmp.xml"), tt.line)
			found := false
			for _, w := range p.Warnings() {
				if strings.HasPrefix(w, want) && strings.Contains(w, tt.want) {
					found = true
				}
			}
			if !found {
				t.Fatalf("warnings %q: want one at %s saying %q", p.Warnings(), want, tt.want)
			}
			names := map[string]bool{}
			for _, o := range svc.(*service).tree.objs {
				names[o.name] = true
			}
			if !names["ifMtu.1"] {
				t.Fatalf("the symbol after the warning is not served: %v", names)
			}
			if tt.name == "unknown engine" && !names["ifInOctets.1"] {
				t.Fatalf("the symbol with the unknown engine is not served from its value")
			}
		})
	}
}

// TestDefaultCommunities: a profile naming no community answers Conpot's public
// (read-only) and private (read-write); [protocols.snmp] communities replaces them, and
// a profile's own communities win over both.
func TestDefaultCommunities(t *testing.T) {
	const sym = "<mibs><mib name=\"SNMPv2-MIB\"><symbol name=\"sysDescr\"><value>sysDescr</value></symbol></mib></mibs>"
	tests := []struct {
		name, config string
		opts         *options
		want         map[string]bool
	}{
		{"conpot defaults", "", &options{}, map[string]bool{"public": false, "private": true}},
		{"configured", "", &options{Communities: map[string]string{"plant": "rw"}}, map[string]bool{"plant": true}},
		{"turned off", "", &options{Communities: map[string]string{}}, map[string]bool{}},
		{"profile wins", `<config><entity name="community">ops</entity></config>`, &options{}, map[string]bool{"ops": false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := profiles.Open(writeProfile(t, "<snmp enabled=\"True\">"+tt.config+sym+"</snmp>"))
			if err != nil {
				t.Fatal(err)
			}
			svc, err := protocol{}.Configure(p.Sections["snmp"], tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if got := svc.(*service).cfg.communities; !maps.Equal(got, tt.want) {
				t.Fatalf("communities %v, want %v", got, tt.want)
			}
		})
	}
}

// TestConfiguredUsers: [protocols.snmp] users reach every profile; bad ones and clashes
// with a profile's user are errors naming the option.
func TestConfiguredUsers(t *testing.T) {
	const sym = "<mibs><mib name=\"SNMPv2-MIB\"><symbol name=\"sysDescr\"><value>sysDescr</value></symbol></mib></mibs>"
	good := UserSpec{Name: "usr-sha-aes128", Access: "rw", Auth: "SHA", AuthPass: "authkey1", Priv: "AES", PrivPass: "privkey1"}
	p, err := profiles.Open(writeProfile(t, "<snmp enabled=\"True\">"+sym+"</snmp>"))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := protocol{}.Configure(p.Sections["snmp"], &options{Users: []UserSpec{good}})
	if err != nil {
		t.Fatal(err)
	}
	u := svc.(*service).cfg.users["usr-sha-aes128"]
	if u == nil || !u.canWrite || u.auth == nil || u.priv != privAES {
		t.Fatalf("configured user not served as given: %+v", u)
	}
	for _, bad := range []struct {
		opts options
		want string
	}{
		{options{Users: []UserSpec{{Name: "u", Auth: "SHA", AuthPass: "short"}}}, "users[0]: user u: authpass needs at least 8"},
		{options{Users: []UserSpec{good, good}}, "configured twice"},
		{options{Communities: map[string]string{"x": "sometimes"}}, "communities.x"},
	} {
		if err := bad.opts.Validate(); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("Validate() = %v, want %q", err, bad.want)
		}
	}
	p, err = profiles.Open(writeProfile(t, `<snmp enabled="True"><config><entity name="user" auth="SHA" authpass="longenough">usr-sha-aes128</entity></config>`+sym+"</snmp>"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (protocol{}).Configure(p.Sections["snmp"], &options{Users: []UserSpec{good}}); err == nil || !strings.Contains(err.Error(), "and by [protocols.snmp] users") {
		t.Fatalf("a user in both the profile and the config: %v", err)
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

// TestVersionsKnob checks that the default persona (versions 1,2c: an S7-300 CPU has no
// SNMPv3) drops an SNMPv3 engine discovery and still answers v2c, that the station
// fixture (no versions entity) answers the discovery, and that a bad list is refused.
func TestVersionsKnob(t *testing.T) {
	disc, _ := hex.DecodeString("303a020103300f02024a69020300ffe30401040201030410300e0400020100020100040004000400301204000400a00c020237f00201000201003000")
	a := newAgent(t, profiles.DefaultName)
	if resp := a.do(disc); resp != nil {
		t.Fatalf("v3 discovery answered: % x", resp)
	}
	if resp := a.do(request(t, version2c, "public", pduGet, 0, 0, vbSpec{oid: "1.3.6.1.2.1.1.5.0"})); resp == nil {
		t.Fatal("v2c get not answered")
	}
	if resp := newAgent(t, protocoltest.Station).do(disc); resp == nil {
		t.Fatal("station: v3 discovery not answered")
	}
	dir := writeProfile(t, `<snmp enabled="True"><config><entity name="community">public</entity><entity name="versions">2c,4</entity></config><mibs/></snmp>`)
	p, err := profiles.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (protocol{}).Configure(p.Sections[Name], nil); err == nil || !strings.Contains(err.Error(), "versions") {
		t.Fatalf("versions 2c,4: %v", err)
	}
}
