package modbus

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// TestTsharkDecodes captures a session of real clients and raw requests on lo and has
// tshark dissect it: no malformed packets, no expert warnings or errors.
func TestTsharkDecodes(t *testing.T) {
	tshark := protocoltest.NeedTool(t, "tshark")
	dumpcap := protocoltest.NeedTool(t, "dumpcap")
	mbpoll := protocoltest.NeedTool(t, "mbpoll")
	srv, _ := serveStandard(t)
	host := srv.Addr.Addr().String()
	pcap := filepath.Join(t.TempDir(), "modbus.pcapng")
	if d := os.Getenv("MODBUS_KEEP_PCAP"); d != "" {
		pcap = d
	}
	stop := protocoltest.Capture(t, dumpcap, "tcp port 502 and host "+host, pcap, func() {
		if c, err := net.Dial("tcp", srv.Addr.String()); err == nil {
			c.Close()
		}
	})

	// Every well-formed exchange of the golden table (reads, writes, exceptions, device id,
	// broadcast), pipelined into one segment and then one by one. (The deliberately
	// malformed requests are left out: tshark rightly flags those requests.)
	var golden []exchange
	for _, x := range goldenExchanges {
		if !x.malformed {
			golden = append(golden, x)
		}
	}
	c := dial(t, srv.Addr)
	var all []byte
	for i, x := range golden {
		all = append(all, adu(uint16(0x300+i), x.unit, unhex(t, x.pdu)...)...)
	}
	c.send(all)
	for _, x := range golden {
		if x.reply != "" {
			c.recv()
		}
	}
	for i, x := range golden {
		c.send(adu(uint16(0x400+i), x.unit, unhex(t, x.pdu)...))
		if x.reply != "" {
			c.recv()
		}
	}
	c.c.Close()
	if _, err := protocoltest.Run(t, 30*time.Second, mbpoll, "-m", "tcp", "-a", "1", "-1", "-p", "502", "-t", "4", "-r", "1", "-c", "10", host); err != nil {
		t.Fatal(err)
	}
	if _, err := protocoltest.Run(t, 30*time.Second, mbpoll, "-m", "tcp", "-a", "1", "-1", "-p", "502", "-t", "0", "-r", "1", "-c", "10", host); err != nil {
		t.Fatal(err)
	}
	if _, err := protocoltest.Run(t, 60*time.Second, "/usr/bin/python3", "testdata/pymodbus_client.py", host, "502", "1"); err != nil {
		t.Fatal(err)
	}
	stop()

	out, err := protocoltest.Run(t, 60*time.Second, tshark, "-r", pcap, "-Y", "mbtcp", "-T", "fields", "-e", "mbtcp.trans_id")
	if err != nil {
		t.Fatal(err)
	}
	// Every golden request and reply, pipelined and one by one, were dissected as Modbus/TCP.
	seen := map[string]int{}
	for _, id := range strings.FieldsFunc(out, func(r rune) bool { return r == ',' || r == '\n' }) {
		seen[strings.TrimSpace(id)]++
	}
	for i, x := range golden {
		want := 1
		if x.reply != "" {
			want = 2
		}
		for _, base := range []int{0x300, 0x400} {
			if id := strconv.Itoa(base + i); seen[id] != want {
				t.Errorf("%s: tshark dissected transaction %s %d times, want %d", x.name, id, seen[id], want)
			}
		}
	}
	verbose, err := exec.Command(tshark, "-r", pcap, "-V").CombinedOutput()
	if err != nil {
		t.Fatalf("tshark -V: %v", err)
	}
	if strings.Contains(string(verbose), "Malformed") {
		t.Errorf("tshark reports a malformed packet:\n%s", protocoltest.GrepContext(string(verbose), "Malformed"))
	}
	if bad := protocoltest.ExpertProblems(t, tshark, pcap, "Modbus/TCP", "Modbus"); len(bad) > 0 {
		t.Errorf("tshark expert warnings or errors of Modbus:\n%s", strings.Join(bad, "\n"))
	}
}
