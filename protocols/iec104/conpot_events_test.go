package iec104

import (
	"testing"

	"github.com/icsnare/icsnare/protocols"
)

// TestConpotIEC104Shape: only NEW_CONNECTION and CONNECTION_LOST, data_type IEC104, no frames.
func TestConpotIEC104Shape(t *testing.T) {
	start := protocols.ConpotDocuments(protocol{}, &protocols.Event{Phase: protocols.PhaseStart, Transport: protocols.TCP})
	end := protocols.ConpotDocuments(protocol{}, &protocols.Event{Phase: protocols.PhaseEnd, Transport: protocols.TCP})
	if len(start) != 1 || start[0] != (protocols.ConpotEvent{DataType: "IEC104", EventType: protocols.ConpotNewConnection}) ||
		len(end) != 1 || end[0].EventType != protocols.ConpotConnectionLost {
		t.Errorf("session documents %+v %+v", start, end)
	}
	frame := []byte{0x68, 0x04, 0x07, 0x00, 0x00, 0x00}
	for _, typ := range []string{evUFrame, evASDU, evCommand, evBadFrame, evClose} {
		if got := protocols.ConpotDocuments(protocol{}, &protocols.Event{Type: typ, Transport: protocols.TCP, Request: frame, Response: frame}); len(got) != 0 {
			t.Errorf("%s: %+v", typ, got)
		}
	}
}
