package kamstrupmgmt

import (
	"testing"

	"github.com/icsnare/icsnare/protocols"
)

// TestConpotSession: the sensor's NEW_CONNECTION and CONNECTION_LOST documents carry
// Conpot's data_type for this protocol.
func TestConpotSession(t *testing.T) {
	p, ok := protocols.Lookup("kamstrup_management")
	if !ok {
		t.Fatal("kamstrup_management is not registered")
	}
	cs := protocols.ConpotSessionOf(p)
	if cs.DataType != "kamstrup_management_protocol" || cs.Start != protocols.ConpotNewConnection || cs.End != protocols.ConpotConnectionLost {
		t.Errorf("ConpotSessionOf = %+v, want data_type kamstrup_management_protocol with NEW_CONNECTION and CONNECTION_LOST", cs)
	}
}
