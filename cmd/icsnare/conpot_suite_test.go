package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// conpotSuiteConfig serves Conpot's default template as Conpot's own tests see it: Modbus
// in literal addressing, and the SNMPv3 user of test_snmp_server.py configured (icsnare
// never has Conpot's hard-coded users).
const conpotSuiteConfig = `
[protocols.modbus]
addressing = "literal"

[[protocols.snmp.users]]
name = "usr-sha-aes128"
access = "read-write"
auth = "SHA"
authpass = "authkey1"
priv = "AES"
privpass = "privkey1"
`

// TestConpotSuiteThroughSensor runs the binary on testdata/conpot/default, loaded
// unchanged, and replays the requests of Conpot's test_snmp_server.py (v2c and v3),
// test_http_server.py and test_modbus_server.py with real clients (net-snmp, curl) where
// the test used one, expecting Conpot's literal values.
func TestConpotSuiteThroughSensor(t *testing.T) {
	protocoltest.NeedTool(t, "go")
	snmpget := protocoltest.NeedTool(t, "snmpget")
	snmpset := protocoltest.NeedTool(t, "snmpset")
	snmpwalk := protocoltest.NeedTool(t, "snmpwalk")
	curl := protocoltest.NeedTool(t, "curl")
	cfg := filepath.Join(t.TempDir(), "icsnare.toml")
	if err := os.WriteFile(cfg, []byte(conpotSuiteConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	host := fmt.Sprintf("127.35.200.%d", 1+rand.IntN(250))
	off := lowOffset(t)
	startBinary(t, "run", "--config", cfg, "--profile", filepath.Join(conpotTemplates, "default"), "--listen", host,
		"--port-offset", strconv.Itoa(off), "--template-ports=false", "--user", "root", "--metrics", "off")
	httpAddr := net.JoinHostPort(host, strconv.Itoa(80+off))
	waitListening(t, httpAddr)
	snmpAddr := net.JoinHostPort(host, strconv.Itoa(161+off))
	mbAddr := net.JoinHostPort(host, strconv.Itoa(502+off))

	exe := func(name string, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a hang guard
		defer cancel()
		out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
		t.Logf("$ %s %s\n%s", filepath.Base(name), strings.Join(args, " "), out)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return string(out)
	}
	contains := func(what, out, want string) {
		t.Helper()
		if !strings.Contains(out, want) {
			t.Errorf("%s: no %q in:\n%s", what, want, out)
		}
	}

	t.Run("snmp v2c", func(t *testing.T) {
		// test_snmp_server: GET sysDescr.0; SET sysLocation.0 = "TESTVALUE" shows in the databus.
		contains("get", exe(snmpget, "-v2c", "-c", "public", "-Ov", snmpAddr, "1.3.6.1.2.1.1.1.0"), `STRING: "Siemens, SIMATIC, S7-200"`)
		contains("set", exe(snmpset, "-v2c", "-c", "private", snmpAddr, "1.3.6.1.2.1.1.6.0", "s", "TESTVALUE"), `"TESTVALUE"`)
		contains("get after set", exe(snmpget, "-v2c", "-c", "public", "-Ov", snmpAddr, "1.3.6.1.2.1.1.6.0"), `"TESTVALUE"`)
		// public is read-only.
		out, _ := exec.Command(snmpset, "-v2c", "-c", "public", "-t", "3", "-r", "0", snmpAddr, "1.3.6.1.2.1.1.6.0", "s", "X").CombinedOutput()
		contains("set with public", string(out), "noAccess")
		walk := exe(snmpwalk, "-v2c", "-c", "public", "-On", snmpAddr, "1.3.6.1.2.1.1")
		for _, w := range []string{`.1.3.6.1.2.1.1.1.0 = STRING: "Siemens, SIMATIC, S7-200"`, `.1.3.6.1.2.1.1.4.0 = STRING: "Siemens AG"`,
			`.1.3.6.1.2.1.1.5.0 = STRING: "CP 443-1 EX40"`, `.1.3.6.1.2.1.1.6.0 = STRING: "TESTVALUE"`, `.1.3.6.1.2.1.1.7.0 = INTEGER: 72`} {
			contains("walk", walk, w)
		}
		// Communities nobody configured get no answer.
		if out, err := exec.Command(snmpget, "-v2c", "-c", "secret", "-t", "1", "-r", "0", snmpAddr, "1.3.6.1.2.1.1.1.0").CombinedOutput(); err == nil {
			t.Errorf("community secret answered:\n%s", out)
		}
	})
	t.Run("snmp v3", func(t *testing.T) {
		v3 := []string{"-v3", "-l", "authPriv", "-u", "usr-sha-aes128", "-a", "SHA", "-A", "authkey1", "-x", "AES", "-X", "privkey1"}
		contains("get", exe(snmpget, append(v3, "-Ov", snmpAddr, "1.3.6.1.2.1.1.1.0")...), `STRING: "Siemens, SIMATIC, S7-200"`)
		contains("set", exe(snmpset, append(v3, snmpAddr, "1.3.6.1.2.1.1.6.0", "s", "V3VALUE")...), `"V3VALUE"`)
		contains("get after set", exe(snmpget, "-v2c", "-c", "public", "-Ov", snmpAddr, "1.3.6.1.2.1.1.6.0"), `"V3VALUE"`)
		// Conpot's other hard-coded users are not there.
		out, err := exec.Command(snmpget, "-v3", "-l", "authPriv", "-u", "usr-md5-des", "-a", "MD5", "-A", "authkey1", "-x", "DES", "-X", "privkey1",
			"-t", "2", "-r", "0", snmpAddr, "1.3.6.1.2.1.1.1.0").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "Unknown user name") {
			t.Errorf("usr-md5-des: %v\n%s", err, out)
		}
	})
	t.Run("http", func(t *testing.T) {
		url := "http://" + httpAddr
		contains("request_base", exe(curl, "-s", url+"/tests/unittest_base.html"), "ONLINE")
		contains("backend_databus", exe(curl, "-s", url+"/tests/unittest_databus.html"), "CP 443-1 EX40")
		contains("subselect_trigger", exe(curl, "-s", url+"/tests/unittest_subselects.html?action=unit&subaction=test"), "SUCCESSFUL")
		contains("subselect without trigger", exe(curl, "-s", url+"/tests/unittest_subselects.html"), "FAILED")
		head := exe(curl, "-s", "-I", url+"/tests/unittest_subselects.html?action=unit&subaction=test")
		contains("do_HEAD", head, "HTTP/1.1 200 OK")
		contains("do_HEAD", head, "Content-Length: 370")
		contains("HEAD missing page", exe(curl, "-s", "-I", url+"/tests/random_page_does_not_exists.html"), "HTTP/1.1 404")
		contains("do_OPTIONS", exe(curl, "-s", "-i", "-X", "OPTIONS", url+"/tests/unittest_subselects.html?action=unit&subaction=test"), "Allow: GET,HEAD,POST,OPTIONS,TRACE")
		contains("do_POST", exe(curl, "-s", "-i", "-d", "a=b", url+"/tests/demo.html"), "HTTP/1.1 404")
		contains("not_implemented_method", exe(curl, "-s", "-i", "-X", "PUT", "-d", "x", url+"/tests/demo.html"), "HTTP/1.1 501")
		contains("do_TRACE", exe(curl, "-s", "-i", "-X", "TRACE", url+"/index.html"), "HTTP/1.1 200 OK")
		// backend_tarpit: the node's tarpit holds the answer at least 5 s (a lower bound).
		start := time.Now()
		contains("backend_tarpit", exe(curl, "-s", url+"/tests/unittest_tarpit.html"), "Tarpit")
		if d := time.Since(start); d < 5*time.Second {
			t.Errorf("tarpit page answered after %v, want at least 5 s", d)
		}
	})
	t.Run("modbus literal", func(t *testing.T) {
		x := func(req string) []byte {
			t.Helper()
			c, err := net.DialTimeout("tcp", mbAddr, 2*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Write(unhexT(t, req)); err != nil {
				t.Fatal(err)
			}
			head := make([]byte, 7)
			if _, err := io.ReadFull(c, head); err != nil {
				t.Fatalf("%s: %v", req, err)
			}
			body := make([]byte, int(head[4])<<8|int(head[5])-1)
			if _, err := io.ReadFull(c, body); err != nil {
				t.Fatal(err)
			}
			return append(head, body...)
		}
		ones := strings.Repeat("ff", 16)
		if got, want := x("0001 0000 0017 01 0f 0001 0080 10"+ones), unhexT(t, "0001 0000 0006 01 0f 0001 0080"); !bytes.Equal(got, want) {
			t.Fatalf("FC15 128 coils at 1: % x, want % x", got, want)
		}
		if got, want := x("000100000006010100010080"), unhexT(t, "0001 0000 0013 01 01 10"+ones); !bytes.Equal(got, want) {
			t.Fatalf("FC1 at 1 qty 128: % x, want % x", got, want)
		}
		if got, want := x("0002 0000 0006 05 01 0001 0080"), unhexT(t, "0002 0000 0003 05 81 04"); !bytes.Equal(got, want) {
			t.Fatalf("read_nonexistent_slave: % x, want % x", got, want)
		}
		if got := x("00 01 00 00 00 05 01 2b 0e 01 02"); !bytes.Contains(got, []byte("Siemens")) || !bytes.Contains(got, []byte("SIMATIC")) {
			t.Fatalf("function_43_device_info: % x", got)
		}
		// mbpoll, a real master: with -0 its references are the wire addresses, so coil 1
		// and holding register 40001 are Conpot's literal blocks; without it, coil
		// reference 1 is wire address 0, outside them.
		mbpoll := protocoltest.NeedTool(t, "mbpoll")
		port := strconv.Itoa(502 + off)
		coils := exe(mbpoll, "-m", "tcp", "-a", "1", "-t", "0", "-0", "-r", "1", "-c", "8", "-1", "-p", port, host)
		for i := 1; i <= 8; i++ {
			contains("mbpoll coils", coils, fmt.Sprintf("[%d]: \t1", i))
		}
		contains("mbpoll holding", exe(mbpoll, "-m", "tcp", "-a", "2", "-t", "4", "-0", "-r", "40001", "-c", "4", "-1", "-p", port, host), "[40001]: \t0")
		out, _ := exec.Command(mbpoll, "-m", "tcp", "-a", "1", "-t", "0", "-r", "1", "-c", "8", "-1", "-p", port, host).CombinedOutput()
		contains("mbpoll 1-based", string(out), "Illegal data address")
	})
}

func unhexT(t *testing.T, s string) []byte {
	t.Helper()
	var b []byte
	if _, err := fmt.Sscanf(strings.ReplaceAll(s, " ", ""), "%x", &b); err != nil {
		t.Fatalf("hex %q: %v", s, err)
	}
	return b
}
