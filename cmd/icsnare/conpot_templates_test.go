package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// conpotTemplates is where the repository keeps Conpot's templates as test data.
const conpotTemplates = "../../testdata/conpot"

// conpotTemplateDirs lists the template directories present under testdata/conpot (XML or
// TOML); some arrive from other work later, so the tests iterate over what exists.
func conpotTemplateDirs(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(conpotTemplates)
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(conpotTemplates, e.Name())
		for _, base := range []string{"template.xml", "template.toml"} {
			if _, err := os.Stat(filepath.Join(dir, base)); err == nil {
				dirs = append(dirs, dir)
				break
			}
		}
	}
	if len(dirs) < 4 {
		t.Fatalf("only %d template directories under %s: %v", len(dirs), conpotTemplates, dirs)
	}
	return dirs
}

// lowOffset returns a free port offset at which every standard port of the templates,
// BACnet's 47808 included, stays a port.
func lowOffset(t *testing.T) int {
	t.Helper()
	for range 50 {
		if off := protocoltest.FreeOffset(t); off+47808 <= 65535 {
			return off
		}
	}
	t.Fatal("no free port offset below 17728")
	return 0
}

// udpProbes are requests each UDP protocol answers, so a test can tell it is served.
var udpProbes = map[string]string{
	// SNMPv2c GET sysDescr.0, community public (Conpot's default community).
	"snmp": "302902010104067075626c6963a01c020400000001020100020100300e300c06082b060102010101000500",
	// RMCP ASF presence ping.
	"ipmi": "0600ff06000011be80000000",
	// BVLC original-unicast NPDU Who-Is.
	"bacnet": "810a000801001008",
	// TFTP read request for a file nobody has: an error packet comes back.
	"tftp": "00016e6f2d737563682d66696c65006f6374657400",
	// EtherNet/IP ListIdentity.
	"enip": "630000000000000000000000000000000000000000000000",
}

// servesRE picks the endpoints out of check's "hosts …: profile … serves …" line.
var servesRE = regexp.MustCompile(`(?m)^hosts \S+: profile .* serves (.*)$`)

// fileLineRE is an error naming a template file and line.
var fileLineRE = regexp.MustCompile(`^icsnare (check|run): (\S+?):(\d+): `)

// TestConpotTemplates runs `icsnare check` and `icsnare run` (the built binary) on every
// template directory under testdata/conpot, as a user replacing Conpot would: each either
// serves every protocol section icsnare implements — each port probed — or stops with an
// error naming a file of that template and a line.
func TestConpotTemplates(t *testing.T) {
	protocoltest.NeedTool(t, "go")
	bin := buildStatic(t)
	for i, dir := range conpotTemplateDirs(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			host := fmt.Sprintf("127.35.%d.%d", 10+i, 1+rand.IntN(250))
			off := lowOffset(t)
			args := []string{"--profile", dir, "--listen", host, "--port-offset", strconv.Itoa(off),
				"--template-ports=false", "--metrics", "off", "--user", "root", "--state", t.TempDir()}
			var out, errb bytes.Buffer
			check := exec.Command(bin, append([]string{"check"}, args...)...)
			check.Stdout, check.Stderr = &out, &errb
			err := check.Run()
			t.Logf("$ icsnare check %s\n%s%s", strings.Join(args, " "), out.String(), errb.String())
			if err != nil {
				refused(t, bin, dir, args, errb.String())
				return
			}
			// Conpot warns about the misspelt IF-MIB symbol of its IEC104 and snmp templates
			// and goes on: so does icsnare, naming the file and line.
			if snmpXML := filepath.Join(dir, "snmp", "snmp.xml"); fileHas(snmpXML, `name="ifOutUNcastPkts"`) {
				want := fmt.Sprintf("%s:%d: <symbol>: MIB module IF-MIB has no symbol ifOutUNcastPkts", snmpXML, lineOf(t, snmpXML, `name="ifOutUNcastPkts"`))
				if !strings.Contains(errb.String()+out.String(), want) {
					t.Errorf("no warning %q", want)
				}
			}
			m := servesRE.FindStringSubmatch(out.String())
			if m == nil {
				t.Fatalf("check printed no served endpoints:\n%s", out.String())
			}
			served := map[string][]string{} // protocol → "tcp/PORT" …
			for _, ep := range strings.Split(m[1], ", ") {
				name, where, ok := strings.Cut(ep, " ")
				if !ok {
					t.Fatalf("endpoint %q", ep)
				}
				served[name] = append(served[name], where)
			}
			p, err := profiles.Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range p.ProtocolNames() {
				if _, ok := protocols.Lookup(name); ok && served[name] == nil {
					t.Errorf("section %s is implemented but not served (served: %v)", name, served)
				}
			}
			cmd := exec.Command(bin, append([]string{"run"}, args...)...)
			logs := &syncLog{}
			cmd.Stderr, cmd.Stdout = logs, nil
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			t.Cleanup(func() {
				cmd.Process.Signal(os.Interrupt)
				select {
				case <-exited:
				case <-time.After(5 * time.Second):
					cmd.Process.Kill()
					t.Error("icsnare did not stop within 5 s")
				}
			})
			for name, eps := range served {
				for _, ep := range eps {
					proto, port, _ := strings.Cut(ep, "/")
					addr := net.JoinHostPort(host, port)
					if err := probe(proto, name, addr); err != nil {
						t.Errorf("%s %s: %v", name, ep, err)
					}
				}
			}
			select {
			case err := <-exited:
				t.Fatalf("icsnare run exited while serving: %v\n%s", err, logs.String())
			default:
			}
		})
	}
}

// fileHas reports whether file exists and contains s.
func fileHas(file, s string) bool {
	b, err := os.ReadFile(file)
	return err == nil && strings.Contains(string(b), s)
}

// lineOf returns the 1-based line of file where s first appears.
func lineOf(t *testing.T, file, s string) int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, s) {
			return i + 1
		}
	}
	t.Fatalf("%s has no %q", file, s)
	return 0
}

// refused checks a refusal: check's error names a file of the template and a line, and run
// refuses with the same message before binding anything.
func refused(t *testing.T, bin, dir string, args []string, stderr string) {
	t.Helper()
	m := fileLineRE.FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("check refused without naming file:line:\n%s", stderr)
	}
	if rel, err := filepath.Rel(dir, m[2]); err != nil || strings.HasPrefix(rel, "..") {
		t.Fatalf("check's error names %s, not a file of %s", m[2], dir)
	}
	var errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	run := exec.CommandContext(ctx, bin, append([]string{"run"}, args...)...)
	run.Stderr = &errb
	if err := run.Run(); err == nil {
		t.Fatal("run served what check refused")
	}
	want := strings.TrimPrefix(strings.TrimSpace(stderr), "icsnare check: ")
	if !strings.Contains(errb.String(), want) {
		t.Fatalf("run's error differs from check's:\nrun:   %s\ncheck: %s", errb.String(), want)
	}
	t.Logf("refused, naming %s:%s", m[2], m[3])
}

// probe shows that addr serves protocol name: a TCP connection is accepted; a UDP request
// of that protocol gets an answer.
func probe(transport, name, addr string) error {
	deadline := time.Now().Add(10 * time.Second)
	if transport == "tcp" {
		var err error
		for time.Now().Before(deadline) {
			var c net.Conn
			if c, err = net.DialTimeout("tcp", addr, time.Second); err == nil {
				return c.Close()
			}
			time.Sleep(100 * time.Millisecond)
		}
		return err
	}
	req, ok := udpProbes[name]
	if !ok {
		return fmt.Errorf("no UDP probe for protocol %s: add one to udpProbes", name)
	}
	b, err := hex.DecodeString(strings.ReplaceAll(req, " ", ""))
	if err != nil {
		return err
	}
	c, err := net.Dial("udp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	buf := make([]byte, 2048)
	for time.Now().Before(deadline) {
		if _, err := c.Write(b); err != nil {
			return err
		}
		c.SetReadDeadline(time.Now().Add(time.Second))
		if n, err := c.Read(buf); err == nil && n > 0 {
			return nil
		}
	}
	return fmt.Errorf("no answer to %s", req)
}
