package http

import (
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/icsnare/icsnare/protocols"
)

// TestConpotHTTPShape: one document per request, the request as Conpot's
// str((path, headers, body)) and the response as the status code; no connection documents.
func TestConpotHTTPShape(t *testing.T) {
	for _, c := range []struct {
		raw, want string
		status    int
	}{
		{"GET /index.html HTTP/1.1\r\nHost: 192.0.2.7\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n",
			"('/index.html', [('Host', '192.0.2.7'), ('User-Agent', 'curl/8.5.0'), ('Accept', '*/*')], None)", 200},
		{"POST /login?x=1 HTTP/1.0\r\nContent-Length: 9\r\nX-Q:  it's \r\n\r\nuser=ad'm",
			`('/login?x=1', [('Content-Length', '9'), ('X-Q', "it's ")], "user=ad'm")`, 404},
		{"garbage\r\n\r\n", "('', [], None)", 400},
	} {
		e := &protocols.Event{Type: "http.request", Transport: protocols.TCP, Request: []byte(c.raw), Response: []byte("HTTP/1.1 ..."),
			Text: true, Fields: []protocols.Field{protocols.F("method", "GET"), protocols.F("status", c.status)}}
		got := protocols.ConpotDocuments(protocol{}, e)
		if len(got) != 1 || got[0].Request != c.want || got[0].Response != strconv.Itoa(c.status) || got[0].EventType != "" || got[0].DataType != "http" {
			t.Errorf("%q: %+v, want request %s", c.raw, got, c.want)
		}
	}
	for _, e := range []protocols.Event{
		{Phase: protocols.PhaseStart, Transport: protocols.TCP}, {Phase: protocols.PhaseEnd, Transport: protocols.TCP},
		{Type: "http.login", Transport: protocols.TCP}, {Type: "http.timeout", Transport: protocols.TCP, Request: []byte("GET")},
	} {
		if got := protocols.ConpotDocuments(protocol{}, &e); len(got) != 0 {
			t.Errorf("%+v: documents %+v", e, got)
		}
	}
}

// FuzzConpotRequest: any request bytes render as one Python tuple repr of valid UTF-8.
func FuzzConpotRequest(f *testing.F) {
	f.Add([]byte("GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n"))
	f.Add([]byte("POST /a HTTP/1.0\nX: 'q\"\n\nbody\x00\xff"))
	f.Add([]byte(":\r\n\r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		r := ConpotRequest(raw)
		if !utf8.ValidString(r) || !strings.HasPrefix(r, "(") || !strings.HasSuffix(r, ")") || strings.ContainsAny(r, "\r\n") {
			t.Fatalf("%q → %q", raw, r)
		}
	})
}
