package ftp

import (
	"testing"

	"github.com/icsnare/icsnare/protocols"
)

// TestConpotFTPShape: the raw command and reply as two documents of Python bytes literals,
// and CONNECTION_TERMINATED after QUIT.
func TestConpotFTPShape(t *testing.T) {
	cmd := func(line, reply, verb string, code int) *protocols.Event {
		return &protocols.Event{Type: "ftp.command", Transport: protocols.TCP, Text: true, Request: []byte(line), Response: []byte(reply),
			Fields: []protocols.Field{protocols.F("command", verb), protocols.F("argument", ""), protocols.F("code", code)}}
	}
	got := protocols.ConpotDocuments(protocol{}, cmd("USER nobody", "331 Now specify the Password.\r\n", "USER", 331))
	if len(got) != 2 || got[0].Request != `b'USER nobody\r\n'` || got[0].Response != nil ||
		got[1].Response != `b'331 Now specify the Password.\r\n'` || got[1].Request != nil {
		t.Errorf("USER: %+v", got)
	}
	got = protocols.ConpotDocuments(protocol{}, cmd("QUIT", "221 Bye.\r\n", "QUIT", 221))
	if len(got) != 3 || got[2].EventType != protocols.ConpotConnectionTerminated || got[2].DataType != "ftp" {
		t.Errorf("QUIT: %+v", got)
	}
	got = protocols.ConpotDocuments(protocol{}, &protocols.Event{Type: "ftp.timeout", Transport: protocols.TCP})
	if len(got) != 1 || got[0].EventType != protocols.ConpotConnectionTimeout {
		t.Errorf("timeout: %+v", got)
	}
}
