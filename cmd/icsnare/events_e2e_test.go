package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// evAddr is a loopback address of this file's tests (127.74.0.0/16).
func evAddr() string {
	return fmt.Sprintf("127.74.%d.%d", rand.IntN(256), 1+rand.IntN(250))
}

// modbusRequests sends n FC3 requests over one connection and reads every answer.
func modbusRequests(t *testing.T, target string, n int) {
	t.Helper()
	c, err := net.DialTimeout("tcp", target, 4*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := []byte{0, 0, 0, 0, 0, 6, 1, 3, 0, 0, 0, 1}
	resp := make([]byte, 11)
	for i := range n {
		binary.BigEndian.PutUint16(req, uint16(i))
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(req); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if _, err := io.ReadFull(c, resp); err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
	}
}

// writeConfig writes a TOML configuration for a test run.
func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "icsnare.toml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestStalledStdoutShutdownWithinBudget: the sensor's stdout is a pipe nobody reads, so
// its events sink blocks for ever; SIGTERM still ends the sensor within the handlers'
// grace (1.2 s) plus events.shutdown_budget, and the log names what the sink lost.
func TestStalledStdoutShutdownWithinBudget(t *testing.T) {
	protocoltest.NeedTool(t, "go")
	bin := buildStatic(t)
	addr, off := evAddr(), protocoltest.FreeOffset(t)
	cfg := writeConfig(t, "[events]\nfile = \"-\"\nshutdown_budget = \"500ms\"\nbuffer = 1024\n")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cmd := exec.Command(bin, "run", "--config", cfg, "--listen", addr, "--port-offset", strconv.Itoa(off),
		"--metrics", "off", "--user", "root", "--state", t.TempDir(), "--timing=false")
	logs := &syncLog{}
	cmd.Stdout, cmd.Stderr = w, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer cmd.Process.Kill() // a no-op once it exited
	target := fmt.Sprintf("%s:%d", addr, 502+off)
	waitListening(t, target)
	// About 3000 events of some 450 bytes: far more than the pipe (64 KiB) and the sink's
	// buffer hold, so the sink is blocked in write(2) with events queued behind it.
	modbusRequests(t, target, 3000)
	start := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		took := time.Since(start)
		t.Logf("exited %v after SIGTERM in %s", err, took.Round(time.Millisecond))
		if err != nil {
			t.Errorf("exit: %v", err)
		}
	case <-time.After(1200*time.Millisecond + 500*time.Millisecond + 3*time.Second):
		t.Fatalf("still running %s after SIGTERM with a stalled stdout\n%s", time.Since(start), logs)
	}
	log := logs.String()
	t.Logf("shutdown report: %s", grepLines(log, "events:"))
	if !strings.Contains(log, "abandoned") || !strings.Contains(log, "sink=json_stdout") || !strings.Contains(log, "dropped_shutdown=") {
		t.Fatalf("the log does not report the stalled sink's losses:\n%s", log)
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
