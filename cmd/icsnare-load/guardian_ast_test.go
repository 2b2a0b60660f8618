package main

import (
	"bufio"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/icsnare/icsnare/protocols"
	_ "github.com/icsnare/icsnare/protocols/guardian_ast"
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// guardianProfiles are the two framings the sensor's guardian_ast serves: Conpot's
// template (no SOH/ETX, LF lines) and the embedded tls350 profile (SOH, CR LF, ETX).
var guardianProfiles = []struct{ name, dir string }{
	{"conpot", "../../testdata/conpot/guardian_ast"},
	{"tls350", "../../profiles/templates/tls350"},
}

// serveGauge serves guardian_ast from dir on a fresh loopback address.
func serveGauge(t *testing.T, dir string) *protocoltest.Server {
	t.Helper()
	a := testAddr()
	svc, h := service(t, "guardian_ast", dir, a)
	return protocoltest.ServeTCP(t, "guardian_ast", svc.(protocols.StreamService), h, netip.AddrPortFrom(a, 0).String())
}

// TestGuardianASTAgainstService runs the mode against the real service in both framings:
// the default command and I20200 as the other modes are run (3 connections, 300 ms, 300
// requests), then every function the sensor renders, a single tank, the computer format,
// and commands whose only answer is the error reply, on a smaller budget. Every request
// must succeed.
func TestGuardianASTAgainstService(t *testing.T) {
	full := []string{"-conns", "3", "-duration", "300ms", "-max-requests", "300"}
	short := []string{"-conns", "1", "-duration", "300ms", "-max-requests", "10"}
	cases := []struct {
		command string
		budget  []string
	}{
		{"", full}, {"I20200", full},
		{"I10100", short}, {"I11100", short}, {"I20300", short}, {"I20400", short},
		{"I20500", short}, {"I20600", short}, {"I90200", short}, {"I20102", short},
		{"I20204", short}, {"i20100", short}, {"i20200", short}, {"i20500", short},
		{"i90200", short}, {"9999FF1B", short}, {"I201", short}, {"X20100", short},
	}
	for _, p := range guardianProfiles {
		srv := serveGauge(t, p.dir)
		for _, c := range cases {
			t.Run(p.name+"/"+c.command, func(t *testing.T) {
				args := []string{"-mode", "guardian-ast", "-target", srv.Addr.String(), "-warmup", "0s"}
				if c.command != "" {
					args = append(args, "-command", c.command)
				}
				code, ok, failed, _ := loadRun(t, append(args, c.budget...)...)
				if code != 0 || ok <= 0 || failed != 0 {
					t.Fatalf("exit %d, requests=%d errors=%d", code, ok, failed)
				}
			})
		}
		if srv.Panics.Load() != 0 {
			t.Fatal("handler panicked")
		}
	}
}

// TestGuardianASTRefusedByService: a function or tank the gauge does not know, and a
// computer format it does not render, get the error reply, a failed request.
func TestGuardianASTRefusedByService(t *testing.T) {
	for _, p := range guardianProfiles {
		srv := serveGauge(t, p.dir)
		for _, cmd := range []string{"I99900", "I20109", "i10100"} {
			code, ok, failed, out := loadRun(t, "-mode", "guardian-ast", "-target", srv.Addr.String(), "-command", cmd,
				"-conns", "2", "-warmup", "0s", "-duration", "300ms", "-max-requests", "10")
			if code == 0 || ok > 0 || !strings.Contains(out, "9999FF1B") {
				t.Fatalf("%s %s: exit %d, requests=%d errors=%d", p.name, cmd, code, ok, failed)
			}
		}
	}
}

// A console-framed I20100 report, as a fake gauge sends it.
const tlsInventory = "\x01\r\nI20100\r\nNOV 29, 2026 9:05 AM\r\n\r\nSTATION\r\n\r\n\r\n\r\n\r\n" +
	"IN-TANK INVENTORY\r\n\r\n" +
	"TANK PRODUCT             VOLUME TC VOLUME   ULLAGE   HEIGHT    WATER     TEMP\r\n" +
	"  1  REGULAR               5000      4990     3000    50.00     0.50    58.00\r\n\r\n\x03"

// TestGuardianASTWrongAnswers: a gauge that answers wrongly fails the requests: each
// connection's only answer wrong gives no successful request and exit status 1; a right
// answer and then a wrong one counts one success and one error.
func TestGuardianASTWrongAnswers(t *testing.T) {
	for _, c := range []struct{ name, answer, want string }{
		{"no ETX, closed", tlsInventory[:40], "read up to ETX: EOF"},
		{"another function", strings.Replace(tlsInventory, "I20100", "I20200", 1), "not the command echoed"},
		{"error reply", "\x019999FF1B\x03", "9999FF1B"},
		{"Conpot framing cut short", "\nI20100\n11/29/2026 09:05\n\nSTATION\n", "EOF"},
		{"Conpot error reply", "9999FF1B\n", "9999FF1B"},
		{"report cut short", strings.Replace(tlsInventory, "\r\n\r\n\x03", "\r\n\x03", 1), "ends early"},
		{"two answers", tlsInventory + tlsInventory, "bytes after the answer"},
		{"no answer, closed", "", "EOF"},
		{"garbage", "HTTP/1.0 400 Bad Request\r\n\r\n", "unexpected answer"},
	} {
		t.Run(c.name, func(t *testing.T) {
			addr := fakeGauge(t, c.answer)
			code, ok, _, out := loadRun(t, "-mode", "guardian-ast", "-target", addr, "-conns", "2",
				"-warmup", "0s", "-duration", "300ms", "-max-requests", "10")
			if code != 1 || ok > 0 || !strings.Contains(out, c.want) {
				t.Fatalf("exit %d, requests=%d; want exit 1 and %q", code, ok, c.want)
			}
		})
	}
	t.Run("right then wrong", func(t *testing.T) {
		addr := fakeGauge(t, tlsInventory, "\x019999FF1B\x03")
		code, ok, failed, _ := loadRun(t, "-mode", "guardian-ast", "-target", addr, "-conns", "1",
			"-warmup", "0s", "-duration", "300ms", "-max-requests", "10")
		if code != 0 || ok != 1 || failed != 1 {
			t.Fatalf("exit %d, requests=%d errors=%d; want 0, 1, 1", code, ok, failed)
		}
	})
	t.Run("expected error, got report", func(t *testing.T) {
		addr := fakeGauge(t, tlsInventory)
		code, _, _, out := loadRun(t, "-mode", "guardian-ast", "-command", "I201", "-target", addr, "-conns", "1",
			"-warmup", "0s", "-duration", "300ms", "-max-requests", "10")
		if code != 1 || !strings.Contains(out, "expected the error reply") {
			t.Fatalf("exit %d", code)
		}
	})
}

// TestGuardianAnswer checks answers the service does not produce: the computer format's
// checksum, and a console-framed report of a function without a known layout.
func TestGuardianAnswer(t *testing.T) {
	computer := "\x01i20100261129090501&&"
	var sum uint16
	for _, c := range []byte(computer) {
		sum += uint16(c)
	}
	good := computer + fmt.Sprintf("%04X", -sum) + "\x03"
	bad := computer + "0000\x03"
	for _, c := range []struct {
		cmd, answer string
		expect      guardianExpect
		ok          bool
	}{
		{"i20100", good, expectComputer, true},
		{"i20100", bad, expectComputer, false},
		{"i20500", good, expectComputer, false},
		{"I10200", "\x01\r\nI10200\r\nNOV 29, 2026 9:05 AM\r\n\r\nA REPORT\r\n\x03", expectDisplay, true},
		{"I10200", "\x01\r\nI10300\r\nNOV 29, 2026 9:05 AM\r\n\r\nA REPORT\r\n\x03", expectDisplay, false},
		{"I10200", "\nI10200\nA REPORT\n\n", expectDisplay, false},
		{"I20100", "\x01" + strings.Repeat("x", guardianMaxAnswer), expectDisplay, false},
	} {
		err := guardianAnswer(bufio.NewReaderSize(strings.NewReader(c.answer), guardianMaxAnswer), c.cmd, c.expect)
		if (err == nil) != c.ok {
			t.Errorf("%s %q: %v", c.cmd, clip([]byte(c.answer)), err)
		}
	}
}

// TestGuardianASTFlags: what check refuses exits with status 2.
func TestGuardianASTFlags(t *testing.T) {
	for _, cmd := range []string{
		"   ",                       // blank
		strings.Repeat("I20100", 6), // 36 bytes
		"I20100\r",                  // control character
		"I2\x0100",                  // SOH inside
		"I2010\x7f",                 // DEL
		"I20100\u00e9",              // not ASCII
		"S60201MY LABEL",            // a set command
		"s60200X",                   // a set command, computer format
		"I2010012",                  // an inquiry with trailing characters
	} {
		code, _, _, _ := loadRun(t, "-mode", "guardian-ast", "-command", cmd, "-target", "127.95.0.1:10001")
		if code != 2 {
			t.Errorf("-command %q: exit %d, want 2", cmd, code)
		}
	}
	if code, _, _, _ := loadRun(t, "-mode", "guardian-ast", "-depth", "2", "-target", "127.95.0.1:10001"); code != 2 {
		t.Errorf("-depth 2: exit %d, want 2", code)
	}
	if _, err := guardianClassify(""); err == nil {
		t.Error("an empty command is accepted")
	}
}
