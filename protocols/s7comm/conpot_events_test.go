package s7comm

import (
	"encoding/hex"
	"testing"

	"github.com/icsnare/icsnare/protocols"
)

// TestConpotS7Shape: each exchange's request and reply frames as b'<hex>', e.g. nmap's COTP
// connection request and its confirm (conpot.md §1.1).
func TestConpotS7Shape(t *testing.T) {
	cr, _ := hex.DecodeString("0300001611e00000001400c1020100c2020102c0010a")
	cc, _ := hex.DecodeString("030000130ed00014000000c1020100c2020102")
	got := protocols.ConpotDocuments(protocol{}, &protocols.Event{Type: "s7comm.connect", Transport: protocols.TCP, Request: cr, Response: cc})
	if len(got) != 1 || got[0] != (protocols.ConpotEvent{DataType: "s7comm", Request: "b'" + hex.EncodeToString(cr) + "'", Response: "b'" + hex.EncodeToString(cc) + "'"}) {
		t.Errorf("documents %+v", got)
	}
	got = protocols.ConpotDocuments(protocol{}, &protocols.Event{Type: "s7comm.error", Transport: protocols.TCP, Request: cr[:4]})
	if len(got) != 1 || got[0].Request != "b'03000016'" || got[0].Response != nil {
		t.Errorf("unanswered frame: %+v", got)
	}
	// The sensor's connect event is not s7comm's COTP connect.
	got = protocols.ConpotDocuments(protocol{}, &protocols.Event{Type: "s7comm.connect", Phase: protocols.PhaseStart, Transport: protocols.TCP})
	if len(got) != 1 || got[0].EventType != protocols.ConpotNewConnection {
		t.Errorf("session start: %+v", got)
	}
}
