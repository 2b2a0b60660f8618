package modbus

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestNextFrame(t *testing.T) {
	full := adu(1, 1, 3, 0, 0, 0, 1) // 12 bytes
	tests := []struct {
		name string
		in   []byte
		want int
		err  error
	}{
		{"empty", nil, 0, nil},
		{"five bytes", full[:5], 0, nil},
		{"header only", full[:7], 0, nil},
		{"one short", full[:11], 0, nil},
		{"exact", full, 12, nil},
		{"two pipelined", append(append([]byte{}, full...), full...), 12, nil},
		{"length 0", unhex(t, "0001 0000 0000 01"), 0, ErrFrameLength},
		{"length 1", unhex(t, "0001 0000 0001 01"), 0, ErrFrameLength},
		{"length 255", unhex(t, "0001 0000 00ff 01"), 0, ErrFrameLength},
		{"length 254 incomplete", unhex(t, "0001 0000 00fe 01 03"), 0, nil},
		{"length 254 complete", append(unhex(t, "0001 0000 00fe 01"), make([]byte, 253)...), 260, nil},
		{"length 0xffff", unhex(t, "0001 0000 ffff"), 0, ErrFrameLength},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, err := NextFrame(tc.in)
			if n != tc.want || !errors.Is(err, tc.err) {
				t.Fatalf("NextFrame = %d, %v; want %d, %v", n, err, tc.want, tc.err)
			}
		})
	}
}

func TestHeaderRoundTrip(t *testing.T) {
	b := AppendHeader(nil, 0xBEEF, 0, 0x11, 5)
	if got, want := b, unhex(t, "beef 0000 0006 11"); !bytes.Equal(got, want) {
		t.Fatalf("AppendHeader = % x, want % x", got, want)
	}
	h := ParseHeader(b)
	if h != (Header{Transaction: 0xBEEF, Length: 6, Unit: 0x11}) {
		t.Fatalf("ParseHeader = %+v", h)
	}
}

func TestParseRequest(t *testing.T) {
	tests := []struct {
		name string
		pdu  string
		ex   uint8
		want Request // checked fields only when ex == 0
	}{
		{"fc1 ok", "01 0000 0008", 0, Request{Function: 1, Quantity: 8}},
		{"fc1 qty 0", "01 0000 0000", ExIllegalValue, Request{}},
		{"fc1 qty 2000", "01 0000 07d0", 0, Request{Function: 1, Quantity: 2000}},
		{"fc1 qty 2001", "01 0000 07d1", ExIllegalValue, Request{}},
		{"fc2 past 0xffff", "02 fff0 0011", ExIllegalAddress, Request{}},
		{"fc2 ends at 0xffff", "02 fff0 0010", 0, Request{Function: 2, Address: 0xfff0, Quantity: 16}},
		{"fc3 ok", "03 006b 0003", 0, Request{Function: 3, Address: 0x6b, Quantity: 3}},
		{"fc3 qty 125", "03 0000 007d", 0, Request{Function: 3, Quantity: 125}},
		{"fc3 qty 126", "03 0000 007e", ExIllegalValue, Request{}},
		{"fc3 short", "03 0000 00", ExIllegalValue, Request{}},
		{"fc3 long", "03 0000 0001 00", ExIllegalValue, Request{}},
		{"fc4 qty 0", "04 0000 0000", ExIllegalValue, Request{}},
		{"fc5 on", "05 00ac ff00", 0, Request{Function: 5, Address: 0xac, Value: 0xff00, Quantity: 1}},
		{"fc5 off", "05 00ac 0000", 0, Request{Function: 5, Address: 0xac, Quantity: 1}},
		{"fc5 bad value", "05 00ac 0001", ExIllegalValue, Request{}},
		{"fc6 ok", "06 0001 0003", 0, Request{Function: 6, Address: 1, Value: 3, Quantity: 1}},
		{"fc8 echo", "08 0000 a537", 0, Request{Function: 8}},
		{"fc8 other sub", "08 0001 0000", ExIllegalFunction, Request{}},
		{"fc8 short", "08 00", ExIllegalValue, Request{}},
		{"fc15 ok", "0f 0013 000a 02 cd01", 0, Request{Function: 15, Address: 0x13, Quantity: 10}},
		{"fc15 byte count", "0f 0013 000a 01 cd", ExIllegalValue, Request{}},
		{"fc15 data short", "0f 0013 000a 02 cd", ExIllegalValue, Request{}},
		{"fc15 qty 1969", "0f 0000 07b1 f7" + strings.Repeat("00", 247), ExIllegalValue, Request{}},
		{"fc15 qty 1968", "0f 0000 07b0 f6" + strings.Repeat("00", 246), 0, Request{Function: 15, Quantity: 1968}},
		{"fc16 ok", "10 0001 0002 04 000a 0102", 0, Request{Function: 16, Address: 1, Quantity: 2}},
		{"fc16 qty 124", "10 0000 007c f8" + strings.Repeat("00", 248), ExIllegalValue, Request{}},
		{"fc16 qty 123", "10 0000 007b f6" + strings.Repeat("00", 246), 0, Request{Function: 16, Quantity: 123}},
		{"fc16 byte count odd", "10 0001 0002 03 000a 01", ExIllegalValue, Request{}},
		{"fc17 ok", "11", 0, Request{Function: 17}},
		{"fc17 extra", "11 00", ExIllegalValue, Request{}},
		{"fc22 ok", "16 0004 00f2 0025", 0, Request{Function: 22, Address: 4, Value: 0xf2, OrMask: 0x25, Quantity: 1}},
		{"fc22 short", "16 0004 00f2", ExIllegalValue, Request{}},
		{"fc23 ok", "17 0003 0006 000e 0003 06 00ff 00ff 00ff", 0,
			Request{Function: 23, Address: 3, Quantity: 6, WriteAddress: 14, WriteQuantity: 3}},
		{"fc23 write qty 122", "17 0003 0006 000e 007a f4" + strings.Repeat("00", 244), ExIllegalValue, Request{}},
		{"fc23 read qty 0", "17 0003 0000 000e 0001 02 0000", ExIllegalValue, Request{}},
		{"fc43 basic", "2b 0e 01 00", 0, Request{Function: 43, DevIDCode: 1}},
		{"fc43 individual", "2b 0e 04 05", 0, Request{Function: 43, DevIDCode: 4, ObjectID: 5}},
		{"fc43 code 5", "2b 0e 05 00", ExIllegalValue, Request{}},
		{"fc43 code 0", "2b 0e 00 00", ExIllegalValue, Request{}},
		{"fc43 short", "2b 0e 01", ExIllegalValue, Request{}},
		{"fc43 canopen", "2b 0d 00 00", ExIllegalFunction, Request{}},
		{"fc7", "07", ExIllegalFunction, Request{}},
		{"fc20", "14 07 06 0004 0001 0002", ExIllegalFunction, Request{}},
		{"fc0", "00", ExIllegalFunction, Request{}},
		{"fc 0x83", "83 01", ExIllegalFunction, Request{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, ex := ParseRequest(unhex(t, tc.pdu))
			if ex != tc.ex {
				t.Fatalf("exception = %#02x, want %#02x", ex, tc.ex)
			}
			if ex != 0 {
				return
			}
			r.Data = nil
			if !reflect.DeepEqual(r, tc.want) {
				t.Fatalf("ParseRequest = %+v, want %+v", r, tc.want)
			}
		})
	}
}

func TestPackedBits(t *testing.T) {
	// The specification's FC 1 example: coils 20-38 = CD 6B 05.
	bits := []bool{true, false, true, true, false, false, true, true, true, true, false, true, false, true, true, false, true, false, true}
	got := AppendPackedBits(nil, len(bits), func(i int) bool { return bits[i] })
	if want := unhex(t, "03 cd 6b 05"); !bytes.Equal(got, want) {
		t.Fatalf("AppendPackedBits = % x, want % x", got, want)
	}
	for i, b := range bits {
		if BitAt(got[1:], i) != b {
			t.Fatalf("BitAt(%d) != %v", i, b)
		}
	}
}

func TestWireAddress(t *testing.T) {
	tests := []struct {
		typ  blockType
		ref  int
		want int
		ok   bool
	}{
		{coils, 1, 0, true},
		{coils, 0, 0, true},
		{coils, 65536, 65535, true},
		{discreteInputs, 10001, 0, true},
		{discreteInputs, 100001, 0, true},
		{discreteInputs, 17, 16, true},
		{discreteInputs, 10000, 0, false},
		{inputRegisters, 30001, 0, true},
		{inputRegisters, 30010, 9, true},
		{inputRegisters, 40001, 0, false},
		{holdingRegisters, 40001, 0, true},
		{holdingRegisters, 400101, 100, true},
		{holdingRegisters, 465536, 65535, true},
		{holdingRegisters, 1, 0, true},
		{holdingRegisters, 30001, 0, false},
		{holdingRegisters, -1, 0, false},
	}
	for _, tc := range tests {
		got, err := wireAddress(tc.typ, tc.ref)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("wireAddress(%s, %d) = %d, %v; want %d ok=%v", blockTypeNames[tc.typ], tc.ref, got, err, tc.want, tc.ok)
		}
	}
}

func TestDeviceID(t *testing.T) {
	objs := []DeviceObject{
		{0, []byte("Vendor")}, {1, []byte("PC")}, {2, []byte("V1")},
		{4, []byte("Product")}, {6, []byte("App")},
		{0x80, []byte("X")},
	}
	big := []DeviceObject{
		{0, []byte("V")}, {1, []byte("P")}, {2, []byte("R")},
		{0x80, bytes.Repeat([]byte("a"), 200)}, {0x81, bytes.Repeat([]byte("b"), 200)}, {0x82, []byte("c")},
	}
	tests := []struct {
		name string
		objs []DeviceObject
		code uint8
		id   uint8
		want string
		ex   uint8
	}{
		{"basic", objs, 1, 0, "2b0e 01 83 00 00 03 00 06 " + hexs("Vendor") + "01 02 " + hexs("PC") + "02 02 " + hexs("V1"), 0},
		{"basic from 2", objs, 1, 2, "2b0e 01 83 00 00 01 02 02 " + hexs("V1"), 0},
		{"basic unknown id restarts", objs, 1, 0x55, "2b0e 01 83 00 00 03 00 06 " + hexs("Vendor") + "01 02 " + hexs("PC") + "02 02 " + hexs("V1"), 0},
		{"basic regular id restarts", objs, 1, 4, "2b0e 01 83 00 00 03 00 06 " + hexs("Vendor") + "01 02 " + hexs("PC") + "02 02 " + hexs("V1"), 0},
		{"regular from 4", objs, 2, 4, "2b0e 02 83 00 00 02 04 07 " + hexs("Product") + "06 03 " + hexs("App"), 0},
		{"extended from 0x80", objs, 3, 0x80, "2b0e 03 83 00 00 01 80 01 " + hexs("X"), 0},
		{"individual", objs, 4, 6, "2b0e 04 83 00 00 01 06 03 " + hexs("App"), 0},
		{"individual missing", objs, 4, 5, "", ExIllegalAddress},
		{"bad code", objs, 9, 0, "", ExIllegalValue},
		{"basic only conformity", objs[:3], 1, 0, "2b0e 01 81 00 00 03 00 06 " + hexs("Vendor") + "01 02 " + hexs("PC") + "02 02 " + hexs("V1"), 0},
		{"more follows", big, 3, 0, "2b0e 03 83 ff 81 04 0001 " + hexs("V") + "0101 " + hexs("P") + "0201 " + hexs("R") + "80c8" + strings.Repeat("61", 200), 0},
		{"continuation", big, 3, 0x81, "2b0e 03 83 00 00 02 81c8" + strings.Repeat("62", 200) + "8201" + hexs("c"), 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ex := AppendDeviceID(nil, tc.code, tc.id, tc.objs)
			if ex != tc.ex {
				t.Fatalf("exception = %#x, want %#x", ex, tc.ex)
			}
			if ex != 0 {
				return
			}
			if want := unhex(t, tc.want); !bytes.Equal(got, want) {
				t.Fatalf("reply\n got % x\nwant % x", got, want)
			}
			if len(got) > MaxPDU {
				t.Fatalf("reply PDU %d bytes", len(got))
			}
		})
	}
}

func hexs(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		b.WriteString(strings.ToLower(string("0123456789abcdef"[c>>4]) + string("0123456789abcdef"[c&15])))
	}
	return b.String() + " "
}

func TestFuncName(t *testing.T) {
	for fc, want := range map[uint8]string{3: "fc3", 43: "fc43", 7: "other", 0x83: "other", 255: "other"} {
		if got := FuncName(fc); got != want {
			t.Errorf("FuncName(%d) = %q, want %q", fc, got, want)
		}
	}
}
