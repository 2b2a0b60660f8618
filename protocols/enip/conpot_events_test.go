package enip

import (
	"testing"

	"github.com/icsnare/icsnare/protocols"
)

// TestConpotENIPShape: NEW_CONNECTION when a TCP connection opens, CONNECTION_CLOSED after
// every transaction, nothing at the end; over UDP each request is framed by both, and a bad
// datagram is CONNECTION_FAILED.
func TestConpotENIPShape(t *testing.T) {
	for _, c := range []struct {
		e    protocols.Event
		want []string
	}{
		{protocols.Event{Phase: protocols.PhaseStart, Transport: protocols.TCP}, []string{"NEW_CONNECTION"}},
		{protocols.Event{Type: evRequest, Transport: protocols.TCP, Request: []byte{0x63, 0}}, []string{"CONNECTION_CLOSED"}},
		{protocols.Event{Type: evWrite, Transport: protocols.TCP, Request: []byte{0x6f, 0}}, []string{"CONNECTION_CLOSED"}},
		{protocols.Event{Phase: protocols.PhaseEnd, Transport: protocols.TCP}, nil},
		{protocols.Event{Type: evRequest, Transport: protocols.UDP}, []string{"NEW_CONNECTION", "CONNECTION_CLOSED"}},
		{protocols.Event{Type: evBadFrame, Transport: protocols.UDP}, []string{"CONNECTION_FAILED"}},
		{protocols.Event{Type: evBadFrame, Transport: protocols.TCP}, nil},
	} {
		got := protocols.ConpotDocuments(protocol{}, &c.e)
		if len(got) != len(c.want) {
			t.Errorf("%+v: %+v, want %v", c.e, got, c.want)
			continue
		}
		for i, d := range got {
			if d.EventType != c.want[i] || d.Request != nil || d.Response != nil || d.DataType != "enip" {
				t.Errorf("%+v: %+v, want %v", c.e, got, c.want)
			}
		}
	}
}
