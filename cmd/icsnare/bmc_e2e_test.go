package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// TestBMCProfileChecks loads the embedded bmc profile as `icsnare check --profile bmc`
// does: it loads with no warning and serves IPMI, SNMP and HTTP, no PLC protocol.
func TestBMCProfileChecks(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"check", "--profile", "bmc", "--port-offset", "30000", "--metrics", "off"}, &out, &errb); code != 0 {
		t.Fatalf("check exit %d\nstdout: %s\nstderr: %s", code, out.String(), errb.String())
	}
	if strings.Contains(errb.String(), "warning") || strings.Contains(out.String(), "warning") {
		t.Fatalf("check warned:\nstdout: %s\nstderr: %s", out.String(), errb.String())
	}
	if !strings.Contains(out.String(), "profile bmc (embedded:bmc) serves http tcp/30080, ipmi udp/30623, snmp udp/30161") || !strings.HasSuffix(out.String(), "ok\n") {
		t.Fatalf("check output:\n%s", out.String())
	}
	out.Reset()
	errb.Reset()
	if code := run([]string{"profiles"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "Supermicro - X11DPi-N(T) BMC") {
		t.Fatalf("profiles exit %d:\n%s%s", code, out.String(), errb.String())
	}
}

// bmcIdentity is what one emulated BMC shows its clients.
type bmcIdentity struct {
	ipmiMAC, snmpMAC, sysName, title string
	boardSerial, productSerial       string
}

// TestBMCProfileThroughSensor runs the binary with the bmc profile on a /28 and talks to
// two of its hosts with ipmitool (RMCP+ suite 17), net-snmp and curl: every client sees the
// Supermicro X11DPi-N(T) BMC, and the two hosts differ in serials, MACs and names.
func TestBMCProfileThroughSensor(t *testing.T) {
	protocoltest.NeedTool(t, "go")
	ipmitool := protocoltest.NeedTool(t, "ipmitool")
	snmpget := protocoltest.NeedTool(t, "snmpget")
	curl := protocoltest.NeedTool(t, "curl")
	prefix := fmt.Sprintf("127.90.%d", 1+rand.IntN(250))
	off := protocoltest.FreeOffset(t)
	startBinary(t, "run", "--profile", "bmc", "--listen", prefix+".0/28", "--port-offset", strconv.Itoa(off),
		"--user", "root", "--metrics", "off", "--state", t.TempDir())
	waitListening(t, fmt.Sprintf("%s.1:%d", prefix, 80+off))

	exe := func(name string, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a hang guard
		defer cancel()
		out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		t.Logf("$ %s %s\n%s", name, strings.Join(args, " "), out)
		return string(out)
	}
	field := func(out, name string) string {
		t.Helper()
		m := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(name) + `\s*:\s*(.*?)\s*$`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no %q in:\n%s", name, out)
		}
		return m[1]
	}
	want := func(what, got, w string) {
		t.Helper()
		if got != w {
			t.Errorf("%s = %q, want %q", what, got, w)
		}
	}

	probe := func(host string) bmcIdentity {
		ipmi := func(user, pass string, extra ...string) string {
			args := append([]string{"-I", "lanplus", "-H", host, "-p", strconv.Itoa(623 + off), "-C", "17",
				"-U", user, "-P", pass, "-N", "2", "-R", "3"}, extra...)
			return exe(ipmitool, args...)
		}
		var id bmcIdentity

		mc := ipmi("ADMIN", "ADMIN", "mc", "info")
		want("Manufacturer ID", field(mc, "Manufacturer ID"), "10876")
		want("Manufacturer Name", field(mc, "Manufacturer Name"), "Super Micro Computer Inc.")
		want("Product ID", field(mc, "Product ID"), "2327 (0x0917)")
		want("Product Name", field(mc, "Product Name"), "X11DPi-N(T)")
		want("Firmware Revision", field(mc, "Firmware Revision"), "1.74")

		v15 := exe(ipmitool, "-I", "lan", "-H", host, "-p", strconv.Itoa(623+off), "-A", "MD5", "-U", "ADMIN", "-P", "ADMIN",
			"-N", "2", "-R", "3", "chassis", "status")
		want("System Power (IPMI v1.5, MD5)", field(v15, "System Power"), "on")

		cs := ipmi("operator", "Operat0r!", "-L", "OPERATOR", "chassis", "status")
		want("System Power", field(cs, "System Power"), "on")

		lan := ipmi("ADMIN", "ADMIN", "lan", "print", "1")
		want("IP Address", field(lan, "IP Address"), host)
		id.ipmiMAC = field(lan, "MAC Address")
		if !strings.HasPrefix(id.ipmiMAC, "0c:c4:7a:") {
			t.Errorf("IPMI MAC %s is not under Supermicro's OUI", id.ipmiMAC)
		}
		fru := ipmi("ADMIN", "ADMIN", "fru", "print", "0")
		want("Board Product", field(fru, "Board Product"), "X11DPi-N")
		want("Product Name", field(fru, "Product Name"), "SYS-6019P-MT")
		id.boardSerial, id.productSerial = field(fru, "Board Serial"), field(fru, "Product Serial")

		snmp := exe(snmpget, "-v2c", "-c", "public", "-On", "-r", "3", "-t", "2", fmt.Sprintf("%s:%d", host, 161+off),
			"1.3.6.1.2.1.1.1.0", "1.3.6.1.2.1.1.2.0", "1.3.6.1.2.1.1.5.0", "1.3.6.1.2.1.2.2.1.6.1")
		lines := strings.Split(strings.TrimSpace(snmp), "\n")
		if len(lines) != 4 {
			t.Fatalf("snmpget printed %d lines:\n%s", len(lines), snmp)
		}
		want("sysDescr", lines[0], `.1.3.6.1.2.1.1.1.0 = STRING: "Supermicro X11DPi-N(T) BMC, ASPEED AST2500, Firmware Revision 01.74.11"`)
		want("sysObjectID", lines[1], `.1.3.6.1.2.1.1.2.0 = OID: .1.3.6.1.4.1.10876.2.1`)
		name, ok := strings.CutPrefix(lines[2], `.1.3.6.1.2.1.1.5.0 = STRING: "`)
		if !ok || !strings.HasSuffix(name, `-bmc"`) {
			t.Fatalf("sysName line %q", lines[2])
		}
		id.sysName = strings.TrimSuffix(name, `"`)
		mac, ok := strings.CutPrefix(lines[3], `.1.3.6.1.2.1.2.2.1.6.1 = Hex-STRING: `)
		if !ok || !strings.HasPrefix(mac, "0C C4 7A ") {
			t.Fatalf("ifPhysAddress line %q", lines[3])
		}
		id.snmpMAC = strings.ToLower(strings.ReplaceAll(strings.TrimSpace(mac), " ", ":"))

		page := exe(curl, "-sS", "-i", "--max-time", "10", fmt.Sprintf("http://%s:%d/", host, 80+off))
		if !strings.HasPrefix(page, "HTTP/1.1 200 OK\r\n") || !strings.Contains(page, "\r\nServer: ATEN HTTP Server(V1.0)\r\n") {
			t.Errorf("web UI head:\n%s", page)
		}
		if m := regexp.MustCompile(`<title>(.*)</title>`).FindStringSubmatch(page); m != nil {
			id.title = m[1]
		}
		want("web UI title", id.title, id.sysName)
		for _, s := range []string{`action="/cgi/login.cgi"`, `name="name"`, `name="pwd"`, "X11DPi-N(T)"} {
			if !strings.Contains(page, s) {
				t.Errorf("web UI lacks %s", s)
			}
		}
		login := exe(curl, "-sS", "-i", "--max-time", "10", "-d", "name=ADMIN&pwd=ADMIN", fmt.Sprintf("http://%s:%d/cgi/login.cgi", host, 80+off))
		if !strings.HasPrefix(login, "HTTP/1.1 200 OK\r\n") || !strings.Contains(login, "/index.html?error=1") {
			t.Errorf("login answer:\n%s", login)
		}
		return id
	}

	a, b := probe(prefix+".1"), probe(prefix+".2")
	// One host, one MAC: IPMI's lan print and SNMP's ifPhysAddress both come from the
	// profile's MacAddress key.
	t.Logf("host 1: %+v", a)
	t.Logf("host 2: %+v", b)
	for _, id := range []bmcIdentity{a, b} {
		if id.ipmiMAC != id.snmpMAC {
			t.Errorf("IPMI says MAC %s, SNMP %s for the same host", id.ipmiMAC, id.snmpMAC)
		}
	}
	if a.ipmiMAC == b.ipmiMAC || a.snmpMAC == b.snmpMAC {
		t.Errorf("two hosts share a MAC: %+v %+v", a, b)
	}
	if a.boardSerial == b.boardSerial || a.productSerial == b.productSerial {
		t.Errorf("two hosts share a serial: %+v %+v", a, b)
	}
}
