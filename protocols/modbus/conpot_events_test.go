package modbus

import (
	"bytes"
	"encoding/hex"
	"testing"

	"github.com/icsnare/icsnare/protocols"
)

// TestConpotModbusShape: Conpot's own expectation (conpot.md §1.2): FC1, unit 1, start 1,
// quantity 128, all coils on, logs request 000100000006010100010080 and the response PDU
// 0110 + 16×ff, without the MBAP header.
func TestConpotModbusShape(t *testing.T) {
	req, _ := hex.DecodeString("000100000006010100010080")
	pdu := append([]byte{0x01, 0x10}, bytes.Repeat([]byte{0xff}, 16)...)
	adu := append([]byte{0, 1, 0, 0, 0, byte(len(pdu) + 1), 1}, pdu...)
	for _, c := range []struct {
		name string
		e    protocols.Event
		want []protocols.ConpotEvent
	}{
		{"read coils", protocols.Event{Type: evRequest, Transport: protocols.TCP, Request: req, Response: adu},
			[]protocols.ConpotEvent{{DataType: "modbus", Request: "b'000100000006010100010080'",
				Response: "b'0110" + hex.EncodeToString(bytes.Repeat([]byte{0xff}, 16)) + "'"}}},
		{"no reply (broadcast)", protocols.Event{Type: evRequest, Transport: protocols.TCP, Request: req},
			[]protocols.ConpotEvent{{DataType: "modbus", Request: "b'000100000006010100010080'"}}},
		{"bad MBAP", protocols.Event{Type: evBadFrame, Transport: protocols.TCP, Request: []byte{0, 1, 0, 0, 0, 0}},
			[]protocols.ConpotEvent{{DataType: "modbus", EventType: protocols.ConpotConnectionTerminated}}},
		{"session start", protocols.Event{Phase: protocols.PhaseStart, Transport: protocols.TCP},
			[]protocols.ConpotEvent{{DataType: "modbus", EventType: protocols.ConpotNewConnection}}},
		{"session end", protocols.Event{Phase: protocols.PhaseEnd, Transport: protocols.TCP},
			[]protocols.ConpotEvent{{DataType: "modbus", EventType: protocols.ConpotConnectionLost}}},
	} {
		got := protocols.ConpotDocuments(protocol{}, &c.e)
		if len(got) != len(c.want) {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("%s: %+v, want %+v", c.name, got[i], c.want[i])
			}
		}
	}
}
