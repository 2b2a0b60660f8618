package guardianast

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestParseCommand(t *testing.T) {
	for _, x := range []struct {
		in       string
		err      error
		kind     string
		computer bool
		tank     int
		data     string
	}{
		{"I20100", nil, KindInventory, false, 0, ""},
		{"i20100", nil, KindInventory, true, 0, ""},
		{"I20103", nil, KindInventory, false, 3, ""},
		{"I20200", nil, KindDelivery, false, 0, ""},
		{"I20300", nil, KindLeak, false, 0, ""},
		{"I20400", nil, KindShift, false, 0, ""},
		{"I20500", nil, KindStatus, false, 0, ""},
		{"i20500", nil, KindStatus, true, 0, ""},
		{"I10100", nil, KindSystemStatus, false, 0, ""},
		{"I11100", nil, KindAlarmHistory, false, 0, ""},
		{"I20600", nil, KindTankAlarms, false, 0, ""},
		{"i90200", nil, KindRevision, true, 0, ""},
		{"S60201NONSUPER", nil, KindSetProduct, false, 1, "NONSUPER"},
		{"s60200ULTIMATE TEST", nil, KindSetProduct, true, 0, "ULTIMATE TEST"},
		{"S6020", ErrShort, KindUnknown, false, 0, ""},
		{"", ErrShort, KindUnknown, false, 0, ""},
		{"I21400", ErrFunction, KindUnknown, false, 0, ""},
		{"S50100", ErrFunction, KindUnknown, false, 0, ""},
		{"X20100", ErrType, KindUnknown, false, 0, ""},
		{"I201AA", ErrTank, KindUnknown, false, 0, ""},
		{"I20100X", ErrTrailing, KindInventory, false, 0, ""},
		{"S60201", ErrLabel, KindSetProduct, false, 1, ""},
		{"S60201" + strings.Repeat("A", 21), ErrLabel, KindSetProduct, false, 1, ""},
		{"S60201BAD\x7fNAME", ErrLabel, KindSetProduct, false, 1, ""},
	} {
		c, err := ParseCommand([]byte(x.in))
		if !errors.Is(err, x.err) || c.Kind != x.kind {
			t.Errorf("%q: kind %s err %v, want %s %v", x.in, c.Kind, err, x.kind, x.err)
			continue
		}
		if err == nil && (c.Computer != x.computer || c.Tank != x.tank || string(c.Data) != x.data) {
			t.Errorf("%q: %+v", x.in, c)
		}
		if want := x.in[:min(6, len(x.in))]; c.Code != printable([]byte(want)) {
			t.Errorf("%q: code %q", x.in, c.Code)
		}
	}
}

func TestSplitter(t *testing.T) {
	cmds := func(toks []Token) []string {
		var out []string
		for _, tk := range toks {
			s := string(tk.Cmd)
			if tk.TooLong {
				s += "(too long)"
			}
			out = append(out, s)
		}
		return out
	}
	for _, x := range []struct {
		in      []string // fed in these pieces
		want    []string
		pending bool
		garbage int
	}{
		{[]string{"\x01I20100\r\n"}, []string{"I20100"}, false, 0},
		{[]string{"\x01I201", "00"}, []string{"I20100"}, false, 0}, // complete without a line end
		{[]string{"\x01S6020\r\n"}, []string{"S6020"}, false, 0},
		{[]string{"\x01S60201NAME"}, nil, true, 0},
		{[]string{"\x01S60201NAME\x03"}, []string{"S60201NAME"}, false, 0},
		{[]string{"GET / HTTP/1.0\r\n\r\n"}, nil, false, 14},
		{[]string{"junk\x01I20500\n\x01i20100"}, []string{"I20500", "i20100"}, false, 4},
		{[]string{"\x01I2\x01I20200"}, []string{"I20200"}, false, 0}, // a new SOH starts over
		{[]string{"\x01" + strings.Repeat("S", MaxCommand+10) + "\n\x01I20100"}, []string{"SSSSSS(too long)", "I20100"}, false, 0},
		{[]string{"\x01I99900", "\n"}, []string{"I99900"}, false, 0},
	} {
		var s Splitter
		var toks []Token
		for _, p := range x.in {
			toks = s.Feed([]byte(p), toks)
		}
		if got := cmds(toks); strings.Join(got, "|") != strings.Join(x.want, "|") || s.Pending() != x.pending || s.Garbage != x.garbage {
			t.Errorf("%q: %q pending %v garbage %d", x.in, got, s.Pending(), s.Garbage)
		}
		if x.pending {
			if got := cmds(s.Flush(nil)); len(got) != 1 || s.Pending() {
				t.Errorf("%q: flush gave %q", x.in, got)
			}
		}
	}
}

func TestChecksum(t *testing.T) {
	// The checksum makes the 16-bit sum of the message, checksum included, zero.
	msg := FrameComputer("i20100", []byte("2611291127"))
	code, data, err := VerifyComputer(msg)
	if err != nil || code != "i20100" || string(data) != "2611291127" {
		t.Fatalf("%q: %s %q %v", msg, code, data, err)
	}
	var sum uint16
	for _, c := range msg[:len(msg)-5] {
		sum += uint16(c)
	}
	if got := string(msg[len(msg)-5 : len(msg)-1]); got != fmt.Sprintf("%04X", -sum) {
		t.Fatalf("checksum %s, want %04X", got, -sum)
	}
	bad := append([]byte(nil), msg...)
	bad[8]++
	if _, _, err := VerifyComputer(bad); err == nil {
		t.Fatal("a changed byte passed the checksum")
	}
}

// TestErrorReplyChecksum: the gauge's error reply "9999FF1B" is the computer format's
// framing of the data "9999" without the && tag: FF1B is the checksum of SOH "9999".
func TestErrorReplyChecksum(t *testing.T) {
	if got := fmt.Sprintf("%04X", Checksum([]byte("\x019999"))); got != "FF1B" {
		t.Fatalf("checksum of SOH 9999: %s", got)
	}
	if got := string(Error(FramingTLS, false)); got != "\x01"+ErrorReply+"\x03" {
		t.Fatalf("framed error %q", got)
	}
}

func TestFloat(t *testing.T) {
	// Examples of the serial interface manual's ASCII floating point format.
	for _, x := range []struct {
		f float64
		s string
	}{{1, "3F800000"}, {-2, "C0000000"}, {0, "00000000"}, {100, "42C80000"}, {0.5, "3F000000"}} {
		if got := string(AppendFloat(nil, x.f)); got != x.s {
			t.Errorf("%v: %s, want %s", x.f, got, x.s)
		}
		if f, err := ParseFloat(x.s); err != nil || f != x.f {
			t.Errorf("%s: %v %v", x.s, f, err)
		}
	}
}

func TestPyBytes(t *testing.T) {
	for in, want := range map[string]string{
		"\x01I20100\r\n": `b'\x01I20100\r\n'`,
		"it's":           `b"it's"`,
		`a'b"c\`:         `b'a\'b"c\\'`,
		"\xff\t":         `b'\xff\t'`,
	} {
		if got := PyBytes([]byte(in)); got != want {
			t.Errorf("%q: %s, want %s", in, got, want)
		}
	}
}
