package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

// TestConpotCommandLineRefusals: Conpot's exit statuses for its command line — 3 without
// --config (unless -f), 1 for a template it cannot find, 0 and the template list without
// --template — and icsnare's own refusal of a bad configuration file.
func TestConpotCommandLineRefusals(t *testing.T) {
	dir := t.TempDir()
	badCfg := writeFile(t, dir, "bad.cfg", "[common]\nsensorid = x\n[json]\nenabled = perhaps\n")
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"conpot", "-t", "default"}, 3, "--config is required unless --force"},
		{[]string{"conpot", "-f", "-t", "no-such-template"}, 1, "template not found: no-such-template"},
		{[]string{"conpot", "-f"}, 0, "default\n  Unit:"},
		{[]string{"conpot", "-t", "default", "-c", badCfg}, 1, "bad.cfg:4: [json] enabled = \"perhaps\": not a boolean"},
		{[]string{"conpot", "-t", "default", "-c", filepath.Join(dir, "missing.cfg")}, 1, "--config:"},
		{[]string{"conpot", "--no-such-flag"}, exitUsage, "flag provided but not defined"},
		{[]string{"conpot", "-h"}, 0, "-template"},
		{[]string{"conpot", "-f", "-t", "default", "--", "--listen", "not-an-address"}, exitUsage, "hosts[0]"},
	} {
		var out, errb bytes.Buffer
		code := run(c.args, &out, &errb)
		if code != c.code || !strings.Contains(out.String()+errb.String(), c.want) {
			t.Errorf("%q: exit %d, want %d with %q\nstdout: %s\nstderr: %s", c.args, code, c.code, c.want, out.String(), errb.String())
		}
	}
}
