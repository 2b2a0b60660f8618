package s7comm

import (
	"bufio"
	"context"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// fullSession exercises every function the service answers, as one client would.
func fullSession(t *testing.T, addr string) {
	// a refused rack/slot first, then a snap7-style session
	r := dial(t, addr)
	if a := r.connect(0x0100, 0x0105, 0x0A); a.Code != CodeDR {
		t.Fatalf("want DR, got %+v", a)
	}
	c := dial(t, addr)
	cc := c.connect(0x0100, 0x0102, 0x0A)
	if cc.Code != CodeCC {
		t.Fatalf("want CC, got %+v", cc)
	}
	c.setup(480)
	for _, q := range [][2]uint16{{0x0011, 1}, {0x001C, 0}, {0x011C, 5}, {0x0131, 1}, {0x0132, 4}, {0x0424, 0}, {0x0000, 0}, {0x0D91, 0}} {
		c.readSZL(q[0], q[1])
	}
	c.readVar(dbItem(1, TSWord, 4, 0), dbItem(99, TSByte, 2, 0), VarItem{Syntax: syntaxS7Any, TransportSize: TSBit, Count: 1, Area: AreaM, BitAddr: 29},
		VarItem{Syntax: syntaxS7Any, TransportSize: TSReal, Count: 1, Area: AreaDB, DB: 10, BitAddr: 64})
	c.writeVar([]VarItem{dbItem(10, TSByte, 3, 4), {Syntax: syntaxS7Any, TransportSize: TSBit, Count: 1, Area: AreaQ, BitAddr: 3}},
		[]DataItem{{TS: DTSByte, Data: []byte{1, 2, 3}}, {TS: DTSBit, Data: []byte{1}}})
	c.job(jobStop, nil)
	c.job(jobStop, nil)
	c.job(jobColdStart, nil)
	c.userdata(UDParam{Group: GroupBlock, Sub: SubListBlocks}, UDData{RC: RCObjectNotExist}.Append(nil))
	c.userdata(UDParam{Group: GroupBlock, Sub: SubListOfType}, UDData{RC: RCSuccess, TS: DTSOctets, Payload: []byte{0x30, BlockDB}}.Append(nil))
	c.userdata(UDParam{Group: GroupBlock, Sub: SubBlockInfo}, UDData{RC: RCSuccess, TS: DTSOctets, Payload: append([]byte{0x30, BlockFB}, "00001A"...)}.Append(nil))
	c.userdata(UDParam{Group: GroupTime, Sub: SubReadClock}, UDData{RC: RCObjectNotExist}.Append(nil))
	c.job([]byte{FuncStartUpload, 0, 0, 0, 0, 0, 0, 0, 9, '_', '0', '8', '0', '0', '0', '0', '1', 'A'}, nil)
	// orderly release: COTP DR, answered with DC
	c.send((&TPDU{Code: CodeDR, DstRef: cc.SrcRef, SrcRef: 0x0014, Reason: ReasonNormal}).Append(nil))
	if a, _ := c.recvTPDU(); a.Code != CodeDC {
		t.Fatalf("want DC, got %+v", a)
	}
}

// TestTsharkDissects captures a full session on lo and checks that Wireshark's s7comm
// dissector decodes every PDU without malformed packets or expert warnings.
func TestTsharkDissects(t *testing.T) {
	tshark := protocoltest.NeedTool(t, "tshark")
	protocoltest.NeedRoot(t)
	p := protocoltest.Profile(t, protocoltest.Station)
	svc := protocoltest.Configure(t, protocol{}, p).(*service)
	addr := protocoltest.LoopbackAddr()
	srv := protocoltest.ServeTCP(t, Name, svc, protocoltest.Host(p, addr, 11), netip.AddrPortFrom(addr, Port).String())

	pcap := filepath.Join(t.TempDir(), "s7.pcap")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	capture := exec.CommandContext(ctx, tshark, "-i", "lo", "-f", "host "+addr.String()+" and tcp port 102", "-w", pcap)
	stderr, _ := capture.StderrPipe()
	if err := capture.Start(); err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			t.Logf("tshark: %s", sc.Text())
			if strings.Contains(sc.Text(), "Capture started") {
				close(started)
				for sc.Scan() {
					t.Logf("tshark: %s", sc.Text())
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
	fullSession(t, srv.Addr.String())
	time.Sleep(300 * time.Millisecond) // let the last packets reach the capture buffer
	capture.Process.Signal(syscall.SIGINT)
	capture.Wait()

	out, err := tsharkRead(t, tshark, pcap, "s7comm or cotp")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out, "S7COMM"); n < 40 {
		t.Errorf("only %d S7COMM packets decoded", n)
	}
	for _, want := range []string{"ID=0x001c", "Read Var", "Write Var", "PLC Stop", "PI-Service", "Setup communication",
		"List blocks", "Get block info", "Read clock", "CR TPDU", "CC TPDU", "DR TPDU", "DC TPDU", "reassembled"} {
		if !strings.Contains(out, want) {
			t.Errorf("capture summary lacks %q", want)
		}
	}
	bad, err := tsharkRead(t, tshark, pcap,
		// warnings on payload-less segments are the kernel's (a tail-loss-probe FIN
		// retransmission draws a D-SACK on loopback), not the dissectors'
		"_ws.malformed or (_ws.expert.severity >= 0x00600000 and tcp.len > 0)")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(bad) != "" {
		t.Errorf("malformed packets or expert warnings:\n%s", bad)
		protocoltest.Run(t, 30*time.Second, tshark, "-r", pcap, "-q", "-z", "expert")
		protocoltest.Run(t, 30*time.Second, tshark, "-r", pcap)
	}
}

// tsharkRead prints the packets of pcap matching filter (stdout only: tshark warns about
// running as root on stderr).
func tsharkRead(t *testing.T, tshark, pcap, filter string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, tshark, "-r", pcap, "-Y", filter).Output()
	t.Logf("$ tshark -r %s -Y %q\n%s", filepath.Base(pcap), filter, out)
	return string(out), err
}
