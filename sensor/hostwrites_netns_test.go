package sensor

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/internal/netnstest"
	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/protocoltest"
	"github.com/icsnare/icsnare/protocols/s7comm"
)

// TestWritesAgreeAcrossProtocolsAfterEviction: mbpoll writes a holding register and a coil
// of one host; a sweep of 3,000 other addresses evicts it (max_hosts 256); regenerated
// from its seed and the state directory, the host shows the writes to mbpoll and, through
// the process image the S7-300 persona shares, to an S7 read of DB1 and of the outputs.
func TestWritesAgreeAcrossProtocolsAfterEviction(t *testing.T) {
	mbpoll := protocoltest.NeedTool(t, "mbpoll")
	ns := netnstest.New(t)
	protocols.SetTiming(false)
	defer protocols.SetTiming(true)
	cfg := DefaultConfig()
	cfg.Hosts = []HostRule{{Addresses: []string{"127.82.16.0/20"}, Profile: "default"}}
	cfg.Privileges.User = ""
	cfg.Metrics.Listen = ""
	cfg.Events.File = ""
	cfg.Limits.MaxHosts = 256
	cfg.State = StateConfig{Dir: t.TempDir()}
	s := runInNamespace(t, ns, cfg)
	ctx := t.Context()

	const target = "127.82.16.10"
	mb := func(args ...string) string {
		t.Helper()
		cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
		defer ccancel()
		out, err := ns.Command(cctx, mbpoll, append([]string{"-m", "tcp", "-a", "1", "-1", "-o", "2"}, append(args[:len(args):len(args)], target)...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("mbpoll %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	// mbpoll takes the values after the address: write holding register 40006 (wire
	// address 5) and coil 3 (wire address 2).
	write := func(table, ref, value string) {
		t.Helper()
		cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
		defer ccancel()
		out, err := ns.Command(cctx, mbpoll, "-m", "tcp", "-a", "1", "-1", "-o", "2", "-t", table, "-r", ref, target, value).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Written 1 references") {
			t.Fatalf("mbpoll write %s %s: %v\n%s", table, ref, err, out)
		}
	}
	write("4", "6", "4242")
	write("0", "3", "1")
	write("0", "4", "0")
	first, _ := s.hosts.get(netip.MustParseAddr(target))

	evictedBefore := s.hosts.evicted.Load()
	for i := range 3000 {
		s.hosts.get(netip.AddrFrom4([4]byte{127, 82, byte(17 + i/250), byte(1 + i%250)}))
	}
	if s.hosts.evicted.Load()-evictedBefore < 2000 || s.hosts.count() > cfg.Limits.MaxHosts {
		t.Fatalf("evicted %d, %d hosts in memory", s.hosts.evicted.Load()-evictedBefore, s.hosts.count())
	}
	if again, _ := s.hosts.get(netip.MustParseAddr(target)); again == first {
		t.Fatal("the written host was never evicted")
	}

	if out := mb("-t", "4", "-r", "6", "-c", "1"); !strings.Contains(out, "[6]: \t4242") {
		t.Errorf("holding register 40006 after eviction:\n%s", out)
	}
	if out := mb("-t", "0", "-r", "3", "-c", "2"); !strings.Contains(out, "[3]: \t1") || !strings.Contains(out, "[4]: \t0") {
		t.Errorf("coils 3-4 after eviction:\n%s", out)
	}
	var db1, q []byte
	err := ns.Do(func() (err error) {
		db1, q, err = s7Read(target+":102",
			s7comm.VarItem{TransportSize: s7comm.TSByte, Count: 16, DB: 1, Area: s7comm.AreaDB},
			s7comm.VarItem{TransportSize: s7comm.TSByte, Count: 1, Area: s7comm.AreaQ})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if w := binary.BigEndian.Uint16(db1[10:]); w != 4242 {
		t.Errorf("S7 DB1.DBW10 = %d, want the 4242 Modbus wrote to register 5 (DB1 % x)", w, db1)
	}
	if q[0]&0b1100 != 0b0100 {
		t.Errorf("S7 QB0 = %08b, want Q0.2 set and Q0.3 clear as the coils were written", q[0])
	}
	t.Logf("after eviction: DB1 % x, QB0 %08b", db1, q[0])
}

// s7Read connects as snap7 does and reads two items with one Read Var job.
func s7Read(addr string, a, b s7comm.VarItem) ([]byte, []byte, error) {
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return nil, nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	param := []byte{s7comm.FuncReadVar, 2}
	param = s7comm.AppendVarItem(s7comm.AppendVarItem(param, a), b)
	s7hdr := []byte{0x32, 1, 0, 0, 0, 2, byte(len(param) >> 8), byte(len(param)), 0, 0}
	job := append([]byte{0x02, 0xf0, 0x80}, append(s7hdr, param...)...)
	cr, _ := hex.DecodeString("11e00000000100c0010ac1020100c2020102")
	setup, _ := hex.DecodeString("02f08032010000000000080000f0000001000101e0")
	var answer []byte
	for _, msg := range [][]byte{cr, setup, job} {
		frame := binary.BigEndian.AppendUint16([]byte{3, 0}, uint16(4+len(msg)))
		if _, err := c.Write(append(frame, msg...)); err != nil {
			return nil, nil, err
		}
		hdr := make([]byte, 4)
		if _, err := io.ReadFull(c, hdr); err != nil {
			return nil, nil, err
		}
		answer = make([]byte, int(binary.BigEndian.Uint16(hdr[2:]))-4)
		if _, err := io.ReadFull(c, answer); err != nil {
			return nil, nil, err
		}
	}
	if len(answer) < 3 {
		return nil, nil, fmt.Errorf("s7 answer % x", answer)
	}
	p, err := s7comm.ParsePDU(answer[3:]) // after the COTP data header
	if err != nil {
		return nil, nil, err
	}
	// Data: per item a return code, a transport size, a bit length, the bytes (padded to
	// an even length between items).
	d := p.Data
	var items [][]byte
	for range 2 {
		if len(d) < 4 || d[0] != 0xff {
			return nil, nil, fmt.Errorf("s7 read answer data % x", p.Data)
		}
		n := int(binary.BigEndian.Uint16(d[2:])) / 8
		if len(d) < 4+n {
			return nil, nil, fmt.Errorf("s7 read answer data % x", p.Data)
		}
		items = append(items, d[4:4+n])
		d = d[4+n:]
		if n%2 == 1 && len(d) > 0 {
			d = d[1:]
		}
	}
	return items[0], items[1], nil
}
