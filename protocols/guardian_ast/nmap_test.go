package guardianast

import (
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// TestNmapVersionScan runs `nmap -sV -p 10001` against the gauge (the scan that sends
// Conpot into a 100 % CPU loop, issue #564), then measures the process CPU for 3 s and
// checks the gauge still answers.
func TestNmapVersionScan(t *testing.T) {
	nmap := protocoltest.NeedTool(t, "nmap")
	_, srv := serve(t, loadConpot(t), 13)
	out, err := protocoltest.Run(t, 5*time.Minute, nmap, "-Pn", "-n", "-sT", "-sV", "-p", "10001", srv.Addr.Addr().String())
	if err != nil {
		t.Fatalf("nmap: %v", err)
	}
	if !strings.Contains(out, "10001/tcp open") {
		t.Fatalf("nmap did not find the port open")
	}
	before, wall := cpuTime(), time.Now()
	time.Sleep(3 * time.Second)
	used, elapsed := cpuTime()-before, time.Since(wall)
	t.Logf("process CPU over %v after the scan: %v (%.2f%% of one core)", elapsed.Round(time.Millisecond), used, 100*used.Seconds()/elapsed.Seconds())
	if used > elapsed/2 {
		t.Fatalf("CPU %v over %v after the scan", used, elapsed)
	}
	if got := dial(t, srv).ask("\x01I20100\r\n"); !strings.HasPrefix(got, "\nI20100\n") {
		t.Fatalf("after the scan: %q", got)
	}
	for _, e := range srv.Events.Events() {
		t.Logf("event %s %q", e.Type, e.Request)
	}
}
