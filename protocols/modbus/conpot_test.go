package modbus

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// conpotDefault is Conpot's default template as the repository regenerates it.
const conpotDefault = "../../testdata/conpot/default"

// conpotServer serves Conpot's default template with the given addressing option ("" for
// the default) on an address of 127.35.0.0/16 and returns a function that sends one ADU
// and returns the reply ADU.
func conpotServer(t *testing.T, addressing string, edit func(string) string) (func(req []byte) []byte, *protocols.Host) {
	t.Helper()
	p := protocoltest.Profile(t, conpotDefault)
	if edit != nil {
		dir := t.TempDir() + "/default"
		if err := copyFS(p, dir, edit); err != nil {
			t.Fatal(err)
		}
		p = protocoltest.Profile(t, dir)
	}
	svc, err := protocol{}.Configure(p.Sections[Name], &options{Addressing: addressing})
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.AddrFrom4([4]byte{127, 35, byte(1 + rand.IntN(250)), byte(1 + rand.IntN(250))})
	h := protocoltest.Host(p, addr, 7)
	srv := protocoltest.ServeTCP(t, Name, svc.(protocols.StreamService), h, netip.AddrPortFrom(addr, 0).String())
	return func(req []byte) []byte {
		t.Helper()
		c, err := net.DialTimeout("tcp", srv.Addr.String(), 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(req); err != nil {
			t.Fatal(err)
		}
		head := make([]byte, HeaderLen)
		if _, err := io.ReadFull(c, head); err != nil {
			t.Fatalf("request % x: reading the reply: %v", req, err)
		}
		n := int(head[4])<<8 | int(head[5])
		body := make([]byte, n-1)
		if _, err := io.ReadFull(c, body); err != nil {
			t.Fatal(err)
		}
		return append(head, body...)
	}, h
}

// TestConpotSuiteLiteral replays the requests of Conpot's test_modbus_server.py against
// Conpot's default template with addressing = "literal" and expects Conpot's answers.
func TestConpotSuiteLiteral(t *testing.T) {
	x, h := conpotServer(t, "literal", nil)

	// read_coils: block A all ones, FC1 unit 1 start 1 quantity 128.
	h.Databus.Set("memoryModbusSlave1BlockA", seq(128, func(int) any { return int64(1) }))
	want := append(unhex(t, "0001 0000 0013 01 01 10"), bytes.Repeat([]byte{0xff}, 16)...)
	if got := x(unhex(t, "000100000006010100010080")); !bytes.Equal(got, want) {
		t.Fatalf("read_coils: % x, want % x", got, want)
	}
	// FC15 of 128 coils at address 1, then FC1 at 1 quantity 128 reads them back.
	h.Databus.Set("memoryModbusSlave1BlockA", seq(128, func(int) any { return int64(0) }))
	bits := seq(128, func(i int) any { return i%3 == 0 })
	packed := packBits(bits)
	req := append(unhex(t, "0002 0000 0017 01 0f 0001 0080 10"), packed...)
	if got, want := x(req), unhex(t, "0002 0000 0006 01 0f 0001 0080"); !bytes.Equal(got, want) {
		t.Fatalf("FC15 128 coils: % x, want % x", got, want)
	}
	if got, want := x(unhex(t, "000300000006010100010080")), append(unhex(t, "0003 0000 0013 01 01 10"), packed...); !bytes.Equal(got, want) {
		t.Fatalf("FC1 after FC15: % x, want % x", got, want)
	}
	// write_read_coils: FC15 start 1 bits 1,0,0,1,0,0,1,1; FC1 quantity 8.
	if got, want := x(unhex(t, "0004 0000 0008 01 0f 0001 0008 01 c9")), unhex(t, "0004 0000 0006 01 0f 0001 0008"); !bytes.Equal(got, want) {
		t.Fatalf("write_read_coils FC15: % x, want % x", got, want)
	}
	if got, want := x(unhex(t, "0005 0000 0006 01 01 0001 0008")), unhex(t, "0005 0000 0004 01 01 01 c9"); !bytes.Equal(got, want) {
		t.Fatalf("write_read_coils FC1: % x, want % x", got, want)
	}
	// read_nonexistent_slave: unit 5 → exception 4 (SLAVE DEVICE FAILURE).
	if got, want := x(unhex(t, "0006 0000 0006 05 01 0001 0080")), unhex(t, "0006 0000 0003 05 81 04"); !bytes.Equal(got, want) {
		t.Fatalf("read_nonexistent_slave: % x, want % x", got, want)
	}
	// function_43_device_info: the reply names Siemens and SIMATIC (Conpot streams every
	// object whatever the start object; literal mode does too).
	got := x(unhex(t, "00 01 00 00 00 05 01 2b 0e 01 02"))
	for _, s := range []string{"Siemens", "SIMATIC", "S7-200"} {
		if !bytes.Contains(got, []byte(s)) {
			t.Errorf("function_43_device_info: % x lacks %q", got, s)
		}
	}
	// report_slave_id: Conpot answers the malformed 11 11 01 01 ff (byte count 0x11, three
	// bytes following, a Conpot fingerprint); icsnare answers the well-formed report of
	// unit 1, run indicator ON, in both modes.
	if got, want := x(unhex(t, "00 00 00 00 00 02 01 11")), unhex(t, "0000 0000 0005 01 11 02 01 ff"); !bytes.Equal(got, want) {
		t.Fatalf("report_slave_id: % x, want % x", got, want)
	}
	// Coil address 0 is outside Conpot's blocks (they start at 1).
	if got, want := x(unhex(t, "0007 0000 0006 01 01 0000 0080")), unhex(t, "0007 0000 0003 01 81 02"); !bytes.Equal(got, want) {
		t.Fatalf("coil 0: % x, want % x", got, want)
	}
}

// TestAddressingModes: the same template answers differently per addressing: literal
// compares the wire address with starting_address and sizes a block by its list (slave 2's
// holding block D has <size>8 and 32 zeros), modicon maps 1/40001 to wire address 0 and
// keeps <size>. A profile's <addressing> wins over the option.
func TestAddressingModes(t *testing.T) {
	tests := []struct {
		name, option, element string
		ok, fail              []string // request ADUs (hex) answered normally / with exception 02
	}{
		{"literal", "literal", "",
			[]string{"0001 0000 0006 01 01 0001 0080", "0001 0000 0006 02 03 9c41 0020", "0001 0000 0006 01 02 2711 0020"},
			[]string{"0001 0000 0006 01 01 0000 0080", "0001 0000 0006 02 03 0000 0008"}},
		{"modicon (default)", "", "",
			[]string{"0001 0000 0006 01 01 0000 0080", "0001 0000 0006 02 03 0000 0008", "0001 0000 0006 01 02 0000 0020"},
			[]string{"0001 0000 0006 01 01 0001 0080", "0001 0000 0006 02 03 9c41 0008", "0001 0000 0006 02 03 0000 0020"}},
		{"element wins", "modicon", "literal",
			[]string{"0001 0000 0006 02 03 9c41 0020"}, []string{"0001 0000 0006 02 03 0000 0008"}},
		{"element wins the other way", "literal", "modicon",
			[]string{"0001 0000 0006 02 03 0000 0008"}, []string{"0001 0000 0006 02 03 9c41 0008"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var edit func(string) string
			if tt.element != "" {
				edit = func(s string) string {
					return strings.Replace(s, "<mode>", "<addressing>"+tt.element+"</addressing>\n    <mode>", 1)
				}
			}
			x, _ := conpotServer(t, tt.option, edit)
			for _, r := range tt.ok {
				if got := x(unhex(t, r)); got[7]&0x80 != 0 {
					t.Errorf("%s: exception % x", r, got)
				}
			}
			for _, r := range tt.fail {
				if got := x(unhex(t, r)); got[7]&0x80 == 0 || got[8] != ExIllegalAddress {
					t.Errorf("%s: % x, want exception 02", r, got)
				}
			}
		})
	}
}

// TestAddressingErrors: bad addressing values name the option or the element.
func TestAddressingErrors(t *testing.T) {
	p := protocoltest.Profile(t, conpotDefault)
	if _, err := (protocol{}).Configure(p.Sections[Name], &options{Addressing: "plc"}); err == nil || !strings.Contains(err.Error(), `[protocols.modbus] addressing "plc"`) {
		t.Errorf("option: %v", err)
	}
	if err := (&options{Addressing: "plc"}).Validate(); err == nil {
		t.Error("Validate accepted addressing plc")
	}
	dir := t.TempDir() + "/default"
	if err := copyFS(p, dir, func(s string) string {
		return strings.Replace(s, "<mode>", "<addressing>wire</addressing><mode>", 1)
	}); err != nil {
		t.Fatal(err)
	}
	p2, err := profiles.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = protocol{}.Configure(p2.Sections[Name], nil)
	if want := fmt.Sprintf("%s/modbus/modbus.xml:", dir); err == nil || !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), `<addressing>: addressing "wire" is neither modicon nor literal`) {
		t.Errorf("element: %v", err)
	}
	// literal: a block whose databus value is not a list cannot be sized.
	dir = t.TempDir() + "/default"
	if err := copyFS(p, dir, func(s string) string {
		return strings.Replace(s, "<content>memoryModbusSlave2BlockD</content>", "<content>sysName</content>", 1)
	}); err != nil {
		t.Fatal(err)
	}
	p3, err := profiles.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (protocol{}).Configure(p3.Sections[Name], &options{Addressing: "literal"}); err == nil || !strings.Contains(err.Error(), "not a non-empty list") {
		t.Errorf("literal, non-list block: %v", err)
	}
}

// packBits packs booleans LSB first, as FC 1 and FC 15 carry them.
func packBits(bits []any) []byte {
	out := make([]byte, (len(bits)+7)/8)
	for i, b := range bits {
		if b.(bool) {
			out[i/8] |= 1 << (i % 8)
		}
	}
	return out
}
