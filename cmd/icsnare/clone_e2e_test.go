package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/clone"
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// Test addresses of the clone tests: 127.38.0.0/16 on the machine, 127.73.0.0/16 inside
// network namespaces (clone_ns_e2e_test.go).

// tsharkLines runs tshark and returns its output lines without its warning about root.
func tsharkLines(t *testing.T, tshark string, args ...string) []string {
	t.Helper()
	out, err := protocoltest.Run(t, time.Minute, tshark, args...)
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "Running as user") {
			lines = append(lines, l)
		}
	}
	return lines
}

// seededIn reports whether line shows one of the report's seeded originals (a MAC also
// without its separators, as SNMP engine IDs carry it).
func seededIn(rep *clone.Report, line string) bool {
	for _, s := range rep.Seeded {
		if strings.Contains(line, s.Original) || s.Kind == clone.KindMAC && strings.Contains(line, strings.NewReplacer(":", "", "-", "").Replace(s.Original)) {
			return true
		}
	}
	return false
}

// TestCloneDefaultProfile clones an icsnare host that runs the default profile over every
// protocol at the default politeness, inside a network namespace of its own (the standard
// ports are free there and the capture holds only this clone session), serves the clone
// and compares what nmap's scripts print of both; a capture of the clone session must show
// reads only.
func TestCloneDefaultProfile(t *testing.T) {
	nmap := protocoltest.NeedTool(t, "nmap")
	tshark := protocoltest.NeedTool(t, "tshark")
	c := newCloneNS(t)
	orig := c.net + ".1"
	stopOrig := c.run("default", orig)
	pcap, stop := c.capture("host "+orig, func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if conn, err := c.ns.Dial(ctx, "tcp", orig+":80"); err == nil {
			conn.Close()
		}
	})
	out := filepath.Join(t.TempDir(), "clone")
	start := time.Now()
	rep := c.clone(out, "--target", orig, "--interval", "3s")
	took := time.Since(start)
	stop()
	t.Logf("benchmark: cloning the default profile at the default politeness (%.0f requests/s) took %s and %d requests",
		rep.Rate, took.Round(100*time.Millisecond), rep.Requests)
	for _, p := range rep.Protocols {
		t.Logf("  %s: %s, %d requests in %.1fs", p.Name, p.Status, p.Requests, p.Seconds)
		want := "cloned"
		switch p.Name {
		case "ftp", "bacnet", "enip", "ipmi":
			want = "absent" // the default profile serves none of them
		}
		if p.Status != want {
			t.Errorf("%s: %s (%s), want %s", p.Name, p.Status, p.Error, want)
		}
	}
	if float64(rep.Requests)/rep.Seconds > rep.Rate*1.1 {
		t.Errorf("%d requests in %.1fs: over the rate limit of %.0f/s", rep.Requests, rep.Seconds, rep.Rate)
	}
	kinds := map[string]bool{}
	for _, s := range rep.Seeded {
		kinds[s.Kind] = true
		t.Logf("  seeded: %s %s (%s) -> %s", s.Protocol, s.Field, s.Original, s.Key)
	}
	for _, k := range []string{clone.KindMAC, clone.KindSerial, clone.KindHostname} {
		if !kinds[k] {
			t.Errorf("no %s was seeded per host", k)
		}
	}
	if len(rep.Engines) == 0 {
		t.Error("no SNMP value became an engine (sysUpTime moves)")
	}

	// Only reads on the wire.
	writes := `s7comm.param.func in {0x05, 0x28, 0x29, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f} || modbus.func_code in {5, 6, 15, 16, 21, 22, 23} || snmp.set_request_element || (http.request && http.request.method != "GET")`
	if got := tsharkLines(t, tshark, "-r", pcap, "-Y", writes); len(got) > 0 {
		t.Errorf("the capture shows writes:\n%s", strings.Join(got, "\n"))
	}
	for _, f := range []string{"s7comm", "mbtcp", "snmp", "http.request"} {
		c := len(tsharkLines(t, tshark, "-r", pcap, "-Y", f, "-T", "fields", "-e", "frame.number"))
		t.Logf("capture: %d %s frames, none of them a write", c, f)
		if c == 0 {
			t.Errorf("the capture holds no %s frame", f)
		}
	}

	nmapFacts := func(addr string) []string {
		return c.scriptLines(nmap, "-Pn", "-n", "-sT", "-sU", "-p", "T:80,T:102,T:502,U:161",
			"--script", "s7-info,modbus-discover,http-title,snmp-info", addr)
	}
	before := nmapFacts(orig)
	stopOrig()
	c.run(out, c.cloneNet()+".0/24")
	engine := regexp.MustCompile(`snmpEngine(Boots|Time)`)
	for _, host := range []string{c.cloneNet() + ".9", c.cloneNet() + ".77"} {
		after := nmapFacts(host)
		// the SNMP engine's own boots and time are never cloned
		if same := sameFacts(t, rep, host, before, after, engine.MatchString); same < len(before)/2 {
			t.Errorf("%s: only %d of %d lines equal", host, same, len(before))
		}
	}
}

const snmpdConf = `agentaddress udp:%s
rocommunity %s 127.0.0.0/8 -V cloneview
view cloneview included .1.3.6.1.2.1.1
view cloneview included .1.3.6.1.2.1.2
view cloneview included .1.3.6.1.2.1.4.20
view cloneview included .1.3.6.1.4.1.2021.10.1.2
sysName plc-hall3-07
sysLocation Pump house 2, cabinet S4
sysContact OT maintenance <ot@example.org>
sysServices 72
`

// walk runs snmpwalk -On in the namespace and returns OID → "TYPE: value".
func (c *cloneNS) walk(snmpwalk, community, addr string) map[string]string {
	c.t.Helper()
	out := c.exec(snmpwalk, "-v2c", "-c", community, "-On", "-t", "2", "-r", "1", addr, ".1")
	m := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		oid, val, ok := strings.Cut(l, " = ")
		if ok && strings.HasPrefix(oid, ".") && !strings.HasPrefix(val, "No more variables") {
			m[strings.TrimPrefix(oid, ".")] = val
		}
	}
	return m
}

// grewSince reports whether the original's counter value now is above the clone's
// (frozen) value of the same type.
func grewSince(clone, now string) bool {
	ct, cv, ok1 := strings.Cut(clone, ": ")
	nt, nv, ok2 := strings.Cut(now, ": ")
	if !ok1 || !ok2 || ct != nt || (ct != "Counter32" && ct != "Counter64") {
		return false
	}
	a, err1 := strconv.ParseUint(cv, 10, 64)
	b, err2 := strconv.ParseUint(nv, 10, 64)
	return err1 == nil && err2 == nil && b > a
}

// TestCloneSnmpd clones net-snmp's snmpd, started by the test in a network namespace,
// serves the clone on a /24 there and compares snmpwalk of both: every OID agrees except
// the seeded fields and the engines.
func TestCloneSnmpd(t *testing.T) {
	snmpd := protocoltest.NeedTool(t, "snmpd")
	snmpwalk := protocoltest.NeedTool(t, "snmpwalk")
	snmpget := protocoltest.NeedTool(t, "snmpget")
	tshark := protocoltest.NeedTool(t, "tshark")
	c := newCloneNS(t)
	dir := t.TempDir()
	const community = "plant7ro"
	agentIP := c.net + ".1"
	agent := agentIP + ":161"
	conf := filepath.Join(dir, "snmpd.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, snmpdConf, agent, community), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := c.ns.Command(context.Background(), snmpd, "-f", "-Lf", filepath.Join(dir, "snmpd.log"), "-C", "-c", conf, "-p", filepath.Join(dir, "snmpd.pid"))
	cmd.Env = append(os.Environ(), "SNMP_PERSISTENT_DIR="+dir, "MIBS=")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	ready := false
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if out, err := c.ns.Command(context.Background(), snmpget, "-v2c", "-c", community, "-t", "1", "-r", "0", agent, "1.3.6.1.2.1.1.5.0").CombinedOutput(); err == nil && strings.Contains(string(out), "plc-hall3-07") {
			ready = true
			break
		}
	}
	if !ready {
		log, _ := os.ReadFile(filepath.Join(dir, "snmpd.log"))
		t.Fatalf("snmpd did not answer on %s:\n%s", agent, log)
	}
	pcap, stop := c.capture("host "+agentIP, func() {
		c.ns.Command(context.Background(), snmpget, "-v2c", "-c", community, "-t", "1", "-r", "0", agent, "1.3.6.1.2.1.1.3.0").Run()
	})
	out := filepath.Join(dir, "clone")
	rep := c.clone(out, "--target", agentIP, "--protocols", "snmp", "--community", community, "--interval", "3s", "--rate", "50")
	stop()
	if rep.Protocols[0].Status != "cloned" {
		t.Fatalf("snmp: %s %s", rep.Protocols[0].Status, rep.Protocols[0].Error)
	}
	if got := tsharkLines(t, tshark, "-r", pcap, "-Y", "snmp.set_request_element"); len(got) > 0 {
		t.Errorf("the capture shows SNMP SETs:\n%s", strings.Join(got, "\n"))
	}
	reads := tsharkLines(t, tshark, "-r", pcap, "-Y", "snmp.get_request_element || snmp.get_next_request_element || snmp.getBulkRequest_element",
		"-T", "fields", "-e", "frame.number")
	t.Logf("capture: %d read requests (the clone's and the capture's own probes), no SET", len(reads))
	if len(reads) < rep.Requests {
		t.Errorf("the capture holds %d SNMP read requests, the cloner counted %d", len(reads), rep.Requests)
	}

	exempt := map[string]string{}
	for _, s := range rep.Seeded {
		exempt[strings.Fields(s.Field)[0]] = "seeded " + s.Kind
	}
	for _, e := range rep.Engines {
		exempt[strings.Fields(e.Field)[0]] = "engine " + e.Engine
	}
	for _, v := range rep.Protocols[0].Varying {
		exempt[strings.Fields(v)[0]] = "varying"
	}
	c.run(out, c.cloneNet()+".0/24", "--port-offset", "1000") // snmpd holds 161
	t0 := time.Now()
	original := c.walk(snmpwalk, community, agent)
	t.Logf("snmpwalk of the original: %s", time.Since(t0).Round(time.Millisecond))
	copies := []map[string]string{
		c.walk(snmpwalk, community, c.cloneNet()+".7:1161"),
		c.walk(snmpwalk, community, c.cloneNet()+".200:1161"),
	}
	t.Logf("snmpwalks done after %s", time.Since(t0).Round(time.Millisecond))
	if len(original) < 20 {
		t.Fatalf("the original walk has only %d objects", len(original))
	}
	builtin := regexp.MustCompile(`^1\.3\.6\.1\.(2\.1\.11|6\.3\.10\.2\.1|6\.3\.15\.1\.1)\.`)
	differ := 0
	for i, c := range copies {
		for oid, v := range original {
			cv, ok := c[oid]
			switch {
			case !ok:
				if _, ex := exempt[oid]; !ex {
					t.Errorf("clone %d lacks %s = %s", i, oid, v)
				}
			case cv != v:
				if why, ex := exempt[oid]; ex {
					differ++
					if i == 0 {
						t.Logf("%s differs (%s): %s / %s", oid, why, v, cv)
					}
				} else if grewSince(cv, v) {
					// A counter that stood still during the clone's two walks (another
					// interface of this machine) and moved since: the clone froze it.
					differ++
					t.Logf("%s moved on the original after the clone: %s / %s", oid, v, cv)
				} else {
					t.Errorf("clone %d: %s = %s, the original %s", i, oid, cv, v)
				}
			}
		}
		for oid, v := range c {
			if _, ok := original[oid]; !ok && !builtin.MatchString(oid) {
				t.Errorf("clone %d has %s = %s, the original has not", i, oid, v)
			}
		}
	}
	if copies[0]["1.3.6.1.2.1.1.5.0"] == copies[1]["1.3.6.1.2.1.1.5.0"] && copies[0]["1.3.6.1.2.1.1.5.0"] != "" {
		t.Logf("two clone hosts drew the same sysName %s (2 digits: 1 in 100)", copies[0]["1.3.6.1.2.1.1.5.0"])
	}
	t.Logf("%d objects walked; the clone agrees on every one except %d seeded or engine values", len(original), differ)
}
