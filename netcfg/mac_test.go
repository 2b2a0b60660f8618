package netcfg

import (
	"strings"
	"testing"
)

func TestParseMAC(t *testing.T) {
	tests := []struct{ in, want, err string }{
		{in: "02:1c:06:00:00:01", want: "02:1c:06:00:00:01"},
		{in: "00-1B-1B-12-34-56", want: "00:1b:1b:12:34:56"}, // a vendor OUI (universally administered)
		{in: "021c.0600.0001", want: "02:1c:06:00:00:01"},
		{in: "00:00:00:00:00:00", err: "zero address"},
		{in: "ff:ff:ff:ff:ff:ff", err: "multicast or broadcast"},
		{in: "01:00:5e:00:00:01", err: "multicast or broadcast"},
		{in: "33:33:00:00:00:01", err: "multicast or broadcast"},
		{in: "02:1c:06:00:00:01:00:01", err: "8 bytes, want 6"},
		{in: "00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01", err: "20 bytes, want 6"},
		{in: "02:1c:06:00:00", err: "invalid MAC"},
		{in: "zz:1c:06:00:00:01", err: "invalid MAC"},
		{in: "", err: "invalid MAC"},
	}
	for _, tc := range tests {
		hw, err := ParseMAC(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || hw.String() != tc.want {
			t.Errorf("%q: %v, %v; want %s", tc.in, hw, err, tc.want)
		}
	}
}
