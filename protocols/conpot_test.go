package protocols

import (
	"testing"

	"github.com/icsnare/icsnare/profiles"
)

func TestConpotPythonReprs(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{ConpotHex([]byte{0, 1, 0xab}), `b'0001ab'`},
		{ConpotHex(nil), `b''`},
		{ConpotBytes([]byte("USER nobody\r\n")), `b'USER nobody\r\n'`},
		{ConpotBytes([]byte("it's\x00\xff\\")), `b"it's\x00\xff\\"`},
		{ConpotBytes([]byte(`'"`)), `b'\'"'`},
		{PyRepr("/index.html"), `'/index.html'`},
		{PyRepr("a'b"), `"a'b"`},
		{PyRepr(`a'"b`), `'a\'"b'`},
		{PyRepr("tab\there\x01\x7f\u0085é"), `'tab\there\x01\x7f\x85é'`},
	} {
		if c.got != c.want {
			t.Errorf("got %s, want %s", c.got, c.want)
		}
	}
}

type plainProto struct{}

func (plainProto) Name() string                                      { return "plain" }
func (plainProto) Configure(*profiles.Section, any) (Service, error) { return nil, nil }

func TestConpotDocumentsDefaults(t *testing.T) {
	p := plainProto{}
	start := ConpotDocuments(p, &Event{Phase: PhaseStart, Transport: TCP})
	end := ConpotDocuments(p, &Event{Phase: PhaseEnd, Transport: TCP})
	if len(start) != 1 || start[0].EventType != ConpotNewConnection || start[0].DataType != "plain" ||
		len(end) != 1 || end[0].EventType != ConpotConnectionLost {
		t.Errorf("TCP session documents: %+v %+v", start, end)
	}
	if d := ConpotDocuments(p, &Event{Phase: PhaseStart, Transport: UDP}); len(d) != 0 {
		t.Errorf("UDP flow start: %+v", d)
	}
	if d := ConpotDocuments(p, &Event{Transport: TCP, Type: "plain.x"}); len(d) != 0 {
		t.Errorf("event without payload: %+v", d)
	}
	d := ConpotDocuments(p, &Event{Transport: TCP, Type: "plain.request", Request: []byte{1, 2}, Response: []byte("ok"), Text: true})
	if len(d) != 1 || d[0].Request != "\x01\x02" || d[0].Response != "ok" || d[0].EventType != "" {
		t.Errorf("request event: %+v", d)
	}
	d = ConpotDocuments(p, &Event{Transport: TCP, Type: "plain.request", Request: []byte{1, 2}})
	if len(d) != 1 || d[0].Request != "b'0102'" || d[0].Response != nil {
		t.Errorf("binary request event: %+v", d)
	}
}
