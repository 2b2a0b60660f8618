package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// TestHelpListsEveryCommand: the top-level help names every command of the tree, and each
// command's help its own subcommands.
func TestHelpListsEveryCommand(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"--help"}, &out, &errb); code != 0 {
		t.Fatalf("--help: exit %d: %s", code, errb.String())
	}
	root := newRootCmd(&bytes.Buffer{}, &bytes.Buffer{})
	for _, c := range root.Commands() {
		if !strings.Contains(out.String(), "\n  "+c.Name()+" ") {
			t.Errorf("icsnare --help does not list %q:\n%s", c.Name(), out.String())
		}
		for _, sub := range c.Commands() {
			var o bytes.Buffer
			if code := run([]string{c.Name(), "--help"}, &o, &bytes.Buffer{}); code != 0 {
				t.Fatalf("%s --help: exit %d", c.Name(), code)
			}
			if !strings.Contains(o.String(), "\n  "+sub.Name()+" ") {
				t.Errorf("icsnare %s --help does not list %q:\n%s", c.Name(), sub.Name(), o.String())
			}
		}
	}
	for _, want := range []string{"xdp", "clone", "conpot", "completion", "man", "config", "Exit status: 0 success, 1 runtime failure, 2 bad command line"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help lacks %q", want)
		}
	}
}

// TestUsageErrors: mistyped flags and commands exit 2 with a suggestion; defaults show in
// the help.
func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"run", "--lisen", "127.0.0.1"}, 2, "unknown flag: --lisen; did you mean --listen?"},
		{[]string{"check", "--port-ofset", "1"}, 2, "did you mean --port-offset?"},
		{[]string{"config", "print", "--sensor", "x"}, 2, "did you mean --sensor-id?"},
		{[]string{"xdp", "stats", "--pinn", "/x"}, 2, "did you mean --pin?"},
		{[]string{"rn"}, 2, "unknown command \"rn\" for \"icsnare\"\n\nDid you mean this?\n\trun"},
		{[]string{"run", "serve"}, 2, `unexpected arguments ["serve"]`},
		{[]string{"profiles", "export", "default"}, 2, "accepts 2 arg(s), received 1"},
		{[]string{"run", "--port-offset", "70000"}, 2, "--port-offset 70000: want 0 to 65535"},
		{[]string{"run", "--help"}, 0, `--log-level level                 level: debug, info, warn or error (default "info")`},
		{[]string{"xdp", "stats", "--help"}, 0, `-n, --top N`},
		{nil, 2, "Available Commands:"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(tt.args, &out, &errb)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, out.String(), errb.String())
			}
			if !strings.Contains(out.String()+errb.String(), tt.want) {
				t.Fatalf("output lacks %q\nstdout: %s\nstderr: %s", tt.want, out.String(), errb.String())
			}
		})
	}
}

// TestCompletionScripts: bash and zsh completion scripts generate and parse in their shells.
func TestCompletionScripts(t *testing.T) {
	for _, shell := range []string{"bash", "zsh"} {
		t.Run(shell, func(t *testing.T) {
			protocoltest.NeedTool(t, shell)
			var out, errb bytes.Buffer
			if code := run([]string{"completion", shell}, &out, &errb); code != 0 {
				t.Fatalf("exit %d: %s", code, errb.String())
			}
			if !strings.Contains(out.String(), "icsnare") {
				t.Fatalf("the %s script does not mention icsnare", shell)
			}
			file := filepath.Join(t.TempDir(), "icsnare."+shell)
			if err := os.WriteFile(file, out.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			if b, err := exec.Command(shell, "-n", file).CombinedOutput(); err != nil {
				t.Fatalf("%s -n: %v\n%s", shell, err, b)
			}
		})
	}
	// The shell asks the binary for candidates through the hidden __complete command.
	var out bytes.Buffer
	if code := run([]string{"__complete", "run", "--lis"}, &out, &bytes.Buffer{}); code != 0 || !strings.Contains(out.String(), "--listen") {
		t.Fatalf("__complete run --lis: exit %d, %q", code, out.String())
	}
}

// TestManPages: `icsnare man DIR` writes a page per command from the same definitions, and
// groff formats each without a warning.
func TestManPages(t *testing.T) {
	protocoltest.NeedTool(t, "groff")
	dir := t.TempDir()
	var errb bytes.Buffer
	if code := run([]string{"man", dir}, &bytes.Buffer{}, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, page := range []string{"icsnare.1", "icsnare-run.1", "icsnare-check.1", "icsnare-config-print.1", "icsnare-xdp-stats.1", "icsnare-profiles-export.1", "icsnare-completion-zsh.1"} {
		file := filepath.Join(dir, page)
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("groff", "-man", "-ww", "-z", file)
		if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
			t.Errorf("groff %s: %v\n%s", page, err, out)
		}
		if page == "icsnare-run.1" {
			for _, want := range []string{"--listen", "--port-offset", "--log-format", "--mibpath"} {
				if !strings.Contains(string(b), `\fB`+want+`\fP`) {
					t.Errorf("%s lacks %s", page, want)
				}
			}
		}
	}
}
