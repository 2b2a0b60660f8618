package snmp

import (
	"bytes"
	"testing"
)

// TestDateAndTime: DateAndTime objects fed a display-form string (Conpot's
// CurrentDatetime, the snmp template's backup dates) answer the 8 or 11 octets of
// SNMPv2-TC; anything else stays the string it is.
func TestDateAndTime(t *testing.T) {
	o := &object{tag: tagOctetString, hint: dateAndTimeHint}
	tests := []struct {
		in   string
		want []byte
	}{
		{"2026-11-29,11:41:56.0", []byte{0x07, 0xea, 11, 29, 11, 41, 56, 0}},
		{"0-1-1,0:0:0.0", []byte{0, 0, 1, 1, 0, 0, 0, 0}},
		{"1992-5-26,13:30:15.0,-4:0", []byte{0x07, 0xc8, 5, 26, 13, 30, 15, 0, '-', 4, 0}},
		{"2026-13-01,00:00:00.0", []byte("2026-13-01,00:00:00.0")},
		{"yesterday", []byte("yesterday")},
		{"2026-11-29,11:41:56.0,+99:0", []byte("2026-11-29,11:41:56.0,+99:0")},
	}
	for _, tt := range tests {
		got := encodeValue(nil, o, tt.in)
		if got[0] != tagOctetString || !bytes.Equal(got[2:], tt.want) {
			t.Errorf("%q: % x, want % x", tt.in, got, tt.want)
		}
	}
	plain := encodeValue(nil, &object{tag: tagOctetString}, "2026-11-29,11:41:56.0")
	if !bytes.Equal(plain[2:], []byte("2026-11-29,11:41:56.0")) {
		t.Errorf("a DisplayString changed: % x", plain)
	}
}
