package ipmi

import (
	"testing"

	"github.com/icsnare/icsnare/protocols"
)

// TestConpotIPMIShape: one b'<hex>' document per message (Conpot logs none, issue #443);
// authentication summaries stay out.
func TestConpotIPMIShape(t *testing.T) {
	got := protocols.ConpotDocuments(protocol{}, &protocols.Event{Type: "ipmi.request", Transport: protocols.UDP,
		Request: []byte{0x06, 0x00, 0xff, 0x07}, Response: []byte{0x06, 0x00}})
	if len(got) != 1 || got[0] != (protocols.ConpotEvent{DataType: "ipmi", Request: "b'0600ff07'", Response: "b'0600'"}) {
		t.Errorf("documents %+v", got)
	}
	if got := protocols.ConpotDocuments(protocol{}, &protocols.Event{Type: "ipmi.auth", Transport: protocols.UDP}); len(got) != 0 {
		t.Errorf("auth: %+v", got)
	}
}
