package tftp

import (
	"testing"

	"github.com/icsnare/icsnare/protocols"
)

// TestConpotTFTPShape: NEW_CONNECTION for a transfer request, CONNECTION_TIMEOUT or
// CONNECTION_LOST when it fails, no file names.
func TestConpotTFTPShape(t *testing.T) {
	for _, c := range []struct {
		e    protocols.Event
		want string
	}{
		{protocols.Event{Type: "tftp.request", Request: []byte("\x00\x01f\x00octet\x00")}, protocols.ConpotNewConnection},
		{protocols.Event{Type: "tftp.transfer_failed", Fields: []protocols.Field{protocols.F("reason", errGiveUp.Error())}}, protocols.ConpotConnectionTimeout},
		{protocols.Event{Type: "tftp.transfer_failed", Fields: []protocols.Field{protocols.F("reason", "session closed")}}, protocols.ConpotConnectionLost},
		{protocols.Event{Type: "tftp.error", Request: []byte{0, 9}}, protocols.ConpotConnectionLost},
		{protocols.Event{Type: "tftp.download"}, ""},
	} {
		c.e.Transport = protocols.UDP
		got := protocols.ConpotDocuments(protocol{}, &c.e)
		switch {
		case c.want == "" && len(got) != 0, c.want != "" && (len(got) != 1 || got[0].EventType != c.want || got[0].Request != nil):
			t.Errorf("%s: %+v, want %s", c.e.Type, got, c.want)
		}
	}
}
