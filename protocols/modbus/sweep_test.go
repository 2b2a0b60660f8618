package modbus

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// TestUnitSweep sends a read and a write to every unit id 0-255, each followed by a
// sentinel request to a unit that always answers, over one connection, and checks which
// units answer, which get exception 0x0B and which get nothing, in both modes.
func TestUnitSweep(t *testing.T) {
	type outcome int
	const (
		reply outcome = iota
		gateway
		none
	)
	tests := []struct {
		name     string
		edit     func(string) string
		sentinel uint8
		expect   func(u int) outcome
	}{
		{"serial exception", nil, 1, func(u int) outcome {
			switch {
			case u == 0:
				return none
			case u == 1:
				return reply
			}
			return gateway
		}},
		{"serial silent", func(s string) string {
			return strings.Replace(s, "<unknown_unit>exception", "<unknown_unit>silent", 1)
		}, 1, func(u int) outcome {
			if u == 1 {
				return reply
			}
			return none
		}},
		{"tcp exception", func(s string) string {
			return strings.NewReplacer("<mode>serial", "<mode>tcp", `<slave id="1">`, `<slave id="255">`).Replace(s)
		}, 255, func(u int) outcome {
			if u == 0 || u == 255 {
				return reply
			}
			return gateway
		}},
		{"tcp silent", func(s string) string {
			return strings.NewReplacer("<mode>serial", "<mode>tcp", `<slave id="1">`, `<slave id="255">`,
				"<unknown_unit>exception", "<unknown_unit>silent").Replace(s)
		}, 255, func(u int) outcome {
			if u == 0 || u == 255 {
				return reply
			}
			return none
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			svc, h := testService(t, tc.edit)
			srv := protocoltest.ServeTCP(t, Name, svc, h, "127.0.0.1:0")
			var req, want []byte
			for u := 0; u < 256; u++ {
				read := adu(uint16(u), uint8(u), 3, 0, 0x3f, 0, 1)
				write := adu(uint16(0x1000+u), uint8(u), 6, 0, byte(u%50), 0x10, byte(u))
				sent := adu(uint16(0x2000+u), tc.sentinel, 3, 0, 0x3f, 0, 1)
				req = append(append(append(req, read...), write...), sent...)
				switch tc.expect(u) {
				case reply:
					want = append(want, adu(uint16(u), uint8(u), 3, 2, 0, 0x3f)...)
					want = append(want, write...)
				case gateway:
					want = append(want, adu(uint16(u), uint8(u), 0x83, 0x0b)...)
					want = append(want, adu(uint16(0x1000+u), uint8(u), 0x86, 0x0b)...)
				}
				want = append(want, adu(uint16(0x2000+u), tc.sentinel, 3, 2, 0, 0x3f)...)
			}
			c := dial(t, srv.Addr)
			c.send(req)
			var got []byte
			for sentinels := 0; sentinels < 256; {
				r := c.recv()
				if r[0] == 0x20 {
					sentinels++
				}
				got = append(got, r...)
			}
			if !bytes.Equal(got, want) {
				g, w := splitADUs(t, got), splitADUs(t, want)
				for i := range min(len(g), len(w)) {
					if !bytes.Equal(g[i], w[i]) {
						t.Fatalf("reply %d:\n got % x\nwant % x", i, g[i], w[i])
					}
				}
				t.Fatalf("%d replies, want %d", len(g), len(w))
			}
			// Writes ran exactly for the units that answered, and for the serial broadcast.
			hr, _ := h.Databus.Get("memoryModbusHoldingRegisters")
			l := hr.([]any)
			for a := 0; a < 50; a++ {
				wantV := int64(a)
				for u := a; u < 256; u += 50 {
					if tc.expect(u) == reply || (u == 0 && strings.HasPrefix(tc.name, "serial")) {
						wantV = int64(0x1000 + u)
					}
				}
				if l[a] != wantV {
					t.Errorf("holding register %d = %v, want %v", a, l[a], fmt.Sprint(wantV))
				}
			}
		})
	}
}
