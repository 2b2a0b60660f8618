package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/internal/netnstest"
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// TestBACnetControllerProfileChecks loads the embedded bacnet-controller profile as
// `icsnare check` does: no warning, BACnet, SNMP and HTTP, no PLC protocol.
func TestBACnetControllerProfileChecks(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"check", "--profile", "bacnet-controller", "--port-offset", "10000", "--metrics", "off"}, &out, &errb); code != 0 {
		t.Fatalf("check exit %d\nstdout: %s\nstderr: %s", code, out.String(), errb.String())
	}
	if strings.Contains(errb.String(), "warning") || strings.Contains(out.String(), "warning") {
		t.Fatalf("check warned:\nstdout: %s\nstderr: %s", out.String(), errb.String())
	}
	if !strings.Contains(out.String(), "profile bacnet-controller (embedded:bacnet-controller) serves bacnet udp/57808, http tcp/10080, snmp udp/10161\n") || !strings.HasSuffix(out.String(), "ok\n") {
		t.Fatalf("check output:\n%s", out.String())
	}
	out.Reset()
	errb.Reset()
	if code := run([]string{"profiles"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "Distech Controls - ECLYPSE ECY-S1000 AHU controller") {
		t.Fatalf("profiles exit %d:\n%s%s", code, out.String(), errb.String())
	}
}

// controllerIdentity is what one emulated controller shows its clients, by protocol.
type controllerIdentity struct {
	instance                      int
	nmapName, bacnetName, sysName string
	title, pageName               string
	bacnetSerial, pageSerial      string
	snmpMAC, pageMAC              string
	bacnetLocation, sysLocation   string
	pageInstance                  string
	supplyAir                     float64
}

// bacnetControllerRead is the JSON line of testdata/bacnet_controller.js.
type bacnetControllerRead struct {
	IAm []struct {
		Address  string
		DeviceID int `json:"deviceId"`
		MaxApdu  int
		VendorID int
	}
	Device       map[string][]any
	Objects      map[string]map[string][]any
	Errors       []string
	Error        string
	Setpoint     float64
	FanCommand   float64
	FanPriority8 float64
	DCC          string
	Reinitialize string
	COV          *struct {
		Process        int
		Device, Object string
		Values         [][]any
	}
}

// TestBACnetControllerThroughSensor runs the binary with --profile bacnet-controller on a
// /24 of 127.36/16 inside a network namespace of its own (so the standard ports are free
// and the capture holds only this test's traffic) and reads two hosts with nmap's
// bacnet-info, @bacnet-js/client (the device, every object, writes), net-snmp and curl:
// every client sees the same controller, the two hosts differ, and tshark dissects the
// BACnet traffic with no malformed packet and no expert warning.
func TestBACnetControllerThroughSensor(t *testing.T) {
	nmap := protocoltest.NeedTool(t, "nmap")
	node := protocoltest.NeedTool(t, "node")
	snmpget := protocoltest.NeedTool(t, "snmpget")
	curl := protocoltest.NeedTool(t, "curl")
	tshark := protocoltest.NeedTool(t, "tshark")
	dumpcap := protocoltest.NeedTool(t, "dumpcap")
	nsenter := protocoltest.NeedTool(t, "nsenter")
	protocoltest.NeedTool(t, "go")
	mods := nodeModulesDir(t)
	ns := netnstest.New(t)
	net24 := fmt.Sprintf("127.36.%d", 1+rand.IntN(250))
	events := filepath.Join(t.TempDir(), "events.json")
	_, logs := startBinaryIn(t, ns, "run", "--profile", "bacnet-controller", "--listen", net24+".0/24", "--port-offset", "0",
		"--user", "root", "--metrics", "off", "--events", events)
	waitListeningIn(t, ns, net24+".7:80", logs)

	// dumpcap on the namespace's lo: a wrapper enters the namespace and execs dumpcap, so
	// Capture's interrupt reaches dumpcap itself.
	wrapper := filepath.Join(t.TempDir(), "dumpcap-in-ns")
	script := fmt.Sprintf("#!/bin/sh\nexec %s --net=%s -- %s \"$@\"\n", nsenter, ns.Path(), dumpcap)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	probe, err := ns.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	whoIs, _ := hex.DecodeString("810a000801001008")
	dst := net.UDPAddrFromAddrPort(netip.MustParseAddrPort(net24 + ".7:47808"))
	pcap := filepath.Join(t.TempDir(), "bacnet-controller.pcapng")
	stop := protocoltest.Capture(t, wrapper, "udp port 47808", pcap, func() { probe.WriteTo(whoIs, dst) })

	exe := func(name string, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second) // a hang guard
		defer cancel()
		out, err := ns.Command(ctx, name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		t.Logf("$ %s %s\n%s", filepath.Base(name), strings.Join(args, " "), out)
		return string(out)
	}
	want := func(what string, got, w any) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(w) {
			t.Errorf("%s = %v, want %v", what, got, w)
		}
	}
	const firmware, model = "1.14.23135.1", "ECY-S1000"

	probeHost := func(host string, clientPort int) controllerIdentity {
		var id controllerIdentity
		// nmap bacnet-info
		nm := exe(nmap, "-Pn", "-n", "-sU", "-p", "47808", "--script", "bacnet-info", host)
		field := func(name string) string {
			t.Helper()
			m := regexp.MustCompile(`(?m)^\|[_ ]\s*` + regexp.QuoteMeta(name) + `: (.*?)\s*$`).FindStringSubmatch(nm)
			if m == nil {
				t.Fatalf("bacnet-info prints no %s:\n%s", name, nm)
			}
			return m[1]
		}
		want("bacnet-info Vendor ID", field("Vendor ID"), "Distech Controls Inc. (364)")
		want("bacnet-info Vendor Name", field("Vendor Name"), "Distech Controls Inc.")
		want("bacnet-info Firmware", field("Firmware"), firmware)
		want("bacnet-info Model Name", field("Model Name"), model)
		want("bacnet-info Application Software", field("Application Software"), "AHU-VAV-Std 2.3.1")
		id.nmapName = field("Object Name")
		inst, err := strconv.Atoi(field("Object-identifier"))
		if err != nil {
			t.Fatalf("bacnet-info Object-identifier: %v", err)
		}
		id.instance = inst

		// @bacnet-js/client: the device, every object, an operator's writes.
		out := exe(node, filepath.Join("testdata", "bacnet_controller.js"), mods, host, "127.0.0.1", strconv.Itoa(clientPort))
		var r bacnetControllerRead
		if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &r); err != nil {
			t.Fatalf("bacnet-js output: %v\n%s", err, out)
		}
		if r.Error != "" || len(r.Errors) != 0 {
			t.Fatalf("bacnet-js: %s %v", r.Error, r.Errors)
		}
		if len(r.IAm) != 1 || r.IAm[0].DeviceID != id.instance || r.IAm[0].VendorID != 364 || r.IAm[0].MaxApdu != 1476 {
			t.Errorf("I-Am %+v, want device %d of vendor 364", r.IAm, id.instance)
		}
		dev := func(p int) any {
			t.Helper()
			v := r.Device[strconv.Itoa(p)]
			if len(v) != 1 {
				t.Fatalf("device property %d: %v", p, v)
			}
			return v[0]
		}
		want("object-identifier", dev(75), fmt.Sprintf("8,%d", id.instance))
		want("vendor-identifier", dev(120), 364)
		want("model-name", dev(70), model)
		want("firmware-revision", dev(44), firmware)
		id.bacnetName, _ = dev(77).(string)
		id.bacnetSerial, _ = dev(372).(string)
		id.bacnetLocation, _ = dev(58).(string)
		list := r.Device["76"]
		if len(list) != 25 || len(r.Objects) != len(list) {
			t.Fatalf("object list of %d, %d objects read", len(list), len(r.Objects))
		}
		for oid, props := range r.Objects {
			if len(props["77"]) != 1 || len(props["371"]) == 0 {
				t.Errorf("object %s: %v", oid, props)
			}
			if !strings.HasPrefix(oid, "8,") && len(props["85"]) != 1 {
				t.Errorf("object %s has no present-value: %v", oid, props)
			}
		}
		num := func(oid string) float64 {
			t.Helper()
			v, ok := r.Objects[oid]["85"][0].(float64)
			if !ok {
				t.Fatalf("%s present-value %v", oid, r.Objects[oid]["85"])
			}
			return v
		}
		for oid, lim := range map[string][2]float64{"0,1": {10, 16}, "0,2": {18, 27}, "0,5": {18, 26}} {
			if v := num(oid); v < lim[0] || v > lim[1] {
				t.Errorf("%s present-value %v is not in %v", oid, v, lim)
			}
		}
		// The unit runs on a schedule: fan status, fan speed and duct pressure agree.
		switch fan := num("3,1"); fan {
		case 1:
			if p, s := num("0,7"), num("1,4"); p < 200 || p > 300 || s < 50 || s > 95 {
				t.Errorf("fan on, duct pressure %v Pa, fan speed %v %%", p, s)
			}
		case 0:
			if p, s := num("0,7"), num("1,4"); p != 0 || s != 0 {
				t.Errorf("fan off, duct pressure %v Pa, fan speed %v %%", p, s)
			}
		default:
			t.Errorf("fan status %v", fan)
		}
		id.supplyAir, _ = r.Objects["0,1"]["85"][0].(float64)
		want("setpoint read back", r.Setpoint, 22.5)
		want("fan command", r.FanCommand, 0)
		want("fan priority-array[8]", r.FanPriority8, 0)
		if c := r.COV; c == nil || c.Process != 42 || c.Device != fmt.Sprintf("8,%d", id.instance) || c.Object != "0,1" ||
			len(c.Values) != 2 || fmt.Sprint(c.Values[0][0]) != "85" || fmt.Sprint(c.Values[1][0]) != "111" {
			t.Errorf("COV notification: %+v", c)
		}
		want("DeviceCommunicationControl with a guessed password", r.DCC, "BacnetError - Class:4 - Code:26")
		want("ReinitializeDevice with a guessed password", r.Reinitialize, "BacnetError - Class:4 - Code:26")

		// net-snmp
		snmp := exe(snmpget, "-v2c", "-c", "public", "-On", "-r", "3", "-t", "2", host,
			"1.3.6.1.2.1.1.1.0", "1.3.6.1.2.1.1.2.0", "1.3.6.1.2.1.1.5.0", "1.3.6.1.2.1.1.6.0", "1.3.6.1.2.1.2.2.1.6.1")
		lines := strings.Split(strings.TrimSpace(snmp), "\n")
		if len(lines) != 5 {
			t.Fatalf("snmpget printed %d lines:\n%s", len(lines), snmp)
		}
		want("sysDescr", lines[0], `.1.3.6.1.2.1.1.1.0 = STRING: "Distech Controls ECLYPSE ECY-S1000 Connected System Controller, firmware 1.14.23135.1"`)
		want("sysObjectID", lines[1], `.1.3.6.1.2.1.1.2.0 = OID: .1.3.6.1.4.1.8072.3.2.10`)
		str := func(line, oid string) string {
			t.Helper()
			s, ok := strings.CutPrefix(line, oid+` = STRING: "`)
			if !ok {
				t.Fatalf("snmpget line %q", line)
			}
			return strings.TrimSuffix(s, `"`)
		}
		id.sysName = str(lines[2], ".1.3.6.1.2.1.1.5.0")
		id.sysLocation = str(lines[3], ".1.3.6.1.2.1.1.6.0")
		mac, ok := strings.CutPrefix(lines[4], `.1.3.6.1.2.1.2.2.1.6.1 = Hex-STRING: `)
		if !ok || !strings.HasPrefix(mac, "38 F7 CD A") {
			t.Fatalf("ifPhysAddress line %q (not Distech's 38:F7:CD:A0/28)", lines[4])
		}
		id.snmpMAC = strings.ToLower(strings.ReplaceAll(strings.TrimSpace(mac), " ", ":"))

		// curl: the web interface
		page := exe(curl, "-sS", "-i", "--max-time", "10", "http://"+host+"/")
		if !strings.HasPrefix(page, "HTTP/1.1 200 OK\r\n") || !strings.Contains(page, "\r\nServer: nginx\r\n") {
			t.Errorf("web interface head:\n%s", page)
		}
		grab := func(re string) string {
			t.Helper()
			m := regexp.MustCompile(re).FindStringSubmatch(page)
			if m == nil {
				t.Fatalf("web interface lacks %s:\n%s", re, page)
			}
			return m[1]
		}
		id.title = grab(`<title>ECLYPSE - (.*)</title>`)
		id.pageName = grab(`<h1>(.*)</h1>`)
		id.pageSerial = grab(`<span id="serial">(.*)</span>`)
		id.pageMAC = grab(`<span id="mac">(.*)</span>`)
		id.pageInstance = grab(`<span id="instance">(.*)</span>`)
		want("web model", grab(`<span id="model">(.*)</span>`), model)
		want("web firmware", grab(`<span id="firmware">(.*)</span>`), firmware)
		login := exe(curl, "-sS", "-i", "--max-time", "10", "-d", "username=admin&password=admin", "http://"+host+"/login")
		if !strings.HasPrefix(login, "HTTP/1.1 200 OK\r\n") || !strings.Contains(login, "/index.html?error=invalid_credentials") {
			t.Errorf("login answer:\n%s", login)
		}
		return id
	}

	a, b := probeHost(net24+".7", 47809), probeHost(net24+".8", 47810)
	stop()
	t.Logf("host 7: %+v", a)
	t.Logf("host 8: %+v", b)
	for _, id := range []controllerIdentity{a, b} {
		// One identity per host, whichever protocol asks.
		if id.nmapName != id.bacnetName || id.bacnetName != id.sysName || id.sysName != id.title || id.title != id.pageName {
			t.Errorf("device name differs by protocol: %+v", id)
		}
		if id.bacnetSerial == "" || id.bacnetSerial != id.pageSerial {
			t.Errorf("serial differs by protocol: %+v", id)
		}
		if id.snmpMAC != id.pageMAC {
			t.Errorf("MAC differs by protocol: %+v", id)
		}
		if id.bacnetLocation == "" || id.bacnetLocation != id.sysLocation {
			t.Errorf("location differs by protocol: %+v", id)
		}
		if strconv.Itoa(id.instance) != id.pageInstance {
			t.Errorf("device instance differs by protocol: %+v", id)
		}
	}
	if a.instance == b.instance || a.bacnetSerial == b.bacnetSerial || a.snmpMAC == b.snmpMAC {
		t.Errorf("two hosts share an identity: %+v %+v", a, b)
	}

	// tshark: BVLC/BACnet-NPDU/BACnet-APDU, nothing malformed, no expert warning.
	phs := exeLocal(t, tshark, "-r", pcap, "-q", "-z", "io,phs")
	for _, layer := range []string{"bvlc", "bacnet", "bacapp"} {
		if !regexp.MustCompile(`(?m)^\s*` + layer + `\s+frames:(\d+)`).MatchString(phs) {
			t.Errorf("no %s layer in the capture:\n%s", layer, phs)
		}
	}
	if verbose := exeLocal(t, tshark, "-r", pcap, "-V"); strings.Contains(verbose, "Malformed") {
		t.Errorf("tshark reports a malformed packet:\n%s", protocoltest.GrepContext(verbose, "Malformed"))
	}
	if bad := protocoltest.ExpertProblems(t, tshark, pcap, "BVLC", "BACnet-NPDU", "BACnet-APDU", "BACnet"); len(bad) != 0 {
		t.Errorf("tshark expert warnings:\n%s", strings.Join(bad, "\n"))
	}
}

// exeLocal runs a tool in this namespace and fails the test on an error.
func exeLocal(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := protocoltest.Run(t, 60*time.Second, name, args...)
	if err != nil {
		t.Fatalf("%s: %v\n%s", name, err, out)
	}
	return out
}

// waitListeningIn waits until addr accepts TCP connections inside ns.
func waitListeningIn(t *testing.T, ns *netnstest.NS, addr string, logs *syncLog) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		c, err := ns.Dial(ctx, "tcp", addr)
		cancel()
		if err == nil {
			c.Close()
			return
		}
	}
	t.Fatalf("nothing listening on %s in %s:\n%s", addr, ns.Name, logs.String())
}

// nodeModulesDir finds test/node/node_modules with @bacnet-js/client (npm ci --prefix
// test/node); without it the test skips, and fails under CI.
func nodeModulesDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "test", "node", "node_modules"))
	if err == nil {
		_, err = os.Stat(filepath.Join(dir, "@bacnet-js", "client", "package.json"))
	}
	if err != nil {
		if protocoltest.InCI() {
			t.Fatalf("@bacnet-js/client is not installed (npm ci --prefix test/node): %v", err)
		}
		t.Skipf("@bacnet-js/client not installed: %v", err)
	}
	return dir
}
