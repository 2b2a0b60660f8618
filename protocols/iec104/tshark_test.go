package iec104

import (
	"bufio"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// fullSession exercises every frame format and ASDU the station answers.
func fullSession(t *testing.T, c *client) {
	c.expect("68 04 43 00 00 00", "68 04 83 00 00 00")
	c.expect(startdt, startOK)
	ns, nr := uint16(0), uint16(0)
	do := func(req string, n int) {
		c.send(appendI(nil, ns, nr, unhex(t, req)))
		ns++
		for i := 0; i < n; i++ {
			c.recv()
			nr++
		}
	}
	do("64 01 06 00 ff ff 00 00 00 14", 6)                   // general interrogation
	do("2d 01 06 00 28 1e 00 16 14 01", 3)                   // single command with relation
	do("2e 01 06 00 28 1e 00 3c 06 02", 3)                   // double command with relation
	do("31 01 06 00 28 1e 00 65 3f 39 30 00", 3)             // set-point scaled
	do("32 01 06 00 28 1e 00 6d 03 00 00 48 42 00", 3)       // set-point float
	do("2e 01 06 00 28 1e 00 16 14 01", 1)                   // wrong type: negative con
	do("2d 01 06 00 28 1e ee ee ee 01", 1)                   // unknown IOA
	do("66 01 05 00 28 1e 00 64 6c", 1)                      // read
	do("67 01 06 00 28 1e 00 00 00 00 00 1e 0c 04 0b 1a", 1) // clock synchronisation
	do("65 01 06 00 28 1e 00 00 00 05", 2)                   // counter interrogation
	c.send(appendS(nil, nr))
	c.expect("68 04 13 00 00 00", "68 04 23 00 00 00")
}

// TestTsharkDissects captures a full session on lo: Wireshark's IEC 60870-5-104 dissectors
// decode it without malformed packets or expert warnings.
func TestTsharkDissects(t *testing.T) {
	tshark := protocoltest.NeedTool(t, "tshark")
	protocoltest.NeedRoot(t)
	_, h, srv := serve(t, 31)
	pcap := filepath.Join(t.TempDir(), "iec104.pcap")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	capture := exec.CommandContext(ctx, tshark, "-i", "lo", "-f", "host "+h.Addr.String()+" and tcp port 2404", "-w", pcap)
	stderr, _ := capture.StderrPipe()
	if err := capture.Start(); err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "Capture started") {
				close(started)
				for sc.Scan() {
				}
				return
			}
		}
	}()
	select {
	case <-started:
	case <-ctx.Done():
		t.Fatal("tshark did not start capturing")
	}
	fullSession(t, dial(t, srv.Addr))
	time.Sleep(300 * time.Millisecond) // let the last packets reach the capture buffer
	capture.Process.Signal(syscall.SIGINT)
	capture.Wait()

	out := tsharkRead(t, tshark, pcap, "iec60870_104 or iec60870_asdu")
	for _, want := range []string{"STARTDT act", "STARTDT con", "TESTFR act", "TESTFR con", "STOPDT act", "STOPDT con", "S (",
		"C_IC_NA_1 ActCon", "M_SP_NA_1 Inrogen", "M_DP_NA_1 Inrogen", "M_ME_NB_1 Inrogen", "M_ME_NC_1 Inrogen", "C_IC_NA_1 ActTerm",
		"C_SC_NA_1 ActCon", "M_SP_NA_1 Retrem", "C_DC_NA_1 ActTerm", "M_ME_NC_1 Spont", "C_DC_NA_1 ActCon_NEGA", "C_SC_NA_1 UkIOA",
		"M_ME_NB_1 Req", "C_CS_NA_1 ActCon", "C_CI_NA_1 ActTerm"} {
		if !strings.Contains(out, want) {
			t.Errorf("capture summary lacks %q", want)
		}
	}
	if bad := tsharkRead(t, tshark, pcap, "_ws.malformed"); strings.TrimSpace(bad) != "" {
		t.Errorf("malformed packets:\n%s", bad)
	}
	// expert rows of the protocol's own dissectors (the kernel's TCP notes on a busy
	// loopback are not its problems)
	if bad := protocoltest.ExpertProblems(t, tshark, pcap, "IEC"); len(bad) > 0 {
		t.Errorf("tshark expert warnings or errors:\n%s", strings.Join(bad, "\n"))
	}
}

// tsharkRead prints the packets of pcap matching filter.
func tsharkRead(t *testing.T, tshark, pcap, filter string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, tshark, "-r", pcap, "-Y", filter).Output()
	t.Logf("$ tshark -r %s -Y %q\n%s", filepath.Base(pcap), filter, out)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}
