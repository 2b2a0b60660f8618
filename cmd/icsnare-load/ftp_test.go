package main

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"github.com/icsnare/icsnare/protocols"
	_ "github.com/icsnare/icsnare/protocols/ftp"
	"github.com/icsnare/icsnare/protocols/vfs/vfstest"
)

// TestFTPMode runs the ftp mode against the FTP service on loopback, with the default
// options and others (a command, named users, another profile), and checks that requests
// succeeded and none failed.
func TestFTPMode(t *testing.T) {
	for _, c := range []struct {
		dir  string
		args []string
	}{
		{"../../protocols/ftp/testdata/conpot", nil},
		{"../../protocols/ftp/testdata/conpot", []string{"-command", "SYST"}},
		{"../../protocols/ftp/testdata/conpot", []string{"-login", "nobody:nobody", "-command", "HELP"}}, // multi-line 214
		{"../../protocols/ftp/testdata/conpot", []string{"-login", "test_user:test", "-command", "CWD /"}},
		{"../../protocols/ftp/testdata/noanon", []string{"-login", "admin:s7cp443", "-command", "MDTM LOG/events.log"}},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			a := testAddr()
			svc, h := service(t, "ftp", c.dir, a)
			srv := vfstest.ServeTCP(t, "ftp", svc.(protocols.StreamService), h, netip.AddrPortFrom(a, 0).String())
			code, ok, failed, _ := runCounts(t, "ftp", srv.Addr.String(), c.args...)
			if code != 0 || ok <= 0 || failed != 0 {
				t.Fatalf("exit %d requests=%d errors=%d", code, ok, failed)
			}
			if n := len(srv.Events.OfType("ftp.login")); n < 3 {
				t.Errorf("%d logins for 3 connections", n)
			}
		})
	}
}

// TestFTPWrongAnswers runs the ftp mode against servers that answer wrongly: the mode
// must not report success.
func TestFTPWrongAnswers(t *testing.T) {
	for _, c := range []struct {
		name   string
		answer func(line string) string
		args   []string
		want   string // in the output
	}{
		{"login refused", func(l string) string {
			if strings.HasPrefix(l, "PASS") {
				return "530 Login incorrect.\r\n"
			}
			return "331 Password required.\r\n"
		}, nil, "530 Login incorrect."},
		{"command refused", func(l string) string {
			if strings.HasPrefix(l, "USER") {
				return "230 Logged in.\r\n"
			}
			return "550 Permission denied.\r\n"
		}, nil, "550 Permission denied."},
		{"3xx to PWD", func(l string) string {
			if strings.HasPrefix(l, "USER") {
				return "230 Logged in.\r\n"
			}
			return "350 Pending.\r\n"
		}, nil, "350 Pending."},
		{"4xx to another command", func(l string) string {
			if strings.HasPrefix(l, "USER") {
				return "230 Logged in.\r\n"
			}
			return "450 Busy.\r\n"
		}, []string{"-command", "NOOP"}, "450 Busy."},
		{"malformed reply", func(l string) string {
			if strings.HasPrefix(l, "USER") {
				return "230 Logged in.\r\n"
			}
			return "2OO fine\r\n"
		}, nil, "malformed reply"},
		{"unterminated multi-line reply", func(l string) string {
			if strings.HasPrefix(l, "USER") {
				return "230 Logged in.\r\n"
			}
			return "257-\"/\"\r\n" + strings.Repeat("257-more\r\n", ftpMaxLines+1)
		}, nil, "over 1024 lines"},
	} {
		t.Run(c.name, func(t *testing.T) {
			addr := fakeFTP(t, "220 Ready.\r\n", c.answer)
			code, ok, failed, out := runCounts(t, "ftp", addr, c.args...)
			if code == 0 && failed <= 0 {
				t.Fatalf("exit %d requests=%d errors=%d against a wrong server", code, ok, failed)
			}
			if !strings.Contains(out, c.want) {
				t.Errorf("output does not name %q", c.want)
			}
		})
	}
	t.Run("greeting", func(t *testing.T) {
		addr := fakeFTP(t, "421 Too busy.\r\n", func(string) string { return "230 Logged in.\r\n" })
		if code, _, failed, _ := runCounts(t, "ftp", addr); code == 0 && failed <= 0 {
			t.Fatal("success after a 421 greeting")
		}
	})
}

// TestFTPReplies runs the mode against a server whose replies are multi-line, with
// preliminary replies and lines that look like ends but are not.
func TestFTPReplies(t *testing.T) {
	addr := fakeFTP(t, "120 In a moment.\r\n220-Welcome\r\n220 Ready.\r\n", func(l string) string {
		switch {
		case strings.HasPrefix(l, "USER"):
			return "331-Password\r\n 331 still\r\n331 required.\r\n"
		case strings.HasPrefix(l, "PASS"):
			return "230-Authorized personnel only\r\n230-\r\n230 Logged in.\r\n"
		case l == "STAT":
			return "150 Here it comes.\r\n211-Status\r\n211 End\r\n"
		}
		return "257-\"/\"\r\n257x\r\n2570 \r\n257 is the current directory.\r\n"
	})
	for _, args := range [][]string{nil, {"-command", "STAT"}} {
		if code, ok, failed, _ := runCounts(t, "ftp", addr, args...); code != 0 || ok <= 0 || failed != 0 {
			t.Fatalf("%v: exit %d requests=%d errors=%d", args, code, ok, failed)
		}
	}
}

func TestFTPFlagsChecked(t *testing.T) {
	for _, args := range [][]string{
		{"-mode", "ftp", "-login", "anonymous"},
		{"-mode", "ftp", "-login", ":secret"},
		{"-mode", "ftp", "-login", "a:b\r\nDELE x"},
		{"-mode", "ftp", "-command", "PWD\r\nDELE x"},
		{"-mode", "ftp", "-command", "NOOP\n"},
		{"-mode", "ftp", "-command", "SITE " + strings.Repeat("x", 196)},
		{"-mode", "ftp", "-command", "quit"},
		{"-mode", "ftp", "-command", "REIN"},
	} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 2 {
			t.Errorf("%q: exit %d, want 2 (%s)", args, code, errb.String())
		}
	}
	if err := newFTP(opts{login: "a:b", command: "SITE " + strings.Repeat("x", 195)}).(checker).check(); err != nil {
		t.Errorf("a 200-byte command refused: %v", err)
	}
}
