package main

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// TestTopShowsBusiestHostsAndSources: Modbus traffic from two sources to two hosts of a
// running sensor; `icsnare top --once` ranks the busier host and source first, and
// /metrics names neither address.
func TestTopShowsBusiestHostsAndSources(t *testing.T) {
	off := protocoltest.FreeOffset(t, 502, 10108)
	metrics := "127.79.2.1:" + strconv.Itoa(10108+off)
	startBinary(t, "run", "--listen", "127.79.2.0/24", "--port-offset", strconv.Itoa(off),
		"--metrics", metrics, "--events", os.DevNull, "--user", "root", "--timing=false")
	busy, quiet := "127.79.2.10:"+strconv.Itoa(502+off), "127.79.2.11:"+strconv.Itoa(502+off)
	waitListening(t, busy)
	poll := func(src, dst string, n int) {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 4 * time.Second}
		c, err := d.Dial("tcp", dst)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		resp := make([]byte, 11)
		for i := range n {
			if _, err := c.Write([]byte{0, byte(i), 0, 0, 0, 6, 1, 3, 0, 0, 0, 1}); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(c, resp); err != nil {
				t.Fatal(err)
			}
		}
	}
	poll("127.79.3.1", busy, 20)
	poll("127.79.3.1", busy, 20)
	poll("127.79.3.2", quiet, 3)
	// Events reach the top counter through the bus; wait until they are all there.
	var out, errb bytes.Buffer
	deadline := time.Now().Add(10 * time.Second)
	for {
		out.Reset()
		errb.Reset()
		code := run([]string{"top", "--once", "--metrics", metrics, "-n", "3"}, &out, &errb)
		if code != 0 {
			t.Fatalf("icsnare top: exit %d: %s", code, errb.String())
		}
		// The quiet source's three requests are the last events to arrive.
		if topEvents(out.String(), "127.79.3.2") >= 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	text := out.String()
	t.Logf("icsnare top --once:\n%s", text)
	host := strings.Index(text, "127.79.2.10")
	if host < 0 || host > strings.Index(text, "127.79.2.11") {
		t.Fatalf("the busy host is not listed first:\n%s", text)
	}
	if topEvents(text, "127.79.3.2") < 3 {
		t.Fatalf("the quiet source's requests never showed:\n%s", text)
	}
	src := strings.Index(text, "127.79.3.1 ")
	if src < 0 || src > strings.Index(text, "127.79.3.2 ") {
		t.Fatalf("the busy source is not listed first:\n%s", text)
	}
	if !strings.Contains(text, "modbus") {
		t.Fatalf("no modbus row:\n%s", text)
	}
	resp, err := http.Get("http://" + metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(body), "127.79.3.") || strings.Contains(string(body), "127.79.2.10") {
		t.Fatal("/metrics names a source or host address")
	}
	// A sensor that is not there: exit 1 with the address named.
	errb.Reset()
	if code := run([]string{"top", "--once", "--metrics", "127.79.2.1:1"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "127.79.2.1:1") {
		t.Fatalf("no sensor: exit %d, %s", code, errb.String())
	}
}

// topEvents returns the EVENTS column of key's row in icsnare top's output (-1: no row).
func topEvents(out, key string) int {
	for line := range strings.SplitSeq(out, "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == key {
			if n, err := strconv.Atoi(f[1]); err == nil {
				return n
			}
		}
	}
	return -1
}
