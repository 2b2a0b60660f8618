package tftp

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

func TestConpotTemplateParsed(t *testing.T) {
	p := protocoltest.Profile(t, "testdata/conpot")
	c, err := parseConfig(p.Sections[Name])
	if err != nil {
		t.Fatal(err)
	}
	if c.root != "/data/tftp" || string(c.seed["/tftp_data.txt"]) != testFile || c.timeout != defaultTimeout || c.retries != defaultRetries {
		t.Fatalf("%+v", c)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct{ xml, want string }{
		{`<tftp enabled="True"><tftp_root_path>/../../</tftp_root_path></tftp>`, "tftp_root_path"},
		{`<tftp enabled="True"><add_src>../../etc</add_src></tftp>`, "add_src"},
		{`<tftp enabled="True"><timeout>0</timeout></tftp>`, "timeout"},
		{`<tftp enabled="True"><retries>1000</retries></tftp>`, "retries"},
		{`<tftp enabled="True"><read_only>perhaps</read_only></tftp>`, "read_only"},
		{`<tftp enabled="True"><generated path="/" /></tftp>`, "generated"},
	} {
		dir := t.TempDir()
		os.MkdirAll(filepath.Join(dir, "tftp"), 0o755)
		os.WriteFile(filepath.Join(dir, "template.xml"), []byte(`<core><databus/></core>`), 0o644)
		os.WriteFile(filepath.Join(dir, "tftp", "tftp.xml"), []byte(tc.xml), 0o644)
		p, err := profiles.LoadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		_, err = parseConfig(p.Sections[Name])
		if _, ok := err.(*profiles.Error); !ok || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want a profile error naming %q", tc.xml, err, tc.want)
		}
	}
}
