package tftp

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols/protocoltest"
	"github.com/icsnare/icsnare/protocols/ratelimit"
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
		{`<tftp enabled="True"><rate_limit class="data" per_source="1"/></tftp>`, "rate_limit"},
		{`<tftp enabled="True"><rate_limit class="read" per_source="-1"/></tftp>`, "rate_limit"},
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

func TestRateLimitClasses(t *testing.T) {
	p := protocoltest.Profile(t, "testdata/conpot")
	svc := protocoltest.Configure(t, protocol{}, p).(*service)
	limits := svc.RateLimits()
	var rules []ratelimit.Rule
	for _, l := range limits {
		rules = append(rules, ratelimit.Rule{Port: uint16(l.Port), Class: l.Class, Match: l.Match, PerSource: l.PerSource, Global: l.Global})
	}
	lim, err := ratelimit.New(rules, ratelimit.Config{})
	if err != nil || len(limits) != 2 {
		t.Fatalf("%d limits: %v", len(limits), err)
	}
	for _, tc := range []struct {
		pkt  []byte
		want string
	}{
		{encodeRequest(opRRQ, "boot.bin", "octet"), "read"},
		{encodeRequest(opWRQ, "x", "octet"), "write"},
		{encodeACK(1), ""},
		{encodeError(1, "x"), ""},
	} {
		if got := lim.Classify(Port, tc.pkt); got != tc.want {
			t.Errorf("class of % x: %q, want %q", tc.pkt[:4], got, tc.want)
		}
	}
	// The profile can change or drop a class.
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "tftp"), 0o755)
	os.WriteFile(filepath.Join(dir, "template.xml"), []byte(`<core><databus/></core>`), 0o644)
	os.WriteFile(filepath.Join(dir, "tftp", "tftp.xml"), []byte(`<tftp enabled="True">
		<rate_limit class="read" per_source="5" global="50"/><rate_limit class="write" per_source="0" global="0"/></tftp>`), 0o644)
	p2, _ := profiles.LoadDir(dir)
	svc2 := protocoltest.Configure(t, protocol{}, p2).(*service)
	if l := svc2.RateLimits(); len(l) != 1 || l[0].Class != "read" || l[0].PerSource != 5 || l[0].Global != 50 {
		t.Fatalf("limits %+v", l)
	}
}
