package modbus

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// exchange is one request and the reply it must get ("" for none).
type exchange struct {
	name  string
	unit  uint8
	pdu   string
	reply string
	// malformed marks a request that breaks the PDU format on purpose (dissectors flag it).
	malformed bool
}

// goldenExchanges run in order against the default profile (serial mode, slave 1,
// unknown units answered with 0x0B) with testService's memory.
var goldenExchanges = []exchange{
	{"fc1 8 coils", 1, "01 0000 0008", "01 01 92", false},
	{"fc1 all 128", 1, "01 0000 0080", "01 10" + strings.Repeat("92 24 49", 5) + "92", false},
	{"fc1 past block", 1, "01 0078 0009", "81 02", false},
	{"fc1 qty 0", 1, "01 0000 0000", "81 03", false},
	{"fc2 4 inputs", 1, "02 0000 0004", "02 01 05", false},
	{"fc2 past block", 1, "02 003f 0002", "82 02", false},
	{"fc3 3 regs", 1, "03 0000 0003", "03 06 0000 0001 0002", false},
	{"fc3 last reg", 1, "03 003f 0001", "03 02 003f", false},
	{"fc3 past block", 1, "03 0040 0001", "83 02", false},
	{"fc3 qty 126", 1, "03 0000 007e", "83 03", false},
	{"fc3 bad length", 1, "03 0000", "83 03", true},
	{"fc4 2 regs", 1, "04 001e 0002", "04 04 0406 0407", false},
	{"fc4 40001 literally", 1, "04 9c40 0001", "84 02", false},
	{"fc6 write", 1, "06 0005 1234", "06 0005 1234", false},
	{"fc3 reads it back", 1, "03 0005 0001", "03 02 1234", false},
	{"fc6 past block", 1, "06 0040 0001", "86 02", false},
	{"fc5 on", 1, "05 0003 ff00", "05 0003 ff00", false},
	{"fc1 reads it back", 1, "01 0000 0008", "01 01 9a", false},
	{"fc5 bad value", 1, "05 0003 1234", "85 03", false},
	{"fc15 write 10 coils", 1, "0f 0008 000a 02 cd01", "0f 0008 000a", false},
	{"fc1 reads them", 1, "01 0008 000a", "01 02 cd 01", false},
	{"fc16 write 2 regs", 1, "10 000a 0002 04 000a 0102", "10 000a 0002", false},
	{"fc3 reads them", 1, "03 000a 0002", "03 04 000a 0102", false},
	{"fc16 byte count wrong", 1, "10 000a 0002 03 000a 01", "90 03", true},
	{"fc22 setup", 1, "06 0004 0012", "06 0004 0012", false},
	{"fc22 mask write", 1, "16 0004 00f2 0025", "16 0004 00f2 0025", false},
	{"fc22 result", 1, "03 0004 0001", "03 02 0017", false},
	{"fc23 read/write", 1, "17 0000 0002 0014 0001 02 00ff", "17 04 0000 0001", false},
	{"fc23 wrote", 1, "03 0014 0001", "03 02 00ff", false},
	{"fc23 write past block", 1, "17 0000 0002 0040 0001 02 00ff", "97 02", false},
	{"fc8 echo", 1, "08 0000 a537", "08 0000 a537", false},
	{"fc8 restart comms", 1, "08 0001 0000", "88 01", false},
	{"fc17", 1, "11", "11 12 01 ff" + hexs("CPU 226 DC/DC/DC"), false},
	{"fc43 basic", 1, "2b 0e 01 00", "2b 0e 01 82 00 00 03 00 07" + hexs("Siemens") + "01 13" + hexs("6ES7 216-2AD23-0XB0") + "02 06" + hexs("V2.2.1"), false},
	{"fc43 individual product name", 1, "2b 0e 04 04", "2b 0e 04 82 00 00 01 04 10" + hexs("CPU 226 DC/DC/DC"), false},
	{"fc43 individual extended", 1, "2b 0e 04 80", "ab 02", false},
	{"fc43 bad code", 1, "2b 0e 07 00", "ab 03", false},
	{"fc7 unsupported", 1, "07", "87 01", false},
	{"fc 0x5a unsupported", 1, "5a 0102", "da 01", false},
	{"unit 2 gateway exception", 2, "03 0000 0001", "83 0b", false},
	{"unit 255 gateway exception", 255, "2b 0e 01 00", "ab 0b", false},
	{"unit 247 gateway exception bad pdu", 247, "03", "83 0b", true},
	{"broadcast write", 0, "06 0007 4242", "", false},
	{"broadcast read dropped", 0, "03 0000 0001", "", false},
	{"broadcast device id dropped", 0, "2b 0e 01 00", "", false},
	{"broadcast wrote", 1, "03 0007 0001", "03 02 4242", false},
}

// goldenStream builds the request stream and the expected reply stream.
func goldenStream(t *testing.T) (req, want []byte) {
	for i, x := range goldenExchanges {
		tid := uint16(0x100 + i)
		req = append(req, adu(tid, x.unit, unhex(t, x.pdu)...)...)
		if x.reply != "" {
			want = append(want, adu(tid, x.unit, unhex(t, x.reply)...)...)
		}
	}
	return req, want
}

func newTestService(t testing.TB) (*service, *protocols.Host) {
	svc, h := testService(t, nil)
	h.Databus.Set("FirmwareVersion", "V2.2.1")
	return svc, h
}

func TestGoldenPipelined(t *testing.T) {
	svc, h := newTestService(t)
	req, want := goldenStream(t)
	rec := &protocoltest.Recorder{}
	c := &fakeConn{chunks: [][]byte{req}}
	svc.ServeConn(context.Background(), testSession(h, rec), c)
	compareReplies(t, c.out.Bytes(), want)
	if got := len(rec.OfType("modbus.request")); got != len(goldenExchanges) {
		t.Errorf("%d request events, want %d", got, len(goldenExchanges))
	}
}

// TestGoldenSplit feeds the same stream one byte per read: frames split across segments.
func TestGoldenSplit(t *testing.T) {
	svc, h := newTestService(t)
	req, want := goldenStream(t)
	c := &fakeConn{}
	for _, b := range req {
		c.chunks = append(c.chunks, []byte{b})
	}
	svc.ServeConn(context.Background(), testSession(h, nil), c)
	compareReplies(t, c.out.Bytes(), want)
}

// TestGoldenTCP runs the exchanges one by one over a loopback socket.
func TestGoldenTCP(t *testing.T) {
	svc, h := newTestService(t)
	srv := protocoltest.ServeTCP(t, Name, svc, h, "127.0.0.1:0")
	c := dial(t, srv.Addr)
	for i, x := range goldenExchanges {
		tid := uint16(0x100 + i)
		c.send(adu(tid, x.unit, unhex(t, x.pdu)...))
		if x.reply == "" {
			continue
		}
		if got, want := c.recv(), adu(tid, x.unit, unhex(t, x.reply)...); !bytes.Equal(got, want) {
			t.Errorf("%s:\n got % x\nwant % x", x.name, got, want)
		}
	}
}

func compareReplies(t *testing.T, got, want []byte) {
	t.Helper()
	g, w := splitADUs(t, got), splitADUs(t, want)
	for i := 0; i < max(len(g), len(w)); i++ {
		switch {
		case i >= len(g):
			t.Fatalf("missing reply % x", w[i])
		case i >= len(w):
			t.Fatalf("extra reply % x", g[i])
		case !bytes.Equal(g[i], w[i]):
			name := ""
			tid := int(g[i][0])<<8 | int(g[i][1])
			if j := tid - 0x100; j >= 0 && j < len(goldenExchanges) {
				name = goldenExchanges[j].name
			}
			t.Errorf("reply %d (%s):\n got % x\nwant % x", i, name, g[i], w[i])
		}
	}
}

// TestOneWritePerBatch checks that pipelined requests get their replies in one Write.
func TestOneWritePerBatch(t *testing.T) {
	svc, h := newTestService(t)
	var req []byte
	for i := range 100 {
		req = append(req, adu(uint16(i), 1, 3, 0, 0, 0, 10)...)
	}
	c := &fakeConn{chunks: [][]byte{req}}
	svc.ServeConn(context.Background(), testSession(h, nil), c)
	if n := len(splitADUs(t, c.out.Bytes())); n != 100 {
		t.Fatalf("%d replies, want 100", n)
	}
	if c.writes != 1 {
		t.Fatalf("%d writes, want 1", c.writes)
	}
}

// TestWritesPersist checks that Modbus writes land in the host's databus, where every
// protocol reads them, and that databus changes show through Modbus.
func TestWritesPersist(t *testing.T) {
	svc, h := newTestService(t)
	c := &fakeConn{chunks: [][]byte{
		adu(1, 1, unhex(t, "10 0002 0002 04 abcd 0102")...),
		adu(2, 1, unhex(t, "05 007f ff00")...),
	}}
	svc.ServeConn(context.Background(), testSession(h, nil), c)
	hr, _ := h.Databus.Get("memoryModbusHoldingRegisters")
	if l := hr.([]any); l[2] != int64(0xabcd) || l[3] != int64(0x0102) || l[4] != int64(4) {
		t.Fatalf("holding registers in databus: %v", l[:5])
	}
	co, _ := h.Databus.Get("memoryModbusCoils")
	if l := co.([]any); l[127] != int64(1) {
		t.Fatalf("coil 127 in databus = %v", l[127])
	}
	h.Databus.Set("memoryModbusInputRegisters", []any{int64(-1), true, 3.9, "17"})
	c = &fakeConn{chunks: [][]byte{adu(3, 1, unhex(t, "04 0000 0005")...)}}
	svc.ServeConn(context.Background(), testSession(h, nil), c)
	if got, want := c.out.Bytes(), adu(3, 1, unhex(t, "04 0a ffff 0001 0003 0011 0000")...); !bytes.Equal(got, want) {
		t.Fatalf("reply % x, want % x", got, want)
	}
	// A compact list shorter than its block: the registers past its end read 0, from
	// within the list and from past it.
	h.Databus.Set("memoryModbusInputRegisters", []any{int64(7), int64(65535), int64(300)})
	c = &fakeConn{chunks: [][]byte{adu(4, 1, unhex(t, "04 0001 0004")...), adu(5, 1, unhex(t, "04 0005 0002")...)}}
	svc.ServeConn(context.Background(), testSession(h, nil), c)
	want := append(adu(4, 1, unhex(t, "04 08 ffff 012c 0000 0000")...), adu(5, 1, unhex(t, "04 04 0000 0000")...)...)
	if got := c.out.Bytes(); !bytes.Equal(got, want) {
		t.Fatalf("reply % x, want % x", got, want)
	}
}

func TestEvents(t *testing.T) {
	svc, h := newTestService(t)
	rec := &protocoltest.Recorder{}
	c := &fakeConn{chunks: [][]byte{
		adu(1, 1, unhex(t, "03 0010 0002")...),
		adu(2, 1, unhex(t, "03 0100 0002")...),
		adu(3, 9, unhex(t, "01 0000 0001")...),
		append(unhex(t, "0004 0001 0006 01"), unhex(t, "03 0000 0001")...),
		unhex(t, "0005 00"),
	}}
	svc.ServeConn(context.Background(), testSession(h, rec), c)
	ev := rec.Events()
	want := []struct {
		typ    string
		fields string
		resp   bool
	}{
		{"modbus.request", "unit_id=1 function_code=3 address=16 quantity=2", true},
		{"modbus.request", "unit_id=1 function_code=3 address=256 quantity=2 exception=2", true},
		{"modbus.request", "unit_id=9 function_code=1 address=0 quantity=1 exception=11", true},
		{"modbus.request", "unit_id=1 function_code=3 no_reply=protocol_id", false},
		{"modbus.partial_frame", "", false},
	}
	if len(ev) != len(want) {
		t.Fatalf("%d events, want %d: %v", len(ev), len(want), ev)
	}
	for i, w := range want {
		var f []string
		for _, x := range ev[i].Fields {
			f = append(f, fmt.Sprintf("%s=%v", x.Key, x.Value))
		}
		if ev[i].Type != w.typ || strings.Join(f, " ") != w.fields || (ev[i].Response != nil) != w.resp {
			t.Errorf("event %d: %s %v resp=% x; want %s %s resp=%v", i, ev[i].Type, f, ev[i].Response, w.typ, w.fields, w.resp)
		}
		if len(ev[i].Request) == 0 {
			t.Errorf("event %d has no request bytes", i)
		}
	}
	if got, want := ev[0].Request, adu(1, 1, unhex(t, "03 0010 0002")...); !bytes.Equal(got, want) {
		t.Errorf("request bytes % x, want % x", got, want)
	}
	if got, want := ev[0].Response, adu(1, 1, unhex(t, "03 04 0010 0011")...); !bytes.Equal(got, want) {
		t.Errorf("response bytes % x, want % x", got, want)
	}
}

// TestBadLengthCloses: an impossible MBAP length ends the connection after the replies
// to the frames before it.
func TestBadLengthCloses(t *testing.T) {
	svc, h := newTestService(t)
	rec := &protocoltest.Recorder{}
	c := &fakeConn{chunks: [][]byte{
		append(adu(1, 1, 3, 0, 0, 0, 1), unhex(t, "0002 0000 0000 01 03")...),
		adu(3, 1, 3, 0, 0, 0, 1),
	}}
	svc.ServeConn(context.Background(), testSession(h, rec), c)
	compareRepliesRaw(t, c.out.Bytes(), adu(1, 1, unhex(t, "03 02 0000")...))
	if n := len(rec.OfType("modbus.bad_frame")); n != 1 {
		t.Fatalf("%d bad_frame events", n)
	}
}

func compareRepliesRaw(t *testing.T, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("replies\n got % x\nwant % x", got, want)
	}
}

// TestShortFrameThenClose is the case that sent Conpot to 100 % CPU: a few bytes of a
// header, then the peer closes. The handler must return at once and the service must go
// on serving.
func TestShortFrameThenClose(t *testing.T) {
	svc, h := newTestService(t)
	for _, short := range []string{"00", "0001 00", "0001 0000 00", "0001 0000 0006 01 03 00"} {
		rec := &protocoltest.Recorder{}
		done := make(chan struct{})
		go func() {
			svc.ServeConn(context.Background(), testSession(h, rec), &fakeConn{chunks: [][]byte{unhex(t, short)}})
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("ServeConn did not return after %q and EOF", short)
		}
		if n := len(rec.OfType("modbus.partial_frame")); n != 1 {
			t.Errorf("%q: %d partial_frame events", short, n)
		}
	}
	// The same over TCP, then a normal client is still served.
	srv := protocoltest.ServeTCP(t, Name, svc, h, "127.0.0.1:0")
	for range 20 {
		c := dial(t, srv.Addr)
		c.send(unhex(t, "0001 0000 00"))
		c.c.Close()
	}
	c := dial(t, srv.Addr)
	c.send(adu(7, 1, 3, 0, 0, 0, 1))
	if got := c.recv(); !bytes.Equal(got, adu(7, 1, 3, 2, 0, 0)) {
		t.Fatalf("after short frames: % x", got)
	}
}
