package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols/protocoltest"
	"github.com/icsnare/icsnare/sinks/stix/stixtest"
	"github.com/icsnare/icsnare/sinks/taxii/taxiitest"
)

// TestSTIXIndicatorForModbusWriter runs the sensor with [sinks.stix] and [sinks.taxii]:
// mbpoll, a real Modbus master, reads and then writes a holding register; the bundle file
// holds an indicator for the writer's address with a sighting, the bundles validate
// against the STIX 2.1 schemas, and the TAXII server (ours, from the specification; it
// refuses the first post with 503) receives the same objects after the retry. net-snmp's
// snmpset from the same address then shows in a later sighting of the same indicator
// (a UDP flow, exported when idle).
func TestSTIXIndicatorForModbusWriter(t *testing.T) {
	protocoltest.NeedTool(t, "go")
	mbpoll := protocoltest.NeedTool(t, "mbpoll")
	v := stixtest.New(t)
	srv := taxiitest.New(t, false, func(s *taxiitest.Server) {
		s.Refuse, s.User, s.Pass = []int{503}, "sensor", "pw"
	})
	dir := t.TempDir()
	stixDir := filepath.Join(dir, "stix")
	if err := os.Mkdir(stixDir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "icsnare.toml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `
[sinks.stix]
dir = %q
bundle_interval = "1s"
session_timeout = "2s"

[sinks.taxii]
url = "%s/api1/"
collection = %q
username = "sensor"
password = "pw"
backoff = "50ms"
`, stixDir, srv.URL(), srv.Collection), 0o600); err != nil {
		t.Fatal(err)
	}
	events := filepath.Join(dir, "events.jsonl")
	addr := fmt.Sprintf("127.76.%d.%d", 10+rand.IntN(200), 1+rand.IntN(250))
	off := protocoltest.FreeOffset(t)
	cmd, logs := startBinary(t, "run", "--config", cfg, "--listen", addr, "--port-offset", strconv.Itoa(off),
		"--metrics", "off", "--events", events, "--user", "root", "--sensor-id", "stix-e2e")
	port := strconv.Itoa(502 + off)
	waitListening(t, addr+":"+port)

	read, err := protocoltest.Run(t, 20*time.Second, mbpoll, "-m", "tcp", "-a", "1", "-t", "4", "-r", "1", "-c", "2", "-1", "-p", port, addr)
	if err != nil {
		t.Fatalf("mbpoll read: %v\n%s", err, read)
	}
	wrote, err := protocoltest.Run(t, 20*time.Second, mbpoll, "-m", "tcp", "-a", "1", "-t", "4", "-r", "1", "-p", port, addr, "1234")
	if err != nil || !strings.Contains(wrote, "Written 1 references") {
		t.Fatalf("mbpoll write: %v\n%s", err, wrote)
	}
	lines := strings.Split(strings.TrimSpace(wrote), "\n")
	t.Logf("mbpoll: %s", lines[len(lines)-1])

	// the writer's address, as the events file has it
	writer := ""
	deadline := time.Now().Add(20 * time.Second)
	for writer == "" && time.Now().Before(deadline) {
		writer = writerAddr(t, events)
		time.Sleep(100 * time.Millisecond)
	}
	if writer == "" {
		t.Fatalf("no modbus write (function 6) in the events file\n%s", logs)
	}
	pattern := fmt.Sprintf("[ipv4-addr:value = '%s']", writer)

	var indicator map[string]any
	for indicator == nil && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		indicator = findIndicator(t, stixDir, pattern)
	}
	if indicator == nil {
		t.Fatalf("no bundle in %s holds an indicator %s\n%s", stixDir, pattern, logs)
	}
	t.Logf("indicator %s: %s", indicator["id"], indicator["description"])

	snmpset := protocoltest.NeedTool(t, "snmpset")
	if out, err := protocoltest.Run(t, 20*time.Second, snmpset, "-v2c", "-c", "private", "-t", "2", "-r", "1",
		fmt.Sprintf("udp:%s:%d", addr, 161+off), ".1.3.6.1.2.1.1.6.0", "s", "Halle 7"); err != nil {
		t.Fatalf("snmpset: %v\n%s", err, out)
	}
	var snmpSighting map[string]any
	for snmpSighting == nil && time.Now().Before(deadline.Add(20*time.Second)) {
		time.Sleep(200 * time.Millisecond)
		snmpSighting = findObject(stixDir, func(o map[string]any) bool {
			d, _ := o["description"].(string)
			return o["type"] == "sighting" && o["sighting_of_ref"] == indicator["id"] && strings.Contains(d, "snmp set")
		})
	}
	if snmpSighting == nil {
		t.Fatalf("no sighting of %s for the SNMP set\n%s", indicator["id"], logs)
	}
	t.Logf("sighting %s: %s", snmpSighting["id"], snmpSighting["description"])

	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v\n%s", err, logs)
	}
	files, _ := filepath.Glob(filepath.Join(stixDir, "bundle-*.json"))
	var fileObjects int
	sightings := 0
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Bundle(raw); err != nil {
			t.Fatalf("%s does not validate: %v", filepath.Base(f), err)
		}
		var doc struct{ Objects []map[string]any }
		json.Unmarshal(raw, &doc)
		fileObjects += len(doc.Objects)
		for _, o := range doc.Objects {
			if o["type"] == "sighting" && o["sighting_of_ref"] == indicator["id"] {
				sightings++
			}
		}
	}
	if sightings < 2 {
		t.Errorf("%d sightings of the writer's indicator, want one per bundle with its actions", sightings)
	}
	st := srv.Stats()
	if st.Refused != 1 || st.Posts != len(files) || st.Objects != fileObjects || len(st.Problems) > 0 {
		t.Errorf("TAXII server: %+v; %d bundle files of %d objects", st, len(files), fileObjects)
	}
	t.Logf("%d bundles (%d objects) in files and posted to TAXII after %d refusal", len(files), fileObjects, st.Refused)
}

// writerAddr returns the source address of the first Modbus write (function 6) in the
// events file.
func writerAddr(t *testing.T, events string) string {
	f, err := os.Open(events)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e struct {
			Type string  `json:"event_type"`
			Src  string  `json:"src_ip"`
			FC   float64 `json:"function_code"`
		}
		if json.Unmarshal(sc.Bytes(), &e) == nil && e.Type == "modbus.request" && e.FC == 6 {
			return e.Src
		}
	}
	return ""
}

// findIndicator returns the indicator with pattern from the bundle files in dir.
func findIndicator(t *testing.T, dir, pattern string) map[string]any {
	return findObject(dir, func(o map[string]any) bool { return o["type"] == "indicator" && o["pattern"] == pattern })
}

// findObject returns an object of the bundle files in dir that match accepts.
func findObject(dir string, match func(map[string]any) bool) map[string]any {
	files, _ := filepath.Glob(filepath.Join(dir, "bundle-*.json"))
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var doc struct{ Objects []map[string]any }
		if json.Unmarshal(raw, &doc) != nil {
			continue
		}
		for _, o := range doc.Objects {
			if match(o) {
				return o
			}
		}
	}
	return nil
}
