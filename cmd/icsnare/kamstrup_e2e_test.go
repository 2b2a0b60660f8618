package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// TestKamstrupThroughSensor runs the binary with Conpot's kamstrup_382 template (the
// regenerated copy, loaded unchanged) on one address: the KMP client and the telnetlib
// console client of the two protocol packages talk to it, the console's !RR closes the
// same host's meter connection, and the events record both. (The Conpot shapes of these
// events are the packages' ConpotEvents, tested there.)
func TestKamstrupThroughSensor(t *testing.T) {
	protocoltest.NeedTool(t, "go")
	py := protocoltest.NeedTool(t, "/usr/bin/python3")
	tmpl, err := filepath.Abs("../../testdata/conpot/kamstrup_382")
	if err != nil {
		t.Fatal(err)
	}
	events := filepath.Join(t.TempDir(), "events.jsonl")
	addr := fmt.Sprintf("127.32.%d.%d", rand.IntN(256), 1+rand.IntN(250))
	const off = 5000 // on the test's own address; 50100 leaves little room for an offset
	cmd, _ := startBinary(t, "run", "--profile", tmpl, "--listen", addr, "--port-offset", strconv.Itoa(off),
		"--metrics", "off", "--events", events, "--user", "root")
	meter, console := fmt.Sprintf("%s:%d", addr, 1025+off), fmt.Sprintf("%s:%d", addr, 50100+off)
	waitListening(t, meter)
	waitListening(t, console)

	out, err := protocoltest.Run(t, 60*time.Second, py, "../../protocols/kamstrup_meter/testdata/kmp_client.py", addr, strconv.Itoa(1025+off), "13", "1054", "1001")
	if err != nil || !strings.Contains(out, "1001 number 15085488") {
		t.Fatalf("KMP client: %v\n%s", err, out)
	}
	// The energy counter is the template's 7183.2712 kWh plus what the host used since it
	// came up (an uptime drawn from the seed).
	if _, kwh, ok := strings.Cut(out, "13 kWh "); !ok {
		t.Fatalf("no energy register:\n%s", out)
	} else if v, err := strconv.ParseFloat(strings.Fields(kwh)[0], 64); err != nil || v < 7183.2712 {
		t.Fatalf("energy %q", kwh)
	}
	out, err = protocoltest.Run(t, 60*time.Second, py, "../../protocols/kamstrup_management/testdata/console_client.py", addr, strconv.Itoa(50100+off))
	if err != nil || !strings.Contains(out, "Connected to [00:13:EA:") || !strings.Contains(out, "Device Name         : feeder-12") {
		t.Fatalf("console client: %v\n%s", err, out)
	}

	// A meter connection stays open until the console restarts the module. (The client's
	// !SD just restarted it: new connections are closed for two seconds.)
	reply := make([]byte, 15)
	var mc net.Conn
	for try := 0; ; try++ {
		if try == 40 {
			t.Fatal("the meter did not answer again after its restart")
		}
		c, err := net.DialTimeout("tcp", meter, 3*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte{0x80, 0x3f, 0x10, 0x01, 0x04, 0x09, 0x18, 0x6d, 0x0d})
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(c, reply); err == nil && reply[0] == 0x40 {
			mc = c
			break
		}
		c.Close()
		time.Sleep(250 * time.Millisecond)
	}
	defer mc.Close()
	cc, err := net.DialTimeout("tcp", console, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	cc.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(cc)
	if _, err := br.ReadString(']'); err != nil {
		t.Fatal(err)
	}
	cc.Write([]byte("!RR\r\n"))
	if _, err := mc.Read(reply); err == nil {
		t.Fatal("the meter connection survived !RR")
	}

	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v", err)
	}
	b, err := os.ReadFile(events)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var d struct {
			Type     string  `json:"event_type"`
			Request  *string `json:"request"`
			Response *string `json:"response"`
		}
		if err := json.Unmarshal([]byte(l), &d); err != nil {
			t.Fatalf("%v: %s", err, l)
		}
		seen[d.Type]++
		switch d.Type {
		case "kamstrup_meter.request":
			if d.Request == nil || !strings.HasPrefix(*d.Request, "803f") || d.Response != nil && !strings.HasPrefix(*d.Response, "403f") {
				t.Errorf("meter event %s", l)
			}
		case "kamstrup_management.command":
			if d.Request != nil && *d.Request == "!RR\r\n" && d.Response != nil {
				t.Errorf("!RR logged a response: %s", l)
			}
		}
	}
	if seen["kamstrup_meter.request"] < 2 || seen["kamstrup_management.command"] < 6 || seen["kamstrup_meter.bad_frame"] != 1 {
		t.Fatalf("events per type %v:\n%s", seen, b)
	}
}
