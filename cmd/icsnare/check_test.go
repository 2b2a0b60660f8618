package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeFile writes body to dir/rel, creating directories, and returns the path.
func writeFile(t *testing.T, dir, rel, body string) string {
	t.Helper()
	p := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRunRefusesWhatCheckRefuses runs every bad configuration through both `check` and
// `run`: each must exit 2 with the same message, naming the file and line (or the flag)
// that is the cause, and run must fail before it binds anything.
func TestRunRefusesWhatCheckRefuses(t *testing.T) {
	dir := t.TempDir()
	unknownProto := filepath.Join(dir, "unknownproto")
	writeFile(t, unknownProto, "template.xml", "<core/>\n")
	writeFile(t, unknownProto, "nosuchproto/nosuchproto.xml", `<nosuchproto enabled="True"/>`+"\n")
	allDisabled := filepath.Join(dir, "alldisabled")
	writeFile(t, allDisabled, "template.xml", "<core/>\n")
	writeFile(t, allDisabled, "modbus/modbus.xml", `<modbus enabled="False"/>`+"\n")
	farPort := filepath.Join(dir, "farport")
	writeFile(t, farPort, "template.xml", "<core/>\n")
	writeFile(t, farPort, "modbus/modbus.xml", "<!-- Conpot style -->\n<modbus enabled=\"True\" host=\"0.0.0.0\" port=\"15020\">\n</modbus>\n")
	regular := writeFile(t, dir, "regular-file", "")
	conf := func(name, body string) string { return writeFile(t, dir, name+".toml", body) }
	// Without CAP_NET_ADMIN the network plan is refused before the device is looked up.
	netcfgWant := "netcfg: device icsnare-nodev0: Link not found"
	if os.Geteuid() != 0 {
		netcfgWant = "needs root or CAP_NET_ADMIN"
	}

	cases := []struct {
		name string
		args []string
		want string // in the error output
	}{
		{"unknown user", []string{"--user", "icsnare-no-such-user"}, `--user: privileges.user "icsnare-no-such-user": user: unknown user`},
		{"unknown user in config", []string{"--config", conf("user", "[privileges]\nuser = \"icsnare-no-such-user\"\n")},
			"user.toml:2: privileges.user"},
		{"unknown group", []string{"--config", conf("group", "# group\n[privileges]\nuser = \"\"\ngroup = \"icsnare-no-such-group\"\n")},
			"group.toml:4: privileges.group"},
		{"events in a missing directory", []string{"--events", filepath.Join(dir, "missing", "events.jsonl")}, "--events: events.file"},
		{"events under a regular file", []string{"--events", filepath.Join(regular, "events.jsonl")}, "not a directory"},
		{"events is a directory", []string{"--events", dir}, "is a directory"},
		{"events mode not octal", []string{"--config", conf("emode", "[events]\nfile = \"-\"\nmode = \"0999\"\n")}, "emode.toml:3: events.mode \"0999\""},
		{"events mode past 0777", []string{"--config", conf("emode2", "[events]\nmode = \"4755\"\n")}, "emode2.toml:2: events.mode"},
		{"events group unknown", []string{"--config", conf("egroup", "[events]\ngroup = \"icsnare-no-such-group\"\n")}, "egroup.toml:2: events.group"},
		{"events public_ip not an address", []string{"--config", conf("epub", "[events]\npublic_ip = \"my.host\"\n")}, "epub.toml:2: events.public_ip"},
		{"metrics port out of range", []string{"--metrics", "127.0.0.1:99999"}, "--metrics: metrics.listen"},
		{"metrics without a port", []string{"--metrics", "127.0.0.1"}, "missing port"},
		{"metrics on a foreign address", []string{"--metrics", "192.0.2.1:9108"}, "not an address of this machine"},
		{"metrics in config", []string{"--config", conf("metrics", "[metrics]\nlisten = \"nonsense\"\n")}, "metrics.toml:2: metrics.listen"},
		{"bind on a foreign address", []string{"--bind", "192.0.2.1"}, "--bind: bind.address"},
		{"profile of unknown protocols", []string{"--profile", unknownProto}, unknownProto + "/nosuchproto/nosuchproto.xml:1: <nosuchproto>: profile unknownproto serves nothing: its protocols (nosuchproto)"},
		{"profile with every section disabled", []string{"--profile", allDisabled}, allDisabled + "/template.xml:1: profile alldisabled serves nothing: every protocol section is disabled (modbus)"},
		{"template port past 65535", []string{"--profile", farPort, "--template-ports", "--port-offset", "60000"}, farPort + "/modbus/modbus.xml:2: <modbus>: port 75020"},
		{"unknown protocol table", []string{"--config", conf("proto", "sensor_id = \"x\"\n[protocols.nosuchproto]\nport = 1\n")}, "proto.toml:2: [protocols.nosuchproto]: no protocol \"nosuchproto\""},
		{"protocol without options", []string{"--config", conf("s7comm", "[protocols.s7comm]\nx = 1\n")}, "s7comm.toml:1: [protocols.s7comm]: protocol s7comm takes no options"},
		{"unknown option", []string{"--config", conf("opt", "[protocols.snmp]\nmibpath = []\nmib_path = []\n")}, "opt.toml:3: unknown keys: protocols.snmp.mib_path"},
		{"missing mibpath in config", []string{"--config", conf("mib", "\n[protocols.snmp]\nmibpath = [\"/nonexistent/mibs\"]\n")}, "mib.toml:2: protocols.snmp: mibpath"},
		{"missing mibpath flag", []string{"-a", "/nonexistent/mibs"}, "--mibpath: protocols.snmp: mibpath"},
		{"AnyIP routes on a missing device", []string{"--listen", "198.51.100.0/24", "--anyip",
			"--config", conf("netcfg", "[netcfg]\ndevice = \"icsnare-nodev0\"\n")}, netcfgWant},
		{"port override of no protocol", []string{"--config", conf("ports", "[bind]\nports = { modbsu = 5020 }\n")}, `bind.ports.modbsu: no protocol "modbsu"`},
		{"rate limit for a protocol without UDP", []string{"--config", conf("xdp", "[[xdp.rules]]\nprotocol = \"modbus\"\nper_source_per_minute = 1\n")},
			`xdp.rules[0]: protocol "modbus" serves no UDP port`},
		{"state directory under a regular file", []string{"--state", filepath.Join(regular, "state")}, "--state: state.dir: state:"},
		{"bad log level", []string{"--log-level", "loud"}, "--log-level"},
		{"extra argument", []string{"serve"}, "unexpected arguments"},
		{"unwritable cpu profile", []string{"--cpuprofile", filepath.Join(regular, "cpu.prof")}, "--cpuprofile"},
	}
	for _, c := range cases {
		for _, cmd := range []string{"check", "run"} {
			t.Run(cmd+"/"+c.name, func(t *testing.T) {
				// Safe defaults in case run started after all: a high port offset and no
				// metrics unless the case is about them.
				args := []string{cmd, "--port-offset", "30000"}
				if !strings.Contains(c.name, "metrics") {
					args = append(args, "--metrics", "off")
				}
				args = append(args, c.args...)
				var out, errb bytes.Buffer
				done := make(chan int, 1)
				go func() { done <- run(args, &out, &errb) }()
				var code int
				select {
				case code = <-done:
				case <-time.After(time.Minute): // a hang guard, not a timing assertion
					t.Fatal("run did not refuse the configuration: it is serving")
				}
				if code != exitUsage {
					t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, exitUsage, out.String(), errb.String())
				}
				if !strings.Contains(errb.String(), c.want) {
					t.Fatalf("stderr lacks %q:\n%s", c.want, errb.String())
				}
				if strings.Contains(errb.String(), "sensor running") {
					t.Fatalf("run started serving:\n%s", errb.String())
				}
			})
		}
	}
}

// TestTemplatePorts checks that a template's port attribute is reported when standard
// ports are served, honoured with --template-ports (or bind.template_ports) and beaten by
// bind.ports, port_offset applying to both, and that a template host attribute is
// reported as ignored.
func TestTemplatePorts(t *testing.T) {
	dir := t.TempDir()
	prof := filepath.Join(dir, "conpotstyle")
	writeFile(t, prof, "template.xml", "<core/>\n")
	writeFile(t, prof, "modbus/modbus.xml", `<modbus enabled="True" host="0.0.0.0" port="5020"></modbus>`+"\n")
	writeFile(t, prof, "s7comm/s7comm.xml", `<s7comm enabled="True" host="10.9.8.7" port="102"></s7comm>`+"\n")
	cfg := writeFile(t, dir, "tp.toml", "[bind]\ntemplate_ports = true\n")
	override := writeFile(t, dir, "ports.toml", "[bind]\ntemplate_ports = true\nports = { modbus = 1502 }\n")
	modbusFile := prof + "/modbus/modbus.xml:1"
	hostWarning := "template " + prof + `/s7comm/s7comm.xml:1: host "10.9.8.7" ignored`
	cases := []struct {
		name       string
		args       []string
		serves     string
		warns, not []string
	}{
		{"standard ports", nil, "modbus tcp/30502, s7comm tcp/30102",
			[]string{"template " + modbusFile + " asks for port 5020; serving 30502 (use --template-ports)", hostWarning}, nil},
		{"--template-ports", []string{"--template-ports"}, "modbus tcp/35020, s7comm tcp/30102",
			[]string{hostWarning}, []string{"asks for port"}},
		{"config template_ports", []string{"--config", cfg}, "modbus tcp/35020, s7comm tcp/30102",
			nil, []string{"asks for port"}},
		{"bind.ports wins", []string{"--config", override}, "modbus tcp/1502, s7comm tcp/30102",
			[]string{"template " + modbusFile + " asks for port 5020; serving 1502 (bind.ports.modbus)"}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			// An offset keeps every port unprivileged, so the test passes as any user.
			args := append([]string{"check", "--profile", prof, "--metrics", "off", "--port-offset", "30000"}, c.args...)
			if code := run(args, &out, &errb); code != 0 {
				t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out.String(), errb.String())
			}
			if !strings.Contains(out.String(), "serves "+c.serves) {
				t.Errorf("stdout lacks %q:\n%s", c.serves, out.String())
			}
			for _, w := range c.warns {
				if !strings.Contains(errb.String(), "warning: "+w) {
					t.Errorf("stderr lacks %q:\n%s", w, errb.String())
				}
			}
			for _, w := range c.not {
				if strings.Contains(errb.String(), w) {
					t.Errorf("stderr has %q:\n%s", w, errb.String())
				}
			}
		})
	}
}

// TestProtocolFlags checks that flags a protocol registers (SNMP's --mibpath and -a) reach
// that protocol's options, over the config file's [protocols.snmp] table.
func TestProtocolFlags(t *testing.T) {
	const profile = "../../protocols/snmp/testdata/usermib"
	const mibs = "../../protocols/snmp/testdata/mibs"
	emptyTable := writeFile(t, t.TempDir(), "snmp.toml", "[protocols.snmp]\nmibpath = []\n")
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no mibpath", nil, exitUsage, "MIB module ICSNARE-TANK-MIB not found"},
		{"--mibpath", []string{"--mibpath", mibs}, 0, "serves snmp udp/30161"},
		{"-a", []string{"-a", mibs}, 0, "serves snmp udp/30161"},
		{"-a over an empty table", []string{"--config", emptyTable, "-a", mibs}, 0, "serves snmp udp/30161"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"check", "--profile", profile, "--port-offset", "30000", "--metrics", "off"}, c.args...)
			var out, errb bytes.Buffer
			if code := run(args, &out, &errb); code != c.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, c.code, out.String(), errb.String())
			}
			if !strings.Contains(out.String()+errb.String(), c.want) {
				t.Fatalf("output lacks %q\nstdout: %s\nstderr: %s", c.want, out.String(), errb.String())
			}
		})
	}
}
