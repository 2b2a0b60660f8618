package hpfeeds

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/icsnare/icsnare/events"
	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/sensor"
)

// The messages as the protocol lays them out, written out byte by byte; the auth hash is
// Python's hashlib.sha1(bytes([1, 2, 3, 4]) + b"s3cr3t").
func TestWire(t *testing.T) {
	mustHex := func(s string) []byte {
		b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	nonce := []byte{1, 2, 3, 4}
	for _, tc := range []struct {
		name string
		got  func() ([]byte, error)
		want []byte
	}{
		{"info", func() ([]byte, error) { return AppendInfo(nil, "hp", nonce) }, mustHex("0000000c 01 02 6870 01020304")},
		{"auth", func() ([]byte, error) { return AppendAuth(nil, "id", nonce, "s3cr3t") }, mustHex("0000001c 02 02 6964 bc723f7cdecbeb4c0b33ee9e3c32b1346c4257dd")},
		{"publish", func() ([]byte, error) { return AppendPublish(nil, "id", "ch", []byte("{}")) }, mustHex("0000000d 03 02 6964 02 6368 7b7d")},
		{"error", func() ([]byte, error) { return AppendMessage(nil, OpError, []byte("authfail")) }, mustHex("0000000d 00 617574686661696c")},
	} {
		got, err := tc.got()
		if err != nil || !bytes.Equal(got, tc.want) {
			t.Errorf("%s: %x (%v), want %x", tc.name, got, err, tc.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"length below the header", []byte{0, 0, 0, 4, 3}, ErrMalformed},
		{"over the bound", []byte{0, 0x10, 0, 1, 3}, ErrTooLong},
		{"huge", []byte{0xff, 0xff, 0xff, 0xff, 3}, ErrTooLong},
	} {
		if _, _, _, err := ParseMessage(tc.in, MaxMessage); !errors.Is(err, tc.want) {
			t.Errorf("%s: ParseMessage: %v, want %v", tc.name, err, tc.want)
		}
		if _, _, _, err := ReadMessage(bytes.NewReader(tc.in), nil, MaxMessage); !errors.Is(err, tc.want) {
			t.Errorf("%s: ReadMessage: %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, _, n, err := ParseMessage([]byte{0, 0, 0, 9, 3, 1}, MaxMessage); n != 0 || err != nil {
		t.Errorf("a partial message: %d, %v; want 0, nil (more to read)", n, err)
	}
	if _, _, _, err := ReadMessage(bytes.NewReader([]byte{0, 0, 0, 9, 3, 1}), nil, MaxMessage); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("a truncated stream: %v", err)
	}
	for _, p := range [][]byte{{}, {5, 'a'}, {1, 'a', 9}} {
		if _, _, _, err := ParsePublish(p); err == nil {
			t.Errorf("ParsePublish(%x) took it", p)
		}
	}
	if _, _, err := ParseAuth([]byte{1, 'a', 1, 2}); err == nil {
		t.Error("ParseAuth took a short hash")
	}
	if _, err := AppendPublish(nil, strings.Repeat("i", 256), "c", nil); !errors.Is(err, ErrTooLong) {
		t.Errorf("a 256-byte ident: %v", err)
	}
	if _, err := AppendPublish(nil, "i", "c", make([]byte, MaxMessage)); !errors.Is(err, ErrTooLong) {
		t.Errorf("a 1 MiB payload: %v", err)
	}
}

func TestChannel(t *testing.T) {
	e := &protocols.Event{Type: "modbus.request", Protocol: "modbus"}
	for tmpl, want := range map[string]string{
		"icsnare.events":                    "icsnare.events",
		"icsnare.{type}":                    "icsnare.modbus.request",
		"ics.{protocol}.x":                  "ics.modbus.x",
		strings.Repeat("c", 250) + "{type}": strings.Repeat("c", 250) + "modbu",
	} {
		if got := Channel(tmpl, e); got != want {
			t.Errorf("Channel(%q) = %q, want %q", tmpl, got, want)
		}
	}
}

// TestConpotEncoding: strings as Python's json.dumps writes them (checked against
// json.dumps({"type": "ü\"\\\x00𝄞"})), and the session's id the sensor's Conpot JSON uses.
func TestConpotEncoding(t *testing.T) {
	if got, want := string(events.AppendPyString(nil, "ü\"\\\x00\U0001d11e")), `"\u00fc\"\\\u0000\ud834\udd1e"`; got != want {
		t.Errorf("appendPyString = %s, want %s", got, want)
	}
	if got, want := string(events.AppendPyValue(nil, map[string]any{"oid": "1.3", "val": []int{1, 2}})), `{"oid": "1.3", "val": [1, 2]}`; got != want {
		t.Errorf("appendPyValue = %s, want %s", got, want)
	}
	for _, id := range []string{"", "s1", "0123456789abcdef"} {
		if got, want := string(events.AppendSessionUUID(nil, id)), sensor.SessionUUID(id); got != want {
			t.Errorf("session %q: UUID %s, the sensor's %s", id, got, want)
		}
	}
}
