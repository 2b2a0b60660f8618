package kamstrupmeter

import (
	"bytes"
	"errors"
	"math/big"
	"slices"
	"testing"
)

// Conpot's test request for register 1033 and the reply its template's default value gives.
const (
	req1033 = "80 3f 10 01 04 09 18 6d 0d"
	rsp1033 = "40 3f 10 04 09 16 04 43 00 00 00 00 4a 41 0d"
)

func TestCRC16XMODEM(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint16
	}{
		{"313233343536373839", 0x31C3}, // "123456789", the CRC catalogue's check value
		{"3f10010409", 0x186D},         // Conpot's register 1033 request
		{"3f1001041e", 0x7ABB},         // Conpot's decoder test: register 1054
	} {
		if got := CRC16(unhex(t, tc.in)); got != tc.want {
			t.Errorf("CRC16(%s) = %#04x, want %#04x", tc.in, got, tc.want)
		}
	}
}

func TestParseConpotRequest(t *testing.T) {
	raw := unhex(t, req1033)
	// Fed byte by byte, the scanner yields nothing until the last byte (Conpot's
	// test_kamstrup_meter), then one GetRegister for 1033, and holds nothing after.
	var sc Scanner
	sc.Start = RequestMagic
	var frames []Frame
	for i, b := range raw {
		got := sc.Feed([]byte{b})
		if i < len(raw)-1 && len(got) > 0 {
			t.Fatalf("frame after %d bytes", i+1)
		}
		frames = append(frames, got...)
	}
	if len(frames) != 1 || sc.Pending() != 0 {
		t.Fatalf("frames %v pending %d", frames, sc.Pending())
	}
	m, err := ParseFrame(frames[0].Raw)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := ParseGetRegister(m.Data)
	if err != nil || m.Addr != 0x3f || m.Cmd != CmdGetRegister || !slices.Equal(ids, []uint16{1033}) {
		t.Fatalf("parsed %+v %v %v", m, ids, err)
	}
}

func TestEncodeConpotReply(t *testing.T) {
	data := AppendRegister(nil, RegisterValue{ID: 1033, Units: 22, SiEx: 67, Value: EncodeValue(int64(0), 4)})
	got := AppendFrame(nil, ResponseMagic, Message{Addr: 0x3f, Cmd: CmdGetRegister, Data: data})
	if want := unhex(t, rsp1033); !bytes.Equal(got, want) {
		t.Fatalf("reply % x, want % x", got, want)
	}
	// And a request built by the codec is Conpot's byte for byte.
	if got, want := AppendFrame(nil, RequestMagic, Message{Addr: 0x3f, Cmd: CmdGetRegister, Data: AppendGetRegister(nil, 1033)}), unhex(t, req1033); !bytes.Equal(got, want) {
		t.Fatalf("request % x, want % x", got, want)
	}
}

func TestStuffing(t *testing.T) {
	body := []byte{0x3f, 0x10, 0x06, 0x0d, 0x1b, 0x40, 0x80, 0x00, 0xff}
	st := Stuff(nil, body)
	want := []byte{0x3f, 0x10, 0x1b, 0xf9, 0x1b, 0xf2, 0x1b, 0xe4, 0x1b, 0xbf, 0x1b, 0x7f, 0x00, 0xff}
	if !bytes.Equal(st, want) {
		t.Fatalf("stuffed % x, want % x", st, want)
	}
	back, err := Unstuff(nil, st)
	if err != nil || !bytes.Equal(back, body) {
		t.Fatalf("unstuffed % x %v", back, err)
	}
	if _, err := Unstuff(nil, []byte{0x01, Escape}); !errors.Is(err, ErrEscape) {
		t.Fatalf("trailing escape: %v", err)
	}
	// A frame whose CRC needs escaping still round-trips.
	for id := range uint16(2000) {
		f := AppendFrame(nil, RequestMagic, Message{Addr: 0x3f, Cmd: CmdGetRegister, Data: AppendGetRegister(nil, id)})
		if bytes.IndexByte(f[1:len(f)-1], EOT) >= 0 || bytes.IndexByte(f[1:], RequestMagic) >= 0 {
			t.Fatalf("unescaped special byte in % x", f)
		}
		m, err := ParseFrame(f)
		if err != nil || m.Cmd != CmdGetRegister {
			t.Fatalf("register %d: %v", id, err)
		}
	}
}

func TestParseFrameErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		raw  string
		want error
	}{
		{"bad crc", "80 3f 10 02 00 01 55 a1 0d", ErrCRC},
		{"bad crc 2", "80 3f 10 01 00 02 65 cf 0d", ErrCRC},
		{"short", "80 3f 10 0d", ErrShort},
		{"empty", "80 0d", ErrShort},
		{"escape at end", "80 3f 10 00 00 1b 0d", ErrEscape},
		{"no start", "3f 10 0d", ErrNotFrame},
		{"no end", "80 3f 10", ErrNotFrame},
	} {
		if _, err := ParseFrame(unhex(t, tc.raw)); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestScannerHostile(t *testing.T) {
	sc := Scanner{Start: RequestMagic}
	// Garbage before a frame is skipped.
	fr := sc.Feed(append([]byte("GET / HTTP/1.0\r\n\r\n"), unhex(t, req1033)...))
	if len(fr) != 1 || fr[0].Err != nil || sc.Skipped != 18 {
		t.Fatalf("frames %v skipped %d", fr, sc.Skipped)
	}
	// A frame that never ends is dropped at MaxFrame, and the scanner recovers.
	long := append([]byte{RequestMagic}, bytes.Repeat([]byte{0x41}, 3*MaxFrame)...)
	fr = sc.Feed(long)
	if len(fr) != 1 || !errors.Is(fr[0].Err, ErrTooLong) || sc.Pending() > MaxFrame {
		t.Fatalf("long frame: %d frames, pending %d", len(fr), sc.Pending())
	}
	fr = sc.Feed(unhex(t, req1033))
	if len(fr) != 1 || fr[0].Err != nil {
		t.Fatalf("after a long frame: %v", fr)
	}
	// A new start byte inside a frame starts over.
	fr = sc.Feed(append(unhex(t, "80 3f 10 01"), unhex(t, req1033)...))
	if len(fr) != 1 || !bytes.Equal(fr[0].Raw, unhex(t, req1033)) {
		t.Fatalf("resync: %v", fr)
	}
}

func TestGetRegisterParse(t *testing.T) {
	for _, tc := range []struct {
		data string
		ok   bool
	}{
		{"01 04 09", true}, {"02 00 01 04 1e", true}, {"00", true},
		{"", false}, {"02 00 01", false}, {"01 04 09 00", false}, {"ff", false},
	} {
		_, err := ParseGetRegister(unhex(t, tc.data))
		if (err == nil) != tc.ok {
			t.Errorf("%q: %v", tc.data, err)
		}
	}
}

func TestEncodeValue(t *testing.T) {
	max128, _ := new(big.Int).SetString("340282366920938463463374607431768211455", 10)
	for _, tc := range []struct {
		v    any
		n    int
		want string
	}{
		{int64(228), 2, "00e4"},
		{int64(71832712), 4, "04481488"},
		{int64(-1), 2, "ffff"},
		{int64(0x123456), 2, "3456"},
		{max128, 16, "ffffffffffffffffffffffffffffffff"},
		{"1000", 2, "03e8"},
		{"AB", 4, "00004142"},
		{1.9, 1, "01"},
		{true, 1, "01"},
		{nil, 2, "0000"},
	} {
		if got := EncodeValue(tc.v, tc.n); !bytes.Equal(got, unhex(t, tc.want)) {
			t.Errorf("EncodeValue(%v, %d) = % x, want %s", tc.v, tc.n, got, tc.want)
		}
	}
}

func TestParseRegisters(t *testing.T) {
	data := AppendRegister(nil, RegisterValue{ID: 1054, Units: 33, Value: []byte{0, 228}})
	data = AppendRegister(data, RegisterValue{ID: 13, Units: 2, SiEx: 68, Value: []byte{4, 0x48, 0x14, 0x88}})
	regs, err := ParseRegisters(data)
	if err != nil || len(regs) != 2 || regs[1].ID != 13 || regs[1].SiEx != 68 {
		t.Fatalf("%+v %v", regs, err)
	}
	if _, err := ParseRegisters(data[:len(data)-1]); err == nil {
		t.Fatal("cut record accepted")
	}
}
