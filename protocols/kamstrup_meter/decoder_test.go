package kamstrupmeter

import (
	"strings"
	"testing"

	"github.com/icsnare/icsnare/protocols"
)

func TestDecoderConpotVectors(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{"80 3f 10 01 04 1e 7a bb 0d", "Request for 1 register(s): 1054 (Voltage p1) [0x3f]"},
		{"80 3f 10 02 00 01 55 a1 0d", "Request discarded due to invalid CRC."},
		{"80 3f 10 01 00 02 65 cf 0d", "Request discarded due to invalid CRC."},
		{req1033, "Request for 1 register(s): Unknown (1033) [0x3f]"},
	} {
		if got := NewDecoder().DecodeIn(unhex(t, tc.in)); got != tc.want {
			t.Errorf("DecodeIn(%s) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestDecoderRegistered(t *testing.T) {
	f, ok := protocols.LookupDecoder(DecoderClass)
	if !ok {
		t.Fatal("Decoder382 not registered")
	}
	if got := f().DecodeOut(unhex(t, rsp1033)); got != "Register reponse: 1033:0,  [0x3f]" {
		t.Fatalf("DecodeOut = %q", got)
	}
}

func TestDecoderRequests(t *testing.T) {
	frame := func(cmd byte, data ...byte) []byte {
		return AppendFrame(nil, RequestMagic, Message{Addr: 0x3f, Cmd: cmd, Data: data})
	}
	for _, tc := range []struct {
		in   []byte
		want string
	}{
		{frame(CmdGetRegister, AppendGetRegister(nil, 1, 1054, 9)...), "Request for 3 register(s): 1 (Energy in), 1054 (Voltage p1), Unknown (9) [0x3f]"},
		{frame(CmdGetRegister, 5, 0, 1), "Invalid message, register count was too high"},
		{frame(CmdGetRegister), "Invalid message, register count was too high"},
		{frame(CmdGetType), "Request for GetType [0x3f]"},
		{frame(CmdLogin, 0x30, 0x39), "Login command with pin_code: 12345 [0x3f]"},
		{frame(0x77), "Unknown request command: 119"},
	} {
		if got := NewDecoder().DecodeIn(tc.in); got != tc.want {
			t.Errorf("DecodeIn(% x) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestDecoderChunks: frames split anywhere across chunks decode once, and every frame of a
// chunk is reported (Conpot's decoder reported only the first).
func TestDecoderChunks(t *testing.T) {
	stream := append(append(unhex(t, "00 ff"), unhex(t, "80 3f 10 01 04 1e 7a bb 0d")...), unhex(t, req1033)...)
	for cut := range len(stream) {
		d := NewDecoder()
		got := d.DecodeIn(stream[:cut])
		if rest := d.DecodeIn(stream[cut:]); rest != "" {
			if got != "" {
				got += "\n"
			}
			got += rest
		}
		want := "Request for 1 register(s): 1054 (Voltage p1) [0x3f]\nRequest for 1 register(s): Unknown (1033) [0x3f]"
		if got != want {
			t.Fatalf("cut %d: %q", cut, got)
		}
	}
	// Responses, in both directions on one decoder.
	d := NewDecoder()
	rsp := AppendFrame(nil, ResponseMagic, Message{Addr: 0x3f, Cmd: CmdGetRegister, Data: AppendRegister(nil, RegisterValue{ID: 1054, Units: 33, Value: []byte{0, 228}})})
	if got := d.DecodeOut(rsp[:5]) + d.DecodeOut(rsp[5:]); got != "Register reponse: 1054(Voltage p1):228,  [0x3f]" {
		t.Fatalf("response: %q", got)
	}
	bad := append([]byte(nil), rsp...)
	bad[len(bad)-2] ^= 1
	if got := d.DecodeOut(bad); got != "Response discarded due to invalid CRC." {
		t.Fatalf("bad response: %q", got)
	}
}

// TestDecoderBounded: endless input without frame ends keeps the decoder's memory and
// output bounded.
func TestDecoderBounded(t *testing.T) {
	d := NewDecoder()
	junk := append([]byte{RequestMagic}, make([]byte, 10*MaxFrame)...)
	out := d.DecodeIn(junk)
	if d.in.Pending() > MaxFrame || !strings.Contains(out, "discarded") {
		t.Fatalf("pending %d, out %q", d.in.Pending(), out)
	}
	many := make([]byte, 0, 9*5000)
	for range 5000 {
		many = append(many, unhex(t, req1033)...)
	}
	if out := d.DecodeIn(many); len(out) > maxDecoded+200 {
		t.Fatalf("decoded text %d bytes", len(out))
	}
}
