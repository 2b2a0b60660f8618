package bacnet

import (
	"testing"

	"github.com/icsnare/icsnare/protocols"
)

// TestConpotBACnetShape: one NEW_CONNECTION per datagram, no content, as Conpot logs BACnet.
func TestConpotBACnetShape(t *testing.T) {
	got := protocols.ConpotDocuments(protocol{}, &protocols.Event{Type: "bacnet.request", Transport: protocols.UDP,
		Request: []byte{0x81, 0x0b, 0x00, 0x08, 0x01, 0x20, 0x10, 0x08}, Response: []byte{0x81}})
	if len(got) != 1 || got[0] != (protocols.ConpotEvent{DataType: "bacnet", EventType: protocols.ConpotNewConnection}) {
		t.Errorf("documents %+v", got)
	}
}
