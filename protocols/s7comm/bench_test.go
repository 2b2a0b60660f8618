package s7comm

import (
	"testing"
)

func BenchmarkParseCOTP(b *testing.B) {
	cr := seedBytes(seedFrames[0])[tpktHeaderLen:]
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseCOTP(cr); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseReadVar(b *testing.B) {
	param := []byte{FuncReadVar, 4}
	for i := 0; i < 4; i++ {
		param = AppendVarItem(param, dbItem(1, TSWord, 4, 8*i))
	}
	pdu := (&PDU{Header: Header{ROSCTR: ROSCTRJob}, Param: param}).Append(nil)
	b.ReportAllocs()
	var items []VarItem // the connection's scratch slice, as the server parses
	for b.Loop() {
		p, err := ParsePDU(pdu)
		if err != nil {
			b.Fatal(err)
		}
		if items, err = appendVarJob(items[:0], p.Param); err != nil || len(items) != 4 {
			b.Fatal(len(items), err)
		}
	}
}

func BenchmarkEncodeUserdata(b *testing.B) {
	payload := make([]byte, 92)
	out := make([]byte, 0, 256)
	param, data := make([]byte, 0, 16), make([]byte, 0, 128) // reused, as a connection's buffers are
	b.ReportAllocs()
	for b.Loop() {
		u := UDParam{Method: udMethodRes, Type: UDTypeRes, Group: GroupCPU, Sub: SubReadSZL, Seq: 1, Long: true}
		d := UDData{RC: RCSuccess, TS: DTSOctets, Payload: payload}
		param, data = u.Append(param[:0]), d.Append(data[:0])
		p := PDU{Header: Header{ROSCTR: ROSCTRUserdata}, Param: param, Data: data}
		out = p.Append(out[:0])
	}
}

func BenchmarkSZL001C(b *testing.B) {
	svc, host := testService(b)
	c := &conn{svc: svc, cfg: svc.cfg, host: host, cpu: svc.cpu(host)}
	b.ReportAllocs()
	for b.Loop() {
		id := c.identity()
		if _, e := svc.cfg.szl(SZLRequest{ID: SZLComponent}, &id); e != 0 {
			b.Fatal(e)
		}
	}
}

// BenchmarkSession handles whole frames (TPKT, COTP, S7, answer) as the connection loop
// does: a Read Var of four DB1 words and an SZL 0x0011 read.
func BenchmarkSession(b *testing.B) {
	svc, host := testService(b)
	sess := newBenchSession(host)
	c := &conn{svc: svc, cfg: svc.cfg, s: sess, nc: discard{}, host: host, cpu: svc.cpu(host), tpdu: 1024, pdu: 240, amq: 1}
	if !c.handleTPDU(seedBytes(seedFrames[0])[tpktHeaderLen:], seedBytes(seedFrames[0])) {
		b.Fatal("connect")
	}
	read := seedBytes(seedFrames[8])
	szl := seedBytes(seedFrames[5])
	b.ReportAllocs()
	for b.Loop() {
		if !c.handleTPDU(read[tpktHeaderLen:], read) || !c.handleTPDU(szl[tpktHeaderLen:], szl) {
			b.Fatal("request refused")
		}
	}
}

// BenchmarkReadVar handles one Read Var frame (four DB1 words) as the connection loop
// does, with every event kept and with the default volume control past its first events
// (events summarised): the request path allocates nothing in the second case.
func BenchmarkReadVar(b *testing.B) {
	for _, keep := range []int{0, 100} {
		name := "events=all"
		if keep > 0 {
			name = "events=volume-control"
		}
		b.Run(name, func(b *testing.B) {
			svc, host := testService(b)
			sess := newBenchSession(host)
			sess.KeepEvents = keep
			c := &conn{svc: svc, cfg: svc.cfg, s: sess, nc: discard{}, host: host, cpu: svc.cpu(host), tpdu: 1024, pdu: 240, amq: 1}
			if !c.handleTPDU(seedBytes(seedFrames[0])[tpktHeaderLen:], seedBytes(seedFrames[0])) {
				b.Fatal("connect")
			}
			read := seedBytes(seedFrames[8])
			for range keep + 1 { // past the events volume control keeps
				if !c.handleTPDU(read[tpktHeaderLen:], read) {
					b.Fatal("request refused")
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				if !c.handleTPDU(read[tpktHeaderLen:], read) {
					b.Fatal("request refused")
				}
			}
		})
	}
}

// TestReadVarNoAllocs: under the default volume control, past the events it keeps, a Read
// Var request allocates nothing.
func TestReadVarNoAllocs(t *testing.T) {
	svc, host := testService(t)
	sess := newBenchSession(host)
	sess.KeepEvents = 100
	c := &conn{svc: svc, cfg: svc.cfg, s: sess, nc: discard{}, host: host, cpu: svc.cpu(host), tpdu: 1024, pdu: 240, amq: 1}
	if !c.handleTPDU(seedBytes(seedFrames[0])[tpktHeaderLen:], seedBytes(seedFrames[0])) {
		t.Fatal("connect")
	}
	read := seedBytes(seedFrames[8])
	serve := func() {
		if !c.handleTPDU(read[tpktHeaderLen:], read) {
			t.Fatal("request refused")
		}
	}
	for range sess.KeepEvents + 1 {
		serve()
	}
	if n := testing.AllocsPerRun(200, serve); n != 0 {
		t.Fatalf("Read Var: %v allocations per request, want 0", n)
	}
}
