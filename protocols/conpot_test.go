package protocols

import (
	"strings"
	"testing"
	"unicode/utf8"

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

// FuzzConpotReprs: Python reprs of any input are one line of valid UTF-8 inside their
// quotes, with nothing unescaped that Python would escape.
func FuzzConpotReprs(f *testing.F) {
	f.Add([]byte("USER nobody\r\n"))
	f.Add([]byte("it's \"q\" \\ \x00\xff\u2028é"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, r := range []string{ConpotBytes(b), PyRepr(string(b)), ConpotHex(b)} {
			if !utf8.ValidString(r) || strings.ContainsAny(r, "\r\n\t\x00\x7f") {
				t.Fatalf("repr %q", r)
			}
			body := strings.TrimPrefix(r, "b")
			if len(body) < 2 || body[0] != body[len(body)-1] || (body[0] != '\'' && body[0] != '"') {
				t.Fatalf("repr %q is not quoted", r)
			}
		}
		if cb := ConpotBytes(b); strings.ContainsFunc(cb, func(r rune) bool { return r >= 0x80 }) {
			t.Fatalf("bytes repr %q holds non-ASCII", cb)
		}
	})
}
