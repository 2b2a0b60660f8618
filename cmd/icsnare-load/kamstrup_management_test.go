package main

import (
	"bufio"
	"bytes"
	"net"
	"slices"
	"strings"
	"testing"

	_ "github.com/icsnare/icsnare/protocols/kamstrup_management"
)

// The console answers each line after a fixed 0.25 s, so these runs last 1 s rather than
// 300 ms: a few answers per connection.

// TestKamstrupManagementMode runs kamstrup-management against the console of the
// kamstrup_382 template: every request succeeds, and the console took each line as the
// command asked.
func TestKamstrupManagementMode(t *testing.T) {
	cases := []struct {
		name, word string
		args       []string
	}{
		{"default", "!GV", nil},
		{"menu", "H", []string{"-command", "H"}},
		{"config, lower case, depth 2", "!GC", []string{"-command", "!gc", "-depth", "2"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			srv := serveKamstrup(t, "kamstrup_management", kamstrupTemplate)
			code, ok, failed, _ := runCounts(t, "kamstrup-management", srv.Addr.String(), append([]string{"-duration", "1s"}, c.args...)...)
			if code != 0 || ok <= 0 || failed != 0 {
				t.Fatalf("exit %d, requests=%d errors=%d", code, ok, failed)
			}
			cmds := srv.Events.OfType("kamstrup_management.command")
			if len(cmds) < ok {
				t.Fatalf("%d lines served, %d answers counted", len(cmds), ok)
			}
			for _, e := range cmds {
				for _, f := range e.Fields {
					if f.Key == "command" && f.Value != c.word {
						t.Fatalf("line %q taken as %v", e.Request, f.Value)
					}
				}
			}
			if srv.Panics.Load() != 0 {
				t.Fatal("handler panicked")
			}
		})
	}
}

// TestKamstrupManagementEveryCommand: each command the mode accepts gets answers from the
// console that the mode reads to their end.
func TestKamstrupManagementEveryCommand(t *testing.T) {
	words := make([]string, 0, len(kamConsoleAnswers))
	for w := range kamConsoleAnswers {
		words = append(words, w)
	}
	slices.Sort(words)
	for _, w := range words {
		t.Run(w, func(t *testing.T) {
			t.Parallel()
			srv := serveKamstrup(t, "kamstrup_management", kamstrupTemplate)
			code, ok, failed, _ := runCounts(t, "kamstrup-management", srv.Addr.String(),
				"-command", w, "-conns", "1", "-duration", "2s", "-max-requests", "3")
			if code != 0 || ok != 2 || failed != 0 {
				t.Fatalf("exit %d, requests=%d errors=%d, want 2 and 0", code, ok, failed)
			}
		})
	}
}

// consoleBanner is the console's greeting, as a fake sends it.
const consoleBanner = "\r\nWelcome...\r\nConnected to [00:13:EA:12:34:57]\r\n"

// TestKamstrupManagementWrongAnswers runs the mode against consoles that answer wrongly:
// the connection fails, with the error naming what was wrong.
func TestKamstrupManagementWrongAnswers(t *testing.T) {
	cases := []struct {
		name, banner, command, want string
		answer                      string // "": close instead
	}{
		{"garbage", consoleBanner, "!GV", "answer starts", "\r\nhello\r\n"},
		{"error text", consoleBanner, "!AC", "console answered \"? Command not found.\"", "\r\n? Command not found.\r\nSend 'H' for help.\r\n"},
		{"cut short", consoleBanner, "!GV", "answer cut short", "\r\nSoftware Version: 5.5"},
		{"no end line", consoleBanner, "!AC", "answer longer than", "\r\n" + strings.Repeat("x\r\n", 3000)},
		{"bare LF", consoleBanner, "!RC", "does not end with CR LF", "\r\nStatus: 0100\n"},
		{"closes", consoleBanner, "!GV", "no answer: EOF", ""},
		{"no banner", "hello\r\n", "!GV", "banner: answer starts", "\r\nSoftware Version: 5.5 (E5)\r\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			addr := fakeServer(t, func(nc net.Conn) {
				if _, err := nc.Write([]byte(c.banner)); err != nil {
					return
				}
				br := bufio.NewReader(nc)
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					if line != c.command+"\r\n" {
						t.Errorf("line %q, want %q", line, c.command+"\r\n")
						return
					}
					if c.answer == "" {
						return
					}
					if _, err := nc.Write([]byte(c.answer)); err != nil {
						return
					}
					if c.name == "cut short" {
						return
					}
				}
			})
			code, ok, failed, stderr := runCounts(t, "kamstrup-management", addr, "-command", c.command)
			if code == 0 || ok > 0 || (ok < 0 && code != 1) {
				t.Fatalf("exit %d, requests=%d errors=%d", code, ok, failed)
			}
			if !strings.Contains(stderr, c.want) {
				t.Fatalf("stderr %q does not name %q", stderr, c.want)
			}
		})
	}
}

// TestKamstrupManagementFlagsChecked: a command of several lines, over 200 bytes, with
// parameters or whose answer the mode cannot delimit, or a depth past what the console
// answers, exits with status 2.
func TestKamstrupManagementFlagsChecked(t *testing.T) {
	for _, args := range [][]string{
		{"-command", "!GV\r\n!GC"}, {"-command", "!GV\n"}, {"-command", "!GV\r"},
		{"-command", "H" + strings.Repeat(" ", 200)}, {"-command", strings.Repeat("x", 201)},
		{"-command", "!SD feeder-12"}, {"-command", "H !GV"}, {"-command", "!RR"}, {"-command", "Q"},
		{"-command", "!XX"}, {"-depth", "33"},
	} {
		var out, errb bytes.Buffer
		if code := run(append([]string{"-mode", "kamstrup-management", "-target", "127.95.0.1:1"}, args...), &out, &errb); code != 2 {
			t.Errorf("%q: exit %d, want 2 (%s)", args, code, errb.String())
		}
	}
	for _, cmd := range []string{"", "!GV", " !gv ", "H", "!GC"} {
		if err := newKamstrupManagement(opts{command: cmd, depth: 32}).(checker).check(); err != nil {
			t.Errorf("%q: %v", cmd, err)
		}
	}
}
