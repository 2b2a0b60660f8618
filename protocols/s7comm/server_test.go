package s7comm

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// startServer serves the default profile's S7 CPU on a loopback port.
func startServer(t testing.TB) *protocoltest.Server {
	t.Helper()
	p := protocoltest.Profile(t, protocoltest.Station)
	svc := protocoltest.Configure(t, protocol{}, p).(*service)
	h := protocoltest.Host(p, netip.MustParseAddr("192.0.2.10"), 42)
	return protocoltest.ServeTCP(t, Name, svc, h, "127.0.0.1:0")
}

// session opens a connection the way snap7 does: CR 0x0100 -> 0x0102, setup with PDU 480.
func session(t testing.TB, srv *protocoltest.Server) *client {
	t.Helper()
	c := dial(t, srv.Addr.String())
	if cc := c.connect(0x0100, 0x0102, 0x0A); cc.Code != CodeCC {
		t.Fatalf("connect: %+v", cc)
	}
	if s := c.setup(480); s.PDUSize != 240 {
		t.Fatalf("negotiated PDU %d", s.PDUSize)
	}
	return c
}

func hexb(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

func TestNmapConnectRequestExactAnswer(t *testing.T) {
	srv := startServer(t)
	c := dial(t, srv.Addr.String())
	c.c.Write(hexb("0300001611e00000001400c1020100c2020102c0010a"))
	_, frame := c.recvTPDU()
	want := hexb("030000161 1d0 0014 0000 00 c0010a c1020100 c2020102")
	// the source reference is the CPU's own, non-zero: compare around it
	if len(frame) != len(want) || !bytes.Equal(frame[:8], want[:8]) || !bytes.Equal(frame[10:], want[10:]) {
		t.Fatalf("CC % x, want % x with a source reference", frame, want)
	}
	if binary.BigEndian.Uint16(frame[8:]) == 0 {
		t.Fatal("CC source reference is 0")
	}
	c.c.Write(hexb("0300001902f08032010000000000080000f0000001000101e0"))
	_, frame = c.recvTPDU()
	if want := hexb("0300001b02f080320300000000000800000000f0000001000100f0"); !bytes.Equal(frame, want) {
		t.Fatalf("setup answer % x, want % x", frame, want)
	}
}

func TestCOTPConnect(t *testing.T) {
	srv := startServer(t)
	for _, tc := range []struct {
		name     string
		src, dst uint16
		tpdu     byte
		accept   bool
		wantTPDU byte // 0: no TPDU size parameter expected
	}{
		{"snap7 PG rack0 slot2", 0x0100, 0x0102, 0x0A, true, 0x0A},
		{"OP connection", 0x0200, 0x0202, 0x0A, true, 0x0A},
		{"S7 basic connection", 0x0100, 0x0302, 0x09, true, 0x09},
		{"large TPDU capped", 0x0100, 0x0102, 0x0D, true, 0x0A},
		{"no TPDU size", 0x0100, 0x0102, 0, true, 0},
		{"nmap fallback slot 0", 0x0100, 0x0200, 0x0A, false, 0},
		{"plcscan slot 1", 0x0200, 0x0201, 0x0A, false, 0},
		{"rack 1 slot 2", 0x0100, 0x0122, 0x0A, false, 0},
		{"S7-200 style TSAP", 0x1000, 0x1001, 0x0A, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, srv.Addr.String())
			a := c.connect(tc.src, tc.dst, tc.tpdu)
			if !tc.accept {
				if a.Code != CodeDR || a.DstRef != 0x0014 || a.Reason != ReasonAddrUnknown {
					t.Fatalf("want DR, got %+v", a)
				}
				return
			}
			if a.Code != CodeCC || a.DstRef != 0x0014 || a.SrcRef == 0 || a.Class != 0 {
				t.Fatalf("want CC, got %+v", a)
			}
			if s, _ := a.TSAP(ParamCallingTS); s != tc.src {
				t.Errorf("calling TSAP %04x", s)
			}
			if d, _ := a.TSAP(ParamCalledTS); d != tc.dst {
				t.Errorf("called TSAP %04x", d)
			}
			v, ok := a.Param(ParamTPDUSize)
			if tc.wantTPDU == 0 && ok || tc.wantTPDU != 0 && (!ok || v[0] != tc.wantTPDU) {
				t.Errorf("TPDU size %x (present %v), want %x", v, ok, tc.wantTPDU)
			}
			if s := c.setup(960); s.PDUSize != 240 || s.AmqCalling != 1 {
				t.Errorf("setup: %+v", s)
			}
		})
	}
}

func TestSZL(t *testing.T) {
	srv := startServer(t)
	c := session(t, srv)
	db := srv.Host.Databus
	str := func(k string) string { s, _ := db.GetString(k); return s }

	t.Run("0x0011 module identification", func(t *testing.T) {
		b, e, _ := c.readSZL(0x0011, 0x0001)
		if e != 0 || len(b) != 8+3*28 {
			t.Fatalf("error %x, %d bytes", e, len(b))
		}
		if !bytes.Equal(b[:8], hexb("0011 0001 001c 0003")) {
			t.Fatalf("header % x", b[:8])
		}
		r1, r6, r7 := b[8:36], b[36:64], b[64:92]
		if string(r1[2:22]) != "6ES7 216-2AD23-0XB0 " || string(r6[2:22]) != "6ES7 216-2AD23-0XB0 " {
			t.Errorf("MLFB %q %q", r1[2:22], r6[2:22])
		}
		if binary.BigEndian.Uint16(r1) != 1 || binary.BigEndian.Uint16(r6) != 6 || binary.BigEndian.Uint16(r7) != 7 {
			t.Errorf("record indexes % x % x % x", r1[:2], r6[:2], r7[:2])
		}
		fw := parseVersion(str("FirmwareVersion"))
		if r7[24] != 'V' || r7[25] != fw[0] || r7[26] != fw[1] || r7[27] != fw[2] {
			t.Errorf("firmware % x, want V%v", r7[24:], fw)
		}
		if binary.BigEndian.Uint16(r6[26:]) != 1 {
			t.Errorf("hardware release % x", r6[26:])
		}
	})
	t.Run("0x0111 one record", func(t *testing.T) {
		b, e, _ := c.readSZL(0x0111, 0x0006)
		if e != 0 || len(b) != 36 || binary.BigEndian.Uint16(b[8:]) != 6 {
			t.Fatalf("error %x: % x", e, b)
		}
	})
	t.Run("0x001C component identification, fragmented", func(t *testing.T) {
		b, e, parts := c.readSZL(0x001C, 0x0000)
		if e != 0 || parts != 2 {
			t.Fatalf("error %x, %d parts", e, parts)
		}
		n := int(binary.BigEndian.Uint16(b[6:]))
		if binary.BigEndian.Uint16(b[4:]) != 34 || len(b) != 8+34*n || n != 9 {
			t.Fatalf("%d records in %d bytes", n, len(b))
		}
		want := map[uint16]string{1: str("SystemName"), 2: "CPU 226 DC/DC/DC", 3: str("FacilityName"), 4: "(C) Siemens AG 2006",
			5: str("s7_id"), 7: "CPU 226", 0x0B: str("s7_location")}
		for i := 0; i < n; i++ {
			r := b[8+34*i : 8+34*(i+1)]
			idx := binary.BigEndian.Uint16(r)
			if w, ok := want[idx]; ok {
				if got := string(bytes.TrimRight(r[2:], "\x00")); got != w || w == "" {
					t.Errorf("record %d: %q, want %q", idx, got, w)
				}
			}
		}
		for _, bad := range []string{"Technodrome", "Mouser", "88111222", "IM151-8"} {
			if bytes.Contains(b, []byte(bad)) {
				t.Errorf("Conpot default %q in the answer", bad)
			}
		}
	})
	t.Run("0x011C serial", func(t *testing.T) {
		b, e, _ := c.readSZL(0x011C, 0x0005)
		if e != 0 || string(bytes.TrimRight(b[10:], "\x00")) != str("s7_id") {
			t.Fatalf("error %x: %q", e, b)
		}
	})
	t.Run("0x0131 communication capabilities", func(t *testing.T) {
		b, e, _ := c.readSZL(0x0131, 0x0001)
		if e != 0 || len(b) != 48 || binary.BigEndian.Uint16(b[10:]) != 240 || binary.BigEndian.Uint16(b[12:]) != 8 {
			t.Fatalf("error %x: % x", e, b)
		}
	})
	t.Run("0x0132 protection", func(t *testing.T) {
		b, e, _ := c.readSZL(0x0132, 0x0004)
		if e != 0 || len(b) != 48 || binary.BigEndian.Uint16(b[14:]) != 1 || binary.BigEndian.Uint16(b[16:]) != SwitchRun {
			t.Fatalf("error %x: % x", e, b)
		}
	})
	t.Run("0x0424 operating mode", func(t *testing.T) {
		b, e, _ := c.readSZL(0x0424, 0x0000)
		if e != 0 || len(b) != 28 || b[11]&0x0F != ModeRun || b[10] != 0xFF {
			t.Fatalf("error %x: % x", e, b)
		}
	})
	t.Run("0x0000 SZL list", func(t *testing.T) {
		b, e, _ := c.readSZL(0x0000, 0x0000)
		if e != 0 || int(binary.BigEndian.Uint16(b[6:]))*2+8 != len(b) || !bytes.Contains(b[8:], []byte{0x04, 0x24}) {
			t.Fatalf("error %x: % x", e, b)
		}
	})
	for _, id := range []uint16{0x0D91, 0x0074, 0x0A00, 0xFFFF} {
		_, e, _ := c.readSZL(id, 0)
		if e != ErrSZLUnknown {
			t.Errorf("SZL %04x: error %04x, want %04x", id, e, ErrSZLUnknown)
		}
	}
	_, e, _ := c.readSZL(0x0131, 0x0077)
	if e != ErrSZLUnknown {
		t.Errorf("unknown index: %04x", e)
	}
	// the connection is still usable after the errors
	if _, e, _ := c.readSZL(0x0011, 0); e != 0 {
		t.Fatal("connection unusable after SZL errors")
	}
}

func dbItem(db uint16, ts byte, count uint16, off int) VarItem {
	return VarItem{Syntax: syntaxS7Any, TransportSize: ts, Count: count, DB: db, Area: AreaDB, BitAddr: uint32(off) * 8}
}

func TestReadWriteVar(t *testing.T) {
	srv := startServer(t)
	c := session(t, srv)
	regs, _ := srv.Host.Databus.Get("memoryModbusHoldingRegisters")
	r2, _ := protocolsToInt(regs.([]any)[2])

	p := c.readVar(dbItem(1, TSWord, 4, 0), dbItem(99, TSByte, 2, 0), dbItem(10, TSByte, 4, 38),
		VarItem{Syntax: syntaxS7Any, TransportSize: TSBit, Count: 1, Area: AreaM, BitAddr: 8*3 + 5},
		VarItem{Syntax: syntaxS7Any, TransportSize: TSByte, Count: 1, Area: AreaL})
	if p.ROSCTR != ROSCTRAckData || p.ErrClass != 0 || !bytes.Equal(p.Param, []byte{FuncReadVar, 5}) {
		t.Fatalf("read answer %+v % x", p.Header, p.Param)
	}
	items, err := ParseDataItems(p.Data, 5)
	if err != nil {
		t.Fatal(err)
	}
	if items[0].RC != RCSuccess || items[0].TS != DTSByte || len(items[0].Data) != 8 || int64(binary.BigEndian.Uint16(items[0].Data[4:])) != r2 {
		t.Errorf("DB1 words: %+v (register 2 = %d)", items[0], r2)
	}
	for i, want := range []byte{RCObjectNotExist, RCOutOfRange, RCSuccess, RCOutOfRange} {
		if items[i+1].RC != want {
			t.Errorf("item %d: return code %02x, want %02x", i+1, items[i+1].RC, want)
		}
	}
	if items[3].TS != DTSBit || len(items[3].Data) != 1 {
		t.Errorf("bit item %+v", items[3])
	}

	// writes: bytes into DB10, a word into DB1 (the Modbus register), a bit into M3.5
	w := c.writeVar([]VarItem{dbItem(10, TSByte, 3, 4), dbItem(1, TSWord, 1, 2),
		{Syntax: syntaxS7Any, TransportSize: TSBit, Count: 1, Area: AreaM, BitAddr: 8*3 + 5},
		dbItem(10, TSByte, 2, 39), dbItem(10, TSByte, 2, 0)},
		[]DataItem{{TS: DTSByte, Data: []byte{1, 2, 3}}, {TS: DTSByte, Data: []byte{0x12, 0x34}}, {TS: DTSBit, Data: []byte{1}},
			{TS: DTSByte, Data: []byte{9, 9}}, {TS: DTSByte, Data: []byte{9}}})
	if w.ROSCTR != ROSCTRAckData || !bytes.Equal(w.Data, []byte{RCSuccess, RCSuccess, RCSuccess, RCOutOfRange, RCTypeInconsistent}) {
		t.Fatalf("write answer %+v % x", w.Header, w.Data)
	}
	if regs, _ := srv.Host.Databus.Get("memoryModbusHoldingRegisters"); regs.([]any)[1] != int64(0x1234) {
		t.Errorf("Modbus register 1 after S7 write: %v", regs.([]any)[1])
	}
	// a new connection sees the writes
	c2 := session(t, srv)
	p = c2.readVar(dbItem(10, TSByte, 8, 2), VarItem{Syntax: syntaxS7Any, TransportSize: TSByte, Count: 1, Area: AreaM, BitAddr: 8 * 3})
	items, err = ParseDataItems(p.Data, 2)
	if err != nil || !bytes.Equal(items[0].Data, []byte{0, 0, 1, 2, 3, 0, 0, 0}) || items[1].Data[0] != 1<<5 {
		t.Fatalf("read back %+v %v", items, err)
	}
	// an answer above the PDU size is refused, not truncated
	p = c2.readVar(dbItem(1, TSByte, 128, 0), dbItem(1, TSByte, 128, 0))
	if p.ROSCTR != ROSCTRAck || p.ErrClass != 0x85 {
		t.Fatalf("oversized read: %+v", p.Header)
	}
}

func protocolsToInt(v any) (int64, error) {
	switch x := v.(type) {
	case int64:
		return x, nil
	case bool:
		if x {
			return 1, nil
		}
	}
	return 0, nil
}

func TestStopStart(t *testing.T) {
	srv := startServer(t)
	c := session(t, srv)
	mode := func() byte {
		b, _, _ := c.readSZL(0x0424, 0)
		return b[11] & 0x0F
	}
	for _, step := range []struct {
		name      string
		param     []byte
		errClass  byte
		wantParam []byte
		mode      byte
	}{
		{"stop", jobStop, 0, []byte{0x29}, ModeStop},
		{"stop again", jobStop, 0x84, []byte{0x29, 0x07}, ModeStop},
		{"hot start", jobHotStart, 0, []byte{0x28}, ModeRun},
		{"start again", jobHotStart, 0x84, []byte{0x28, 0x02}, ModeRun},
		{"stop for cold start", jobStop, 0, []byte{0x29}, ModeStop},
		{"cold start", jobColdStart, 0, []byte{0x28}, ModeRun},
	} {
		p := c.job(step.param, nil)
		if p.ROSCTR != ROSCTRAckData || p.ErrClass != step.errClass || !bytes.Equal(p.Param, step.wantParam) {
			t.Fatalf("%s: %+v param % x", step.name, p.Header, p.Param)
		}
		if m := mode(); m != step.mode {
			t.Fatalf("%s: mode %x, want %x", step.name, m, step.mode)
		}
	}
	if n := len(srv.Events.OfType("s7comm.stop")); n != 3 {
		t.Errorf("%d stop events", n)
	}
	starts := srv.Events.OfType("s7comm.start")
	if len(starts) != 3 || !hasField(starts[2], "restart", "cold") || !hasField(starts[2], "flagged", true) {
		t.Errorf("start events: %+v", starts)
	}
}

func hasField(e *protocols.Event, k string, v any) bool {
	for _, f := range e.Fields {
		if f.Key == k && f.Value == v {
			return true
		}
	}
	return false
}

func TestBlocksClockPassword(t *testing.T) {
	srv := startServer(t)
	c := session(t, srv)
	rp, rd := c.userdata(UDParam{Group: GroupBlock, Sub: SubListBlocks}, UDData{RC: RCObjectNotExist}.Append(nil))
	if rp.ErrCode != 0 || !bytes.Equal(rd.Payload, hexb("30380003 30410003 30420000 30430002 30440002 30450002 30460001")) {
		t.Fatalf("block list %+v % x", rp, rd.Payload)
	}
	rp, rd = c.userdata(UDParam{Group: GroupBlock, Sub: SubListOfType}, UDData{RC: RCSuccess, TS: DTSOctets, Payload: []byte{0x30, BlockOB}}.Append(nil))
	if rp.ErrCode != 0 || !bytes.Equal(rd.Payload, hexb("0001 2201 0023 2201 0064 2201")) {
		t.Fatalf("OB list %+v % x", rp, rd.Payload)
	}
	rp, _ = c.userdata(UDParam{Group: GroupBlock, Sub: SubListOfType}, UDData{RC: RCSuccess, TS: DTSOctets, Payload: []byte{0x30, BlockSDB}}.Append(nil))
	if rp.ErrCode != ErrNoBlock {
		t.Fatalf("SDB list error %04x", rp.ErrCode)
	}
	rp, rd = c.userdata(UDParam{Group: GroupBlock, Sub: SubBlockInfo}, UDData{RC: RCSuccess, TS: DTSOctets, Payload: append([]byte{0x30, BlockOB}, "00001A"...)}.Append(nil))
	if rp.ErrCode != 0 || len(rd.Payload) != 78 || rd.Payload[11] != 0x08 || binary.BigEndian.Uint16(rd.Payload[12:]) != 1 ||
		binary.BigEndian.Uint16(rd.Payload[40:]) != 1462 || string(rd.Payload[58:62]) != "MAIN" {
		t.Fatalf("OB1 info %+v % x", rp, rd.Payload)
	}
	rp, _ = c.userdata(UDParam{Group: GroupBlock, Sub: SubBlockInfo}, UDData{RC: RCSuccess, TS: DTSOctets, Payload: append([]byte{0x30, BlockOB}, "00002A"...)}.Append(nil))
	if rp.ErrCode != ErrBlockNF {
		t.Fatalf("OB2 info error %04x", rp.ErrCode)
	}
	rp, rd = c.userdata(UDParam{Group: GroupTime, Sub: SubReadClock}, UDData{RC: RCObjectNotExist}.Append(nil))
	if rp.ErrCode != 0 || len(rd.Payload) != 10 || rd.Payload[1] != 0x20 {
		t.Fatalf("clock %+v % x", rp, rd.Payload)
	}
	// the password "secret" scrambled as snap7 does: no password is set on this CPU
	pw := []byte("secret  ")
	pw[0], pw[1] = pw[0]^0x55, pw[1]^0x55
	for i := 2; i < 8; i++ {
		pw[i] ^= 0x55 ^ pw[i-2]
	}
	rp, _ = c.userdata(UDParam{Group: GroupSecurity, Sub: SubPassword}, UDData{RC: RCSuccess, TS: DTSOctets, Payload: pw}.Append(nil))
	if rp.ErrCode != ErrNoPassword {
		t.Fatalf("password error %04x", rp.ErrCode)
	}
	auth := srv.Events.OfType("s7comm.auth")
	if len(auth) != 1 || !hasField(auth[0], "password", "secret") {
		t.Fatalf("auth events %+v", auth)
	}
}

func TestMalformed(t *testing.T) {
	srv := startServer(t)
	for _, tc := range []struct {
		name  string
		pre   bool // connect and set up first
		send  string
		check func(t *testing.T, c *client)
	}{
		{"DT before connect gets ER", false, "0300000702f080", func(t *testing.T, c *client) {
			a, _ := c.recvTPDU()
			if a.Code != CodeER || a.Reason != RejectTPDUType {
				t.Fatalf("%+v", a)
			}
		}},
		{"CR with overrunning parameter gets ER", false, "0300000fe0e00000001400c1050100", func(t *testing.T, c *client) {
			a, _ := c.recvTPDU()
			if a.Code != CodeER {
				t.Fatalf("%+v", a)
			}
		}},
		{"unknown job function gets Ack 0x8104", true, "0300001302f08032010000ffff00020000aa00", func(t *testing.T, c *client) {
			c.ref = 0xFFFF
			p := c.recvS7()
			if p.ROSCTR != ROSCTRAck || p.ErrClass != 0x81 || p.ErrCode != 0x04 {
				t.Fatalf("%+v", p.Header)
			}
		}},
		{"bad S7 lengths get Ack 0x8104", true, "0300001302f08032010000ffff00090000aa00", func(t *testing.T, c *client) {
			c.ref = 0xFFFF
			p := c.recvS7()
			if p.ROSCTR != ROSCTRAck || p.ErrClass != 0x81 {
				t.Fatalf("%+v", p.Header)
			}
		}},
		{"upload is refused", true, "0300002102f080320100000001001200001d0000000000000009 5f3042303030303141", func(t *testing.T, c *client) {
			c.ref = 1
			p := c.recvS7()
			if p.ROSCTR != ROSCTRAck || p.ErrClass != 0x81 {
				t.Fatalf("%+v", p.Header)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c *client
			if tc.pre {
				c = session(t, srv)
			} else {
				c = dial(t, srv.Addr.String())
			}
			c.c.Write(hexb(tc.send))
			tc.check(t, c)
		})
	}
	// a bad TPKT version closes the connection
	c := dial(t, srv.Addr.String())
	c.c.Write(hexb("0400001611e00000001400c1020100c2020102c0010a"))
	buf := make([]byte, 8)
	if n, err := c.c.Read(buf); err == nil {
		t.Fatalf("read %d bytes after a bad TPKT, want close", n)
	}
	if srv.Panics.Load() != 0 {
		t.Fatal("handler panicked")
	}
}

func TestSegmentation(t *testing.T) {
	srv := startServer(t)
	// no TPDU size in the CR: class 0's 128-byte TPDUs, so answers come in several DTs
	c := dial(t, srv.Addr.String())
	if cc := c.connect(0x0100, 0x0102, 0); cc.Code != CodeCC {
		t.Fatalf("connect: %+v", cc)
	}
	c.setup(240)
	b, e, parts := c.readSZL(0x001C, 0)
	if e != 0 || parts != 2 || len(b) != 8+9*34 {
		t.Fatalf("SZL 0x001C over 128-byte TPDUs: error %x, %d parts, %d bytes", e, parts, len(b))
	}
	// a request split over two DTs (EOT clear on the first) is reassembled
	param := AppendVarItem([]byte{FuncReadVar, 1}, dbItem(10, TSByte, 4, 0))
	c.ref++
	pdu := (&PDU{Header: Header{ROSCTR: ROSCTRJob, PDURef: c.ref}, Param: param}).Append(nil)
	c.send((&TPDU{Code: CodeDT, Data: pdu[:9]}).Append(nil))
	c.send((&TPDU{Code: CodeDT, EOT: true, Data: pdu[9:]}).Append(nil))
	p := c.recvS7()
	items, err := ParseDataItems(p.Data, 1)
	if err != nil || items[0].RC != RCSuccess || len(items[0].Data) != 4 {
		t.Fatalf("segmented read: %+v %v", items, err)
	}
}

func TestEvents(t *testing.T) {
	srv := startServer(t)
	c := session(t, srv)
	c.readSZL(0x0011, 1)
	c.readVar(dbItem(1, TSWord, 2, 0))
	c.writeVar([]VarItem{dbItem(10, TSByte, 2, 0)}, []DataItem{{TS: DTSByte, Data: []byte{0xAB, 0xCD}}})
	var szl, read, write *protocols.Event
	// The server emits an event after it has answered, so the last one may lag the answer:
	// look again for a bounded while.
	for deadline := time.Now().Add(3 * time.Second); write == nil && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		for _, e := range srv.Events.Events() {
			switch {
			case e.Type == "s7comm.request" && hasField(e, "function", "szl_read"):
				szl = e
			case e.Type == "s7comm.request" && hasField(e, "function", "read_var"):
				read = e
			case e.Type == "s7comm.write":
				write = e
			}
		}
	}
	if szl == nil || !hasField(szl, "szl_id", "0x0011") || !hasField(szl, "szl_index", "0x0001") || len(szl.Request) == 0 || len(szl.Response) < 125 {
		t.Fatalf("SZL event %+v", szl)
	}
	if read == nil || len(read.Response) == 0 {
		t.Fatalf("read event %+v", read)
	}
	if write == nil || !hasField(write, "flagged", true) {
		t.Fatalf("write event %+v", write)
	}
	for _, f := range write.Fields {
		if f.Key == "items" {
			var items []map[string]any
			if err := json.Unmarshal(f.Value.(protocols.JSONAppender).AppendJSON(nil), &items); err != nil || len(items) != 1 {
				t.Fatalf("write items %v: %v", f.Value, err)
			}
			it := items[0]
			if it["db"] != 10.0 || it["offset"] != 0.0 || it["length"] != 2.0 || it["value"] != "abcd" || it["return_code"] != "0xFF" {
				t.Fatalf("write item %+v", it)
			}
			return
		}
	}
	t.Fatal("write event without items")
}
