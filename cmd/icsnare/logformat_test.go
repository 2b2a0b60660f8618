package main

import (
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// TestJSONLog: with --log-format json every line the running sensor logs is one JSON
// object with time, level and msg (what journald's or a shipper's JSON parser expects).
func TestJSONLog(t *testing.T) {
	off := protocoltest.FreeOffset(t)
	_, logs := startBinary(t, "run", "--listen", "127.79.0.1", "--port-offset", strconv.Itoa(off),
		"--metrics", "off", "--events", os.DevNull, "--user", "root", "--log-format", "json")
	waitListening(t, "127.79.0.1:"+strconv.Itoa(502+off))
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "\n") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) == 0 || lines[0] == "" {
		t.Fatal("the sensor logged nothing")
	}
	for _, line := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %v\n%s", err, line)
		}
		for _, k := range []string{"time", "level", "msg"} {
			if _, ok := rec[k]; !ok {
				t.Fatalf("log line lacks %q: %s", k, line)
			}
		}
	}
	t.Logf("%d JSON log lines, first: %s", len(lines), lines[0])
}
