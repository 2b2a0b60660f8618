package main

import (
	"strings"
	"testing"
)

func TestCloneUsage(t *testing.T) {
	out := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no target", []string{"--out", out}, "--target is required"},
		{"no out", []string{"--target", "127.38.50.1"}, "--out DIR is required"},
		{"prefix", []string{"--target", "127.38.50.0/24", "--out", out}, "one address only"},
		{"range", []string{"--target", "127.38.50.1-20", "--out", out}, "one address only"},
		{"list", []string{"--target", "127.38.50.1,127.38.50.2", "--out", out}, "one address only"},
		{"broadcast", []string{"--target", "255.255.255.255", "--out", out}, "broadcast"},
		{"bad port", []string{"--target", "127.38.50.1", "--out", out, "--port", "modbus=70000"}, "want proto=port"},
		{"bad v3", []string{"--target", "127.38.50.1", "--out", out, "--v3", "ops::priv"}, "privacy needs authentication"},
		{"unknown protocol", []string{"--target", "127.38.50.1", "--out", out, "--protocols", "dnp3"}, "not one the cloner probes"},
		{"stray argument", []string{"--target", "127.38.50.1", "--out", out, "extra"}, "unexpected argument"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr strings.Builder
			if code := run(append([]string{"clone"}, tc.args...), &stdout, &stderr); code != exitUsage {
				t.Errorf("exit %d, want %d", code, exitUsage)
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("stderr %q, want %q", stderr.String(), tc.want)
			}
		})
	}
}

// A device that answers nothing gives no template and a clear message.
func TestCloneNothing(t *testing.T) {
	var stdout, stderr strings.Builder
	code := run([]string{"clone", "--target", "127.38.50.9", "--out", t.TempDir(), "--protocols", "modbus,s7comm,http,ftp",
		"--timeout", "300ms", "--quiet"}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "no protocol was cloned") {
		t.Errorf("exit %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "absent") {
		t.Errorf("the summary names no absent protocol:\n%s", stdout.String())
	}
}
