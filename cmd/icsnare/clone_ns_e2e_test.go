package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/clone"
	"github.com/icsnare/icsnare/internal/netnstest"
	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// The clone tests inside network namespaces use 127.73.0.0/16 on the namespace's lo: the
// standard ports are free there, and a capture holds only the test's own traffic.

// cloneNS is a network namespace with the built binary.
type cloneNS struct {
	t   *testing.T
	ns  *netnstest.NS
	bin string
	net string // "127.73.N": the original's /24; the clone gets 127.73.N+1
}

func newCloneNS(t *testing.T) *cloneNS {
	t.Helper()
	ns := netnstest.New(t)
	n := 2 * (1 + rand.IntN(120))
	return &cloneNS{t: t, ns: ns, bin: buildStatic(t), net: fmt.Sprintf("127.73.%d", n)}
}

// cloneNet is the clone's /24, next to the original's.
func (c *cloneNS) cloneNet() string {
	var n int
	fmt.Sscanf(c.net, "127.73.%d", &n)
	return fmt.Sprintf("127.73.%d", n+1)
}

// run starts `icsnare run` in the namespace (extra flags after the test's own: a later
// --port-offset wins) and waits until it serves; stop ends it.
func (c *cloneNS) run(profile, listen string, extra ...string) (stop func()) {
	t := c.t
	t.Helper()
	args := append([]string{"run", "--profile", profile, "--listen", listen, "--port-offset", "0",
		"--user", "root", "--metrics", "off", "--events", os.DevNull, "--state", t.TempDir()}, extra...)
	cmd := c.ns.Command(context.Background(), c.bin, args...)
	logs := &syncLog{}
	cmd.Stderr, cmd.Stdout = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Error("icsnare did not exit within 5 s")
		}
	}
	t.Cleanup(stop)
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(logs.String(), "sensor running"); time.Sleep(50 * time.Millisecond) {
		select {
		case <-done:
			t.Fatalf("icsnare exited:\n%s", logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("icsnare did not start:\n%s", logs.String())
		}
	}
	return stop
}

// exec runs a command in the namespace and returns its combined output.
func (c *cloneNS) exec(name string, args ...string) string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute) // a hang guard
	defer cancel()
	out, err := c.ns.Command(ctx, name, args...).CombinedOutput()
	if err != nil {
		c.t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return string(out)
}

// capture starts dumpcap on the namespace's lo; probe is sent until the capture sees it.
func (c *cloneNS) capture(filter string, probe func()) (pcap string, stop func()) {
	t := c.t
	t.Helper()
	dumpcap := protocoltest.NeedTool(t, "dumpcap")
	nsenter := protocoltest.NeedTool(t, "nsenter")
	wrapper := filepath.Join(t.TempDir(), "dumpcap-in-ns")
	script := fmt.Sprintf("#!/bin/sh\nexec %s --net=%s -- %s \"$@\"\n", nsenter, c.ns.Path(), dumpcap)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	pcap = filepath.Join(t.TempDir(), "clone.pcapng")
	return pcap, protocoltest.Capture(t, wrapper, filter, pcap, probe)
}

// clone runs `icsnare clone` in the namespace and returns the report; the template must load.
func (c *cloneNS) clone(out string, args ...string) *clone.Report {
	t := c.t
	t.Helper()
	start := time.Now()
	res := c.exec(c.bin, append([]string{"clone", "--out", out}, args...)...)
	t.Logf("icsnare clone %v took %s:\n%s", args, time.Since(start).Round(time.Millisecond), res)
	if !slices.Contains(args, "--quiet") && !strings.Contains(res, "req/s") {
		t.Errorf("no progress line:\n%s", res)
	}
	b, err := os.ReadFile(filepath.Join(out, "clone.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep clone.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("clone.json: %v", err)
	}
	if _, err := profiles.LoadDir(out); err != nil {
		t.Fatalf("the clone does not load: %v", err)
	}
	return &rep
}

// scriptLines runs nmap in the namespace and returns the script output lines ("|…").
func (c *cloneNS) scriptLines(nmap string, args ...string) []string {
	c.t.Helper()
	out := c.exec(nmap, args...)
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "|") {
			lines = append(lines, strings.TrimRight(l, " "))
		}
	}
	if len(lines) == 0 {
		c.t.Fatalf("nmap %v printed no script output:\n%s", args, out)
	}
	return lines
}

// sameFacts compares what a client printed of the original and of a clone host, line by
// line: equal, or showing a seeded per-host field of the report (exempt lines for other
// reasons match skip). It returns how many lines were equal.
func sameFacts(t *testing.T, rep *clone.Report, host string, before, after []string, skip func(string) bool) int {
	t.Helper()
	if len(after) != len(before) {
		t.Errorf("%s: %d lines, the original %d:\n%s\n---\n%s", host, len(after), len(before), strings.Join(before, "\n"), strings.Join(after, "\n"))
		return 0
	}
	same := 0
	for i := range before {
		switch {
		case before[i] == after[i]:
			same++
		case seededIn(rep, before[i]):
			t.Logf("%s: seeded per host: %q -> %q", host, before[i], after[i])
		case skip != nil && skip(before[i]):
			t.Logf("%s: differs as expected: %q -> %q", host, before[i], after[i])
		default:
			t.Errorf("%s: %q, the original %q", host, after[i], before[i])
		}
	}
	return same
}

// TestCloneBACnetController clones icsnare's bacnet-controller persona (BACnet, SNMP,
// HTTP) at the default politeness, serves the clone on a /24 and compares nmap's
// bacnet-info of the original and of two clone hosts; a capture of the clone session
// holds BACnet reads only (no WriteProperty, DeviceCommunicationControl or
// ReinitializeDevice) and dissects without malformed packets.
func TestCloneBACnetController(t *testing.T) {
	nmap := protocoltest.NeedTool(t, "nmap")
	tshark := protocoltest.NeedTool(t, "tshark")
	c := newCloneNS(t)
	orig := c.net + ".5"
	stop := c.run("bacnet-controller", c.net+".0/24")
	probe, err := c.ns.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	whoIs := []byte{0x81, 0x0a, 0x00, 0x08, 0x01, 0x00, 0x10, 0x08}
	dst := net.UDPAddrFromAddrPort(netip.MustParseAddrPort(orig + ":47808"))
	pcap, stopCap := c.capture("udp port 47808", func() { probe.WriteTo(whoIs, dst) })
	out := filepath.Join(t.TempDir(), "clone")
	rep := c.clone(out, "--target", orig, "--interval", "2s", "--quiet")
	stopCap()
	for _, p := range rep.Protocols {
		t.Logf("  %s: %s, %d requests in %.1fs", p.Name, p.Status, p.Requests, p.Seconds)
		if p.Name == "bacnet" {
			t.Logf("  bacnet found:\n%s\nskipped:\n%s\nnotes:\n%s", strings.Join(p.Found, "\n"), strings.Join(p.Skipped, "\n"), strings.Join(p.Notes, "\n"))
		}
		want := map[string]string{"bacnet": "cloned", "snmp": "cloned", "http": "cloned"}[p.Name]
		if want == "" {
			want = "absent"
		}
		if p.Status != want {
			t.Errorf("%s: %s (%s), want %s", p.Name, p.Status, p.Error, want)
		}
	}
	for _, s := range rep.Seeded {
		t.Logf("  seeded: %s %s (%s) -> %s = %s", s.Protocol, s.Field, s.Original, s.Key, s.Expression)
	}
	for _, e := range rep.Engines {
		t.Logf("  engine: %s %s %s (%s)", e.Protocol, e.Field, e.Engine, e.Observed)
	}
	bacnetInfo := func(host string) []string {
		return c.scriptLines(nmap, "-Pn", "-n", "-sU", "-p", "47808", "--script", "bacnet-info", host)
	}
	before := bacnetInfo(orig)
	t.Logf("bacnet-info of the original:\n%s", strings.Join(before, "\n"))
	stop()

	// Reads only on the wire, and nothing malformed.
	writes := fmt.Sprintf("ip.dst == %s && !(bacapp.confirmed_service in {12, 14} || bacapp.unconfirmed_service == 8)", orig)
	if got := tsharkLines(t, tshark, "-r", pcap, "-Y", writes); len(got) > 0 {
		t.Errorf("the capture shows BACnet writes or control services:\n%s", strings.Join(got, "\n"))
	}
	if got := tsharkLines(t, tshark, "-r", pcap, "-Y", "_ws.malformed || _ws.expert.severity >= warning"); len(got) > 0 {
		t.Errorf("tshark finds malformed packets or warnings:\n%s", strings.Join(got, "\n"))
	}
	services := tsharkLines(t, tshark, "-r", pcap, "-Y", "ip.dst == "+orig+" && bacapp.type in {0, 1}", "-T", "fields", "-e", "bacapp.confirmed_service", "-e", "bacapp.unconfirmed_service")
	counts := map[string]int{}
	for _, l := range services {
		counts[strings.Join(strings.Fields(l), "/")]++
	}
	t.Logf("capture: BACnet requests by service (confirmed/unconfirmed): %v", counts)
	if len(counts) == 0 {
		t.Error("the capture holds no BACnet request")
	}

	c.run(out, c.cloneNet()+".0/24")
	for _, host := range []string{c.cloneNet() + ".9", c.cloneNet() + ".77"} {
		after := bacnetInfo(host)
		t.Logf("bacnet-info of %s:\n%s", host, strings.Join(after, "\n"))
		if same := sameFacts(t, rep, host, before, after, nil); same < len(before)-2 {
			t.Errorf("%s: only %d of %d lines equal", host, same, len(before))
		}
	}
}

// TestCloneEnip clones an EtherNet/IP controller (protocols/enip/testdata/logix served by
// the sensor), serves the clone and compares nmap's enip-info over TCP and over UDP; the
// capture holds only the three List commands.
func TestCloneEnip(t *testing.T) {
	nmap := protocoltest.NeedTool(t, "nmap")
	tshark := protocoltest.NeedTool(t, "tshark")
	c := newCloneNS(t)
	orig := c.net + ".5"
	profile, err := filepath.Abs(filepath.Join("..", "..", "protocols", "enip", "testdata", "logix"))
	if err != nil {
		t.Fatal(err)
	}
	stop := c.run(profile, c.net+".0/24")
	probe, err := c.ns.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	nop := make([]byte, 24) // a NOP: no answer
	dst := net.UDPAddrFromAddrPort(netip.MustParseAddrPort(orig + ":44818"))
	pcap, stopCap := c.capture("port 44818", func() { probe.WriteTo(nop, dst) })
	out := filepath.Join(t.TempDir(), "clone")
	rep := c.clone(out, "--target", orig, "--protocols", "enip", "--quiet")
	stopCap()
	if p := rep.Protocols[0]; p.Status != "cloned" {
		t.Fatalf("enip: %s %s", p.Status, p.Error)
	}
	t.Logf("found: %s", strings.Join(rep.Protocols[0].Found, "\n"))
	cmds := tsharkLines(t, tshark, "-r", pcap, "-Y", "ip.dst == "+orig+" && enip", "-T", "fields", "-e", "enip.command")
	counts := map[string]int{}
	for _, l := range cmds {
		counts[l]++
		if l != "0x0063" && l != "0x0004" && l != "0x0064" && l != "0x0000" {
			t.Errorf("the cloner sent encapsulation command %s", l)
		}
	}
	t.Logf("capture: encapsulation commands to the device: %v", counts)
	if counts["0x0063"] < 2 || counts["0x0004"] < 2 || counts["0x0064"] < 2 {
		t.Errorf("ListIdentity, ListServices and ListInterfaces over TCP and UDP: %v", counts)
	}
	if got := tsharkLines(t, tshark, "-r", pcap, "-Y", "_ws.malformed || _ws.expert.severity >= warning"); len(got) > 0 {
		t.Errorf("tshark finds malformed packets or warnings:\n%s", strings.Join(got, "\n"))
	}
	enipInfo := func(host, scan string) []string {
		return c.scriptLines(nmap, "-Pn", "-n", scan, "-p", "44818", "--script", "enip-info", host)
	}
	perHost := func(l string) bool { return strings.Contains(l, "serialNumber:") || strings.Contains(l, "deviceIp:") }
	before := map[string][]string{"-sT": enipInfo(orig, "-sT"), "-sU": enipInfo(orig, "-sU")}
	t.Logf("enip-info of the original:\n%s", strings.Join(before["-sT"], "\n"))
	stop()
	c.run(out, c.cloneNet()+".0/24")
	for _, host := range []string{c.cloneNet() + ".9", c.cloneNet() + ".77"} {
		for _, scan := range []string{"-sT", "-sU"} {
			after := enipInfo(host, scan)
			t.Logf("enip-info %s of %s:\n%s", scan, host, strings.Join(after, "\n"))
			if same := sameFacts(t, rep, host+" "+scan, before[scan], after, perHost); same < len(before[scan])-2 {
				t.Errorf("%s %s: only %d of %d lines equal", host, scan, same, len(before[scan]))
			}
		}
	}
}

// TestCloneBMC clones the IPMI of icsnare's bmc persona (facts a BMC tells without
// credentials), serves the clone and compares nmap's ipmi-version and what ipmitool shows
// without a valid login; the capture holds session-less reads only.
func TestCloneBMC(t *testing.T) {
	nmap := protocoltest.NeedTool(t, "nmap")
	ipmitool := protocoltest.NeedTool(t, "ipmitool")
	tshark := protocoltest.NeedTool(t, "tshark")
	c := newCloneNS(t)
	orig := c.net + ".5"
	stop := c.run("bmc", c.net+".0/24")
	probe, err := c.ns.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	dst := net.UDPAddrFromAddrPort(netip.MustParseAddrPort(orig + ":623"))
	ping := []byte{0x06, 0x00, 0xFF, 0x06, 0x00, 0x00, 0x11, 0xBE, 0x80, 0x01, 0x00, 0x00}
	pcap, stopCap := c.capture("udp port 623", func() { probe.WriteTo(ping, dst) })
	out := filepath.Join(t.TempDir(), "clone")
	rep := c.clone(out, "--target", orig, "--protocols", "ipmi", "--quiet")
	stopCap()
	if p := rep.Protocols[0]; p.Status != "cloned" {
		t.Fatalf("ipmi: %s %s", p.Status, p.Error)
	}
	t.Logf("found:\n%s\nrefused:\n%s\nskipped:\n%s", strings.Join(rep.Protocols[0].Found, "\n"), strings.Join(rep.Protocols[0].Refused, "\n"), strings.Join(rep.Protocols[0].Skipped, "\n"))
	// Session-less only: no RMCP+ session setup, no authenticated message.
	msgs := tsharkLines(t, tshark, "-o", "ipmi.dissect_bus_commands:TRUE", "-r", pcap, "-Y", "ip.dst == "+orig, "-T", "fields", "-e", "rmcp.class", "-e", "ipmi_session.authtype", "-e", "ipmi.header.netfn", "-e", "ipmi.header.command")
	counts := map[string]int{}
	for _, l := range msgs {
		counts[strings.Join(strings.Fields(l), "/")]++
	}
	t.Logf("capture: datagrams to the BMC by RMCP class/auth type/netfn/command: %v", counts)
	if got := tsharkLines(t, tshark, "-o", "ipmi.dissect_bus_commands:TRUE", "-r", pcap, "-Y", "ip.dst == "+orig+" && ipmi_session && (ipmi_session.authtype != 0 || ipmi_session.id != 0 || ipmi.header.netfn != 6 || !(ipmi.header.command in {0x01, 0x37, 0x38, 0x54}))"); len(got) > 0 {
		t.Errorf("the cloner opened or used a session:\n%s", strings.Join(got, "\n"))
	}
	// tshark 4.0 has no parser for Get System GUID and Get Channel Cipher Suites data and
	// says so with an Undecoded warning; anything else counts.
	bad := `_ws.malformed || _ws.expert.severity >= warning && _ws.expert.message != "[PARSER NOT IMPLEMENTED]"`
	if got := tsharkLines(t, tshark, "-o", "ipmi.dissect_bus_commands:TRUE", "-r", pcap, "-Y", bad); len(got) > 0 {
		v := strings.Join(tsharkLines(t, tshark, "-o", "ipmi.dissect_bus_commands:TRUE", "-r", pcap, "-V", "-Y", bad), "\n")
		t.Errorf("tshark finds malformed packets or warnings:\n%s", protocoltest.GrepContext(v, "Expert Info"))
	}
	ipmiVersion := func(host string) []string {
		return c.scriptLines(nmap, "-Pn", "-n", "-sU", "-p", "623", "--script", "ipmi-version", host)
	}
	// ipmitool with a user the BMC does not know: what a guess sees.
	tool := func(host string) []string {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var lines []string
		for _, args := range [][]string{{"-I", "lanplus", "-C", "3"}, {"-I", "lanplus", "-C", "17"}, {"-I", "lan"}} {
			b, _ := c.ns.Command(ctx, ipmitool, append(args, "-H", host, "-U", "nobody", "-P", "guess", "-R", "1", "-N", "2", "mc", "info")...).CombinedOutput()
			for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
				lines = append(lines, strings.Join(args, " ")+": "+l)
			}
		}
		return lines
	}
	before, beforeTool := ipmiVersion(orig), tool(orig)
	t.Logf("ipmi-version of the original:\n%s\nipmitool:\n%s", strings.Join(before, "\n"), strings.Join(beforeTool, "\n"))
	stop()
	c.run(out, c.cloneNet()+".0/24")
	for _, host := range []string{c.cloneNet() + ".9", c.cloneNet() + ".77"} {
		after, afterTool := ipmiVersion(host), tool(host)
		t.Logf("ipmi-version of %s:\n%s\nipmitool:\n%s", host, strings.Join(after, "\n"), strings.Join(afterTool, "\n"))
		if same := sameFacts(t, rep, host, before, after, nil); same != len(before) {
			t.Errorf("%s: %d of %d ipmi-version lines equal", host, same, len(before))
		}
		if same := sameFacts(t, rep, host, beforeTool, afterTool, nil); same != len(beforeTool) {
			t.Errorf("%s: %d of %d ipmitool lines equal", host, same, len(beforeTool))
		}
	}
}

// TestCloneS7Blocks clones the S7 and Modbus of icsnare's default persona (an S7-300 CPU
// with program blocks, data blocks and live Modbus input registers): the block list, block
// info and DB contents come along, moving registers become engines; nmap's s7-info and
// modbus-discover print the same of original and clone, a clone of the clone lists the
// same blocks, and the capture shows only reads.
func TestCloneS7Blocks(t *testing.T) {
	nmap := protocoltest.NeedTool(t, "nmap")
	tshark := protocoltest.NeedTool(t, "tshark")
	c := newCloneNS(t)
	orig := c.net + ".5"
	stop := c.run("default", c.net+".0/24")
	pcap, stopCap := c.capture("tcp port 102 or tcp port 502", func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if conn, err := c.ns.Dial(ctx, "tcp", orig+":502"); err == nil {
			conn.Close()
		}
	})
	out := filepath.Join(t.TempDir(), "clone")
	rep := c.clone(out, "--target", orig, "--protocols", "s7comm,modbus", "--interval", "3s", "--quiet")
	stopCap()
	for _, p := range rep.Protocols {
		if p.Status != "cloned" {
			t.Fatalf("%s: %s %s", p.Name, p.Status, p.Error)
		}
		t.Logf("%s found:\n%s\nskipped:\n%s\nrefused:\n%s", p.Name, strings.Join(p.Found, "\n"), strings.Join(p.Skipped, "\n"), strings.Join(p.Refused, "\n"))
	}
	engines := 0
	for _, e := range rep.Engines {
		if e.Protocol == "modbus" {
			engines++
		}
	}
	t.Logf("%d Modbus registers became engines", engines)
	if engines == 0 {
		t.Error("no Modbus register became an engine (the persona's input registers are live)")
	}
	x, err := os.ReadFile(filepath.Join(out, "s7comm", "s7comm.xml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`<block type="OB" number="1" lang="STL" size="1462" local="24" name="MAIN" family="PW" author="EMSR"/>`,
		`<area type="DB" number="10" size="40" key="s7DB10" format="bytes"/>`} {
		if !strings.Contains(string(x), want) {
			t.Errorf("s7comm.xml lacks %s:\n%s", want, x)
		}
	}
	// Reads only: S7 setup, read var and userdata; Modbus reads.
	writes := `s7comm.param.func in {0x05, 0x28, 0x29, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f} || modbus.func_code in {5, 6, 15, 16, 21, 22, 23}`
	if got := tsharkLines(t, tshark, "-r", pcap, "-Y", writes); len(got) > 0 {
		t.Errorf("the capture shows writes:\n%s", strings.Join(got, "\n"))
	}
	if got := tsharkLines(t, tshark, "-r", pcap, "-Y", "_ws.malformed || _ws.expert.severity >= warning"); len(got) > 0 {
		t.Errorf("tshark finds malformed packets or warnings:\n%s", strings.Join(got, "\n"))
	}
	fns := tsharkLines(t, tshark, "-r", pcap, "-Y", "ip.dst == "+orig+" && s7comm.header.rosctr in {1, 7}", "-T", "fields", "-e", "s7comm.param.func", "-e", "s7comm.param.userdata.funcgroup", "-e", "s7comm.param.userdata.subfunc")
	counts := map[string]int{}
	for _, l := range fns {
		counts[strings.Join(strings.Fields(l), "/")]++
	}
	t.Logf("capture: S7 jobs and userdata (function/group/subfunction): %v", counts)
	facts := func(host string) []string {
		return c.scriptLines(nmap, "-Pn", "-n", "-sT", "-p", "102,502", "--script", "s7-info,modbus-discover", host)
	}
	before := facts(orig)
	t.Logf("nmap of the original:\n%s", strings.Join(before, "\n"))
	stop()
	c.run(out, c.cloneNet()+".0/24")
	host := c.cloneNet() + ".9"
	after := facts(host)
	t.Logf("nmap of %s:\n%s", host, strings.Join(after, "\n"))
	if same := sameFacts(t, rep, host, before, after, nil); same < len(before)-3 {
		t.Errorf("%s: only %d of %d lines equal", host, same, len(before))
	}
	again := filepath.Join(t.TempDir(), "again")
	c.clone(again, "--target", host, "--protocols", "s7comm", "--quiet")
	y, err := os.ReadFile(filepath.Join(again, "s7comm", "s7comm.xml"))
	if err != nil {
		t.Fatal(err)
	}
	section := func(s, tag string) string {
		i, j := strings.Index(s, "<"+tag+">"), strings.Index(s, "</"+tag+">")
		if i < 0 || j < i {
			return ""
		}
		return s[i:j]
	}
	if a, b := section(string(x), "blocks"), section(string(y), "blocks"); a == "" || a != b {
		t.Errorf("the clone of the clone lists other blocks:\n%s\n---\n%s", a, b)
	}
}
