package enip

import (
	"bufio"
	"context"
	"encoding/binary"
	"net"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// fullSession exercises every command and service as clients would.
func fullSession(t *testing.T, tcpAddr, udpAddr string) {
	u, err := net.Dial("udp", udpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	u.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1500)
	for _, cmd := range []uint16{cmdListIdentity, cmdListServices, cmdListInterfaces} {
		u.Write(frame(cmd, 0, "", nil))
		if _, err := u.Read(buf); err != nil {
			t.Fatal(err)
		}
	}
	c := dialAddr(t, tcpAddr)
	c.call(cmdListIdentity, nil)
	c.call(cmdListServices, nil)
	c.call(cmdListInterfaces, nil)
	c.register()
	c.rr(cipReq(svcGetAttributesAll, logical(1, 1), nil))
	c.rr(cipReq(svcGetAttributeSingle, logical(1, 1, 7), nil))
	c.rr(cipReq(svcGetAttributeSingle, logical(0xF5, 1, 5), nil))
	c.rr(cipReq(svcGetAttributeSingle, logical(0xF6, 1, 3), nil))
	c.rr(cipReq(svcGetAttributesAll, logical(0xF5, 1), nil))
	c.rr(cipReq(svcGetAttributesAll, logical(0xF6, 1), nil))
	c.rr(cipReq(svcGetAttributesAll, logical(2, 1), nil))
	c.rr(cipReq(svcGetAttributeSingle, logical(0xF5, 1, 6), nil))
	c.rr(cipReq(svcGetAttributeSingle, logical(1, 0, 1), nil))
	c.rr(cipReq(svcGetInstanceAttributeList, []byte{0x20, 0x6B, 0x25, 0, 0, 0}, []byte{2, 0, 1, 0, 2, 0}))
	c.rr(cipReq(svcMultipleService, logical(2, 1), []byte{2, 0, 6, 0, 14, 0, 0x0E, 3, 0x20, 1, 0x24, 1, 0x30, 1, 0x0E, 3, 0x20, 1, 0x24, 1, 0x30, 7}))
	c.rr(cipReq(svcGetAttributeList, logical(1, 1), []byte{2, 0, 1, 0, 6, 0}))
	c.rr(cipReq(svcReadTag, symbolic("Speed"), []byte{1, 0}))
	c.rr(cipReq(svcWriteTag, symbolic("Speed"), []byte{0xC3, 0, 1, 0, 0x22, 0x11}))
	c.rr(cipReq(svcReadTag, symbolic("Missing"), []byte{1, 0}))
	d := binary.LittleEndian.AppendUint16(nil, 300)
	c.rr(cipReq(svcReadTagFragmented, symbolic("Counts"), binary.LittleEndian.AppendUint32(d, 0)))
	ot := c.forwardOpen(0x11223344, 9)
	c.unit(ot, 0x11223344, 1, cipReq(svcReadTag, symbolic("Level"), []byte{1, 0}))
	c.unit(ot, 0x11223344, 2, cipReq(svcGetAttributeSingle, logical(1, 1, 6), nil))
	fc := cipReq(svcForwardClose, logical(6, 1), []byte{0x0A, 0x0E, 9, 0, 0x37, 0x13, 0xFE, 0xCA, 0, 0, 3, 0, 0x01, 0x00, 0x20, 0x02, 0x24, 0x01})
	c.rr(fc)
	c.send(frame(cmdUnRegisterSession, c.session, "", nil))
	c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	c.c.Read(buf)
}

// TestTsharkDissects captures a full session on lo and checks that Wireshark's ENIP and
// CIP dissectors decode it without malformed packets or expert warnings.
func TestTsharkDissects(t *testing.T) {
	tshark := protocoltest.NeedTool(t, "tshark")
	protocoltest.NeedRoot(t)
	_, h, tcp, udp := serve(t, "logix", 41)
	pcap := filepath.Join(t.TempDir(), "enip.pcap")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	capture := osexec.CommandContext(ctx, tshark, "-i", "lo", "-f", "host "+h.Addr.String()+" and port 44818", "-w", pcap)
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
	fullSession(t, tcp.Addr.String(), udp.Addr.String())
	time.Sleep(300 * time.Millisecond) // let the last packets reach the capture buffer
	capture.Process.Signal(syscall.SIGINT)
	capture.Wait()

	out := tsharkRead(t, tshark, pcap, "enip or cip")
	for _, want := range []string{"List Identity", "List Services", "List Interfaces", "Register Session",
		"Get Attributes All", "Get Attribute Single", "Get Attribute List", "TCP/IP Interface", "Ethernet Link",
		// Wireshark names the Logix services only for Logix classes
		"Success: 'Speed' - Service (0x4c)", "Success: 'Speed' - Service (0x4d)", "Path segment error: 'Missing'",
		"Partial transfer: 'Counts' - Service (0x52)", "Success: 'Level' - Service (0x4c)",
		"Success: Connection Manager - Forward Open", "Success: Multiple Service Packet: Get Attribute Single, Get Attribute Single",
		"Success: TCP/IP Interface - Get Attributes All", "Success: Ethernet Link - Get Attributes All", "Success: Connection Manager - Forward Close", "Unregister Session"} {
		if !strings.Contains(out, want) {
			t.Errorf("capture summary lacks %q", want)
		}
	}
	if n := strings.Count(tsharkRead(t, tshark, pcap, "enip.command == 0x0070 and enip.cpf.cai.connid"), "\n"); n != 4 {
		t.Errorf("%d SendUnitData packets with a connection id, want 4", n)
	}
	if bad := tsharkRead(t, tshark, pcap, "_ws.malformed"); strings.TrimSpace(bad) != "" {
		t.Errorf("malformed packets:\n%s", bad)
	}
	// expert rows of the protocol's own dissectors (the kernel's TCP notes on a busy
	// loopback are not its problems)
	if bad := protocoltest.ExpertProblems(t, tshark, pcap, "ENIP", "CIP"); len(bad) > 0 {
		t.Errorf("tshark expert warnings or errors:\n%s", strings.Join(bad, "\n"))
	}
}

// tsharkRead prints the packets of pcap matching filter.
func tsharkRead(t *testing.T, tshark, pcap, filter string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := osexec.CommandContext(ctx, tshark, "-r", pcap, "-Y", filter).Output()
	t.Logf("$ tshark -r %s -Y %q\n%s", filepath.Base(pcap), filter, out)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}
