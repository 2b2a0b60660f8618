package ftp

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols/protocoltest"
	"github.com/icsnare/icsnare/protocols/vfs"
)

func TestConpotTemplateParsed(t *testing.T) {
	p := protocoltest.Profile(t, "testdata/conpot")
	c, err := parseConfig(p.Sections[Name])
	if err != nil {
		t.Fatal(err)
	}
	if c.banner != "FTP server ready." || c.maxAttempts != 3 || c.idle.Seconds() != 40 || !c.anon || c.anonUID != 32 ||
		c.gid != 45 || c.groupName != "ftp" || len(c.users) != 2 || c.root != "/data/ftp" || c.perms != 0o777 ||
		c.uploadPerms != 0o755 || c.owner != 13 || len(c.overrides) != 1 || c.overrides[0].perm != 0o777 ||
		c.stouPrefix != "conpot_test" || !c.enabled["STOU"] || c.enabled["MLSD"] || len(c.seed) != 1 {
		t.Fatalf("%+v", c)
	}
	if !strings.HasPrefix(c.motd, "Technodrome") {
		t.Fatalf("motd %q", c.motd)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct{ xml, want string }{
		{`<ftp enabled="True"><device_info><max_login_attempts>0</max_login_attempts></device_info></ftp>`, "max_login_attempts"},
		{`<ftp enabled="True"><device_info><banner>a&#13;&#10;200 fake</banner></device_info></ftp>`, "one line"},
		{`<ftp enabled="True"><ftp_users><anon_login enabled="Maybe"/></ftp_users></ftp>`, "anon_login"},
		{`<ftp enabled="True"><ftp_users><users><user uid="x"><uname>a</uname></user></users></ftp_users></ftp>`, "uid"},
		{`<ftp enabled="True"><ftp_vfs><default_perms>0o999</default_perms></ftp_vfs></ftp>`, "octal"},
		{`<ftp enabled="True"><ftp_vfs><add_src>../../../etc</add_src></ftp_vfs></ftp>`, "add_src"},
		{`<ftp enabled="True"><ftp_vfs><add_src>/etc</add_src></ftp_vfs></ftp>`, "add_src"},
		{`<ftp enabled="True"><ftp_vfs><path>/../x</path></ftp_vfs></ftp>`, "path"},
		{`<ftp enabled="True"><ftp_vfs><file path="../x"/></ftp_vfs></ftp>`, "file"},
		{`<ftp enabled="True"><ftp_vfs><generated path="a" kind="exe"/></ftp_vfs></ftp>`, "generated"},
		{`<ftp enabled="True"><ftp_vfs><generated path="a" size="99999999"/></ftp_vfs></ftp>`, "generated"},
	} {
		dir := t.TempDir()
		os.MkdirAll(filepath.Join(dir, "ftp"), 0o755)
		os.WriteFile(filepath.Join(dir, "template.xml"), []byte(`<core><databus/></core>`), 0o644)
		os.WriteFile(filepath.Join(dir, "ftp", "ftp.xml"), []byte(tc.xml), 0o644)
		p, err := profiles.LoadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		_, err = parseConfig(p.Sections[Name])
		var pe *profiles.Error
		if err == nil || !strings.Contains(err.Error(), tc.want) || !asProfileError(err, &pe) || pe.Line == 0 {
			t.Errorf("%s: error %v, want one naming %q with file and line", tc.xml, err, tc.want)
		}
	}
}

// TestEnabledCommandsAsConpot: Conpot lists SITE's sub-commands beside SITE, which enable
// SITE; a name no FTP command has is a warning naming file and line (Conpot never matches
// it and goes on), and the other commands stay enabled.
func TestEnabledCommandsAsConpot(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "ftp"), 0o755)
	os.WriteFile(filepath.Join(dir, "template.xml"), []byte(`<core><databus/></core>`), 0o644)
	os.WriteFile(filepath.Join(dir, "ftp", "ftp.xml"), []byte("<ftp enabled=\"True\"><device_info>\n<enabled_commands>'USER', 'SITE HELP', 'SITE CHMOD', \"EXEC\"</enabled_commands></device_info></ftp>"), 0o644)
	p, err := profiles.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := parseConfig(p.Sections[Name])
	if err != nil {
		t.Fatal(err)
	}
	if !c.enabled["USER"] || !c.enabled["SITE"] || c.enabled["EXEC"] || len(c.enabled) != 2 {
		t.Errorf("enabled %v", c.enabled)
	}
	w := p.Warnings()
	if len(w) != 1 || !strings.HasPrefix(w[0], filepath.Join(dir, "ftp", "ftp.xml")+":2: <enabled_commands>: ") || !strings.Contains(w[0], `"EXEC"`) {
		t.Errorf("warnings %q", w)
	}
}

func asProfileError(err error, pe **profiles.Error) bool {
	e, ok := err.(*profiles.Error)
	*pe = e
	return ok
}

func TestGeneratedFilesPerHost(t *testing.T) {
	p := protocoltest.Profile(t, "testdata/noanon")
	a := startProfile(t, "noanon", nil)
	b := startProfile(t, "noanon", protocoltest.Host(p, a.Host.Addr.Next(), 99))
	read := func(srv *testServer) string {
		c := dial(t, srv)
		c.read()
		c.login("admin", "s7cp443")
		c.cmd("TYPE I")
		body, _ := c.retrieve("RETR LOG/events.log")
		return body
	}
	la, lb := read(a), read(b)
	if la == "" || la == lb || !strings.Contains(la, "CPU: ") && !strings.Contains(la, "CP: ") && !strings.Contains(la, ": ") {
		t.Fatalf("generated logs:\n%s\n---\n%s", la, lb)
	}
	if again := read(a); again != la {
		t.Fatal("a host's generated log changed between sessions")
	}
}

func TestOptions(t *testing.T) {
	p := protocoltest.Profile(t, "testdata/conpot")
	dir := filepath.Join(t.TempDir(), "captures")
	svc := protocoltest.ConfigureWith(t, protocol{}, p, &vfs.CaptureOptions{CaptureDir: dir, CaptureMaxBytesPerSource: 5}).(*service)
	if svc.store.Dir() != dir {
		t.Fatalf("capture dir %q, want %q", svc.store.Dir(), dir)
	}
	if _, err := svc.store.Save(netip.MustParseAddr("192.0.2.1"), []byte("123456")); err == nil {
		t.Fatal("per-source quota from the options not applied")
	}
	file := filepath.Join(t.TempDir(), "f")
	os.WriteFile(file, nil, 0o644)
	for _, o := range []*vfs.CaptureOptions{{CaptureMaxBytes: -1}, {CaptureMaxBytesPerSource: -5}, {CaptureDir: file}} {
		if o.Validate() == nil {
			t.Errorf("%+v validated", o)
		}
	}
	if (&vfs.CaptureOptions{CaptureDir: dir}).Validate() != nil {
		t.Error("a capture dir still to be made must validate")
	}
}

func TestCaptureDirIsNotAProfileKnob(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "ftp"), 0o755)
	os.WriteFile(filepath.Join(dir, "template.xml"), []byte(`<core><databus/></core>`), 0o644)
	os.WriteFile(filepath.Join(dir, "ftp", "ftp.xml"), []byte(`<ftp enabled="True"><device_info><capture_dir>/etc</capture_dir></device_info></ftp>`), 0o644)
	p, err := profiles.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := parseConfig(p.Sections[Name])
	if err != nil || c.captureDir != "" {
		t.Fatalf("%v %q", err, c.captureDir)
	}
	if w := p.Warnings(); len(w) != 1 || !strings.Contains(w[0], "capture_dir") {
		t.Fatalf("warnings %v", w)
	}
}
