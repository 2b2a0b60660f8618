package conpotcfg

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/icsnare/icsnare/protocols/all"
	"github.com/icsnare/icsnare/sensor"
)

func TestParseINI(t *testing.T) {
	src := `# a comment
[common]
SensorID = plant-%(SITE)s
; another comment
[json]
enabled: yes
filename = %(conpot_json_log)s
[syslog]
socket = dev        ; udp (host:port)
[multi]
key = first
  second
pct = 100%%
loop = %(loop)s
missing = %(NOPE)s
bad = 5%
`
	f, err := ParseINI("conpot.cfg", strings.NewReader(src), []string{"SITE=north", "CONPOT_JSON_LOG=/var/log/conpot/x.json", "BROKEN"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ sec, key, want string }{
		{"common", "sensorid", "plant-north"}, // keys fold to lower case, env names too
		{"json", "filename", "/var/log/conpot/x.json"},
		{"syslog", "socket", "dev        ; udp (host:port)"}, // no inline comments, as ConfigParser
		{"multi", "key", "first\nsecond"},
		{"multi", "pct", "100%"},
	} {
		got, ok, err := f.Get(c.sec, c.key)
		if err != nil || !ok || got != c.want {
			t.Errorf("[%s] %s = %q %v %v, want %q", c.sec, c.key, got, ok, err, c.want)
		}
	}
	if on, err := f.Bool("json", "enabled", false); err != nil || !on {
		t.Errorf("enabled: %v %v", on, err)
	}
	if _, err := f.Bool("common", "sensorid", false); err == nil || !strings.Contains(err.Error(), "conpot.cfg:3") {
		t.Errorf("not a boolean: %v", err)
	}
	for _, k := range []string{"loop", "missing", "bad"} {
		if _, _, err := f.Get("multi", k); err == nil || !strings.HasPrefix(err.Error(), "conpot.cfg:") {
			t.Errorf("%s: %v", k, err)
		}
	}
	if _, ok, _ := f.Get("json", "absent"); ok {
		t.Error("absent key found")
	}

	for _, bad := range []string{"key = before any section\n", "[a]\nx = 1\nx = 2\n", "[a]\n[a]\n", "[a\n", "[a]\njust words\n"} {
		if _, err := ParseINI("bad.cfg", strings.NewReader(bad), nil); err == nil || !strings.HasPrefix(err.Error(), "bad.cfg:") {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if _, err := ParseINI("big.cfg", io.LimitReader(infinite{}, 2*maxINISize), nil); err == nil {
		t.Error("a file larger than the bound was read")
	}
}

type infinite struct{}

func (infinite) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = '#'
		if i%64 == 63 {
			b[i] = '\n'
		}
	}
	return len(b), nil
}

func TestParseArgs(t *testing.T) {
	a, err := ParseArgs([]string{"--mibcache", "/tmp/c", "--temp_dir", "/tmp/c", "--template", "default",
		"--logfile", "/var/log/conpot/c.log", "--config", "/etc/conpot/conpot.cfg", "-a", "/m1", "--raw_mib", "/m2", "-f", "-v"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := Args{Template: "default", Config: "/etc/conpot/conpot.cfg", LogFile: "/var/log/conpot/c.log", MIBCache: "/tmp/c",
		TempDir: "/tmp/c", RawMIBs: []string{"/m1", "/m2"}, Force: true, Verbose: true}
	if a.Template != want.Template || a.Config != want.Config || a.LogFile != want.LogFile || a.MIBCache != want.MIBCache ||
		a.TempDir != want.TempDir || strings.Join(a.RawMIBs, ",") != "/m1,/m2" || !a.Force || !a.Verbose {
		t.Errorf("got %+v", a)
	}
	if a, err := ParseArgs([]string{"-t", "x", "-c", "y", "-l", "z", "-m", "w"}, io.Discard); err != nil || a.Template != "x" || a.Config != "y" || a.LogFile != "z" || a.MIBCache != "w" {
		t.Errorf("short forms: %+v %v", a, err)
	}
	// argparse's forms: combined switches and attached values.
	if a, err := ParseArgs([]string{"-fv", "-tdefault", "-c/etc/c.cfg", "--template=x2", "-temp_dir", "/t"}, io.Discard); err != nil ||
		!a.Force || !a.Verbose || a.Template != "x2" || a.Config != "/etc/c.cfg" || a.TempDir != "/t" {
		t.Errorf("argparse forms: %+v %v", a, err)
	}
	for _, bad := range [][]string{{"--nope"}, {"-t"}, {"stray"}, {"-fx"}} {
		if _, err := ParseArgs(bad, io.Discard); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestMapTPot: T-Pot's configuration maps to the JSON log its environment names, the
// sensor id, the session timeout and the capture directory, with one note per section
// that has no equivalent, and no outbound lookup for fetch_public_ip.
func TestMapTPot(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "conpot.cfg")
	os.WriteFile(cfg, []byte(`[common]
sensorid = conpot
[virtual_file_system]
data_fs_url = %(CONPOT_TMP)s
fs_url = tar:///x/data.tar
[session]
timeout = 30
[daemon]
user = conpot
group = conpot
[json]
enabled = True
filename = %(CONPOT_JSON_LOG)s
[sqlite]
enabled = False
[syslog]
enabled = False
[hpfriends]
enabled = True
[taxii]
enabled = False
[fetch_public_ip]
enabled = True
urls = ["http://192.0.2.1/"]
[change_mac_addr]
enabled = True
iface = eth0
addr = 00:00:5e:00:53:01
[opcua]
enabled = True
`), 0o644)
	env := Env{Environ: []string{"CONPOT_TMP=" + dir, "CONPOT_JSON_LOG=/var/log/conpot/conpot_default.json"}}
	p, err := Map(Args{Template: "default", Config: cfg, TempDir: dir, MIBCache: dir, LogFile: "/l"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if p.Profile != "default" || p.EventsFile != "/var/log/conpot/conpot_default.json" || p.SensorID != "conpot" ||
		p.FlowIdle != 30*time.Second || p.CaptureDir != dir || p.StateDir != filepath.Join(dir, "icsnare") ||
		p.User != "" || p.PublicIP != "" || p.MAC != "00:00:5e:00:53:01" || p.MACIface != "eth0" {
		t.Errorf("plan %+v", p)
	}
	notes := strings.Join(p.Notes, "\n")
	for _, want := range []string{"[fetch_public_ip] enabled: never looked up", "[hpfriends] enabled, but ignored: icsnare has no hpfeeds sink yet",
		"[syslog] disabled", "[taxii] disabled", "[sqlite] disabled", "[opcua]: not a Conpot section icsnare knows",
		`[daemon] user "conpot": not started as root`, "--mibcache " + dir + ": not used"} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes lack %q:\n%s", want, notes)
		}
	}
	for _, n := range p.Notes {
		if strings.Contains(n, "\n") {
			t.Errorf("note of more than one line: %q", n)
		}
	}

	c := sensor.DefaultConfig()
	if err := p.Apply(&c); err != nil {
		t.Fatal(err)
	}
	if c.Events.Format != "conpot" || c.Events.File != p.EventsFile || c.SensorID != "conpot" || !c.Bind.TemplatePorts ||
		c.Limits.UDPFlowIdle.Duration != 30*time.Second || c.Netcfg.MAC != p.MAC || c.Hosts[0].Profile != "default" {
		t.Errorf("config %+v", c)
	}

	// As root, [daemon] drops privileges and gives the events file to its group; a
	// public_ip in [fetch_public_ip] is written as it is.
	os.WriteFile(cfg, []byte("[common]\nsensorid = s\n[daemon]\nuser = nobody\ngroup = nogroup\n[fetch_public_ip]\nenabled = True\npublic_ip = %(PUB)s\n"), 0o644)
	p, err = Map(Args{Template: "default", Config: cfg}, Env{Root: true, Environ: []string{"PUB=198.51.100.9"}})
	if err != nil || p.User != "nobody" || p.Group != "nogroup" || p.EventsGroup != "nogroup" || p.PublicIP != "198.51.100.9" || p.EventsFile != "" {
		t.Errorf("root plan %+v %v", p, err)
	}
	c = sensor.DefaultConfig()
	if err := p.Apply(&c); err != nil || c.Privileges.User != "nobody" || c.Events.Group != "nogroup" || c.Events.Mode != "0640" || c.Events.PublicIP != "198.51.100.9" {
		t.Errorf("root config %+v %v", c, err)
	}
}

func TestMapErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		f := filepath.Join(dir, "c.cfg")
		os.WriteFile(f, []byte(body), 0o644)
		return f
	}
	if _, err := Map(Args{Template: "default"}, Env{}); !errors.Is(err, ErrUsage) {
		t.Errorf("no --config: %v", err)
	}
	if p, err := Map(Args{Config: write("[common]\nsensorid = x\n")}, Env{}); err != nil || !p.ListTemplates {
		t.Errorf("no --template: %+v %v", p, err)
	}
	if _, err := Map(Args{Template: "no-such-template", Force: true}, Env{}); !errors.Is(err, ErrTemplateNotFound) {
		t.Errorf("unknown template: %v", err)
	}
	for body, want := range map[string]string{
		"[json]\nenabled = True\n":                            "sensorid is missing",
		"[common]\nsensorid = x\n[json]\nenabled = True\n":    "without a filename",
		"[common]\nsensorid = x\n[json]\nenabled = maybe\n":   "c.cfg:4",
		"[common]\nsensorid = x\n[session]\ntimeout = soon\n": "c.cfg:4",
		"[common]\nsensorid = %(UNSET_VAR_X)s\n":              "c.cfg:2",
	} {
		if _, err := Map(Args{Template: "default", Config: write(body)}, Env{}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", body, err, want)
		}
	}
	// -f ignores --config, as Conpot does, and writes no JSON log.
	p, err := Map(Args{Template: "default", Config: "/nonexistent.cfg", Force: true}, Env{})
	if err != nil || p.EventsFile != "" || p.SensorID != "default" || !strings.Contains(strings.Join(p.Notes, "\n"), "--config /nonexistent.cfg ignored") {
		t.Errorf("-f: %+v %v", p, err)
	}
}

func TestResolveTemplate(t *testing.T) {
	dir := t.TempDir()
	tmpl := filepath.Join(dir, "mine")
	os.MkdirAll(tmpl, 0o755)
	os.WriteFile(filepath.Join(tmpl, "template.xml"), []byte("<core/>"), 0o644)
	if got, err := ResolveTemplate(tmpl, nil); err != nil || got != tmpl {
		t.Errorf("directory: %q %v", got, err)
	}
	if got, err := ResolveTemplate("default", nil); err != nil || got != "default" {
		t.Errorf("embedded: %q %v", got, err)
	}
	if got, err := ResolveTemplate("mine", []string{"/nonexistent", dir}); err != nil || got != tmpl {
		t.Errorf("search path: %q %v", got, err)
	}
	// A directory of the name in the working directory wins over the embedded profile.
	wd, _ := os.Getwd()
	defer os.Chdir(wd)
	os.Chdir(dir)
	os.Rename(tmpl, filepath.Join(dir, "default"))
	if got, err := ResolveTemplate("default", nil); err != nil || got != filepath.Join(dir, "default") {
		t.Errorf("directory before embedded: %q %v", got, err)
	}
}

// FuzzParseINI: any file parses or fails with an error naming it, and reading every
// option back (with interpolation) never loops or panics.
func FuzzParseINI(f *testing.F) {
	f.Add("[common]\nsensorid = %(X)s\n[json]\nenabled = True\nfilename = %(a)s%%\n  more\n")
	f.Add("[a]\nx = %(x)s\ny: %(z\n[DEFAULT]\nz = 1\n")
	f.Fuzz(func(t *testing.T, src string) {
		ini, err := ParseINI("f.cfg", strings.NewReader(src), []string{"X=1", "A=%(X)s"})
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.cfg") {
				t.Fatalf("error %v does not name the file", err)
			}
			return
		}
		for _, sec := range ini.Sections() {
			for key := range ini.sections[sec] {
				ini.Get(sec, key)
				ini.Bool(sec, key, false)
			}
		}
	})
}

// TestINIExpansionBounded: references that double at each of ten levels (a billion laughs)
// fail instead of building a huge value.
func TestINIExpansionBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString("[a]\nl0 = " + strings.Repeat("x", 4096) + "\n")
	for i := 1; i <= 9; i++ {
		fmt.Fprintf(&b, "l%d = %s\n", i, strings.Repeat(fmt.Sprintf("%%(l%d)s", i-1), 8))
	}
	ini, err := ParseINI("laughs.cfg", strings.NewReader(b.String()), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ini.Get("a", "l9"); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("l9: %v", err)
	}
}
