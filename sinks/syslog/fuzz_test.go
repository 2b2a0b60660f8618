package syslog

import (
	"net/netip"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/icsnare/icsnare/protocols"
)

// validUTF8 is what the encoder makes of s: each invalid byte becomes U+FFFD.
func validUTF8(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b.WriteString("\ufffd")
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// FuzzEncode: any event encodes to an RFC 5424 message that parses back, within
// max_message, with its header fields in their limits and every field's value intact (or,
// when cut, a prefix of it and named in "truncated").
func FuzzEncode(f *testing.F) {
	f.Add("modbus.request", "function_code", "6", []byte{0, 1, 2}, false, 0, 2048)
	f.Add("http.request", "path", `/a"]\b`, []byte("GET / HTTP/1.1\r\n"), true, 16, 480)
	f.Add(strings.Repeat("x", 40), "k=e y]\"", "\xff\xfeü", []byte{}, true, 1, 600)
	f.Add("", "", "", []byte(nil), false, 0, 480)
	f.Fuzz(func(t *testing.T, typ, key, value string, req []byte, text bool, maxValue, maxMessage int) {
		maxValue = max(0, maxValue%4096)
		maxMessage = 480 + abs(maxMessage)%8000
		enc := Encoder{Facility: 16, Hostname: "h", AppName: "icsnare", ProcID: "1", SDID: "icsnare@32473",
			Message: MessageJSON, MaxValue: maxValue, MaxMessage: maxMessage,
			Severity: (&Classifier{Default: 6, Notice: []Rule{{Type: "*.write"}}}).Severity}
		e := &protocols.Event{Time: time.Unix(1, 0), Type: typ, Protocol: "p", Transport: "tcp", Request: req, Text: text,
			Src: netip.MustParseAddrPort("192.0.2.1:1"), Fields: []protocols.Field{protocols.F(key, value)}}
		msg := enc.Append(nil, e)
		m, err := ParseMessage(string(msg))
		if err != nil {
			t.Fatalf("%v: %q", err, msg)
		}
		if len(m.MsgID) > maxMsgID || len(m.SD) != 1 || m.SD[0].ID != "icsnare@32473" {
			t.Fatalf("MSGID %q, SD %+v", m.MsgID, m.SD)
		}
		var truncated string
		for _, p := range m.SD[0].Params {
			if p.Name == "truncated" {
				truncated = p.Value
			}
			if len(p.Name) > maxSDName || strings.ContainsAny(p.Name, "= ]\"") {
				t.Fatalf("PARAM-NAME %q", p.Name)
			}
		}
		for _, p := range m.SD[0].Params {
			if p.Name != string(AppendSDName(nil, key)) || p.Name == "truncated" {
				continue
			}
			want := validUTF8(value)
			if strings.Contains(","+truncated+",", ","+p.Name+",") {
				if !strings.HasPrefix(want, p.Value) {
					t.Fatalf("cut value %q is not a prefix of %q", p.Value, want)
				}
			} else if p.Value != want && key != "truncated" {
				t.Fatalf("value %q, want %q", p.Value, want)
			}
		}
		if len(msg) > maxMessage && (m.Msg != "" || strings.Contains(truncated, "fields") == false) {
			t.Fatalf("message of %d bytes over %d with room to cut", len(msg), maxMessage)
		}
		if !utf8.Valid(msg) {
			t.Fatalf("message is not UTF-8: %q", msg)
		}
		framed := AppendOctetCounted(nil, msg)
		if !strings.HasSuffix(string(framed), " "+string(msg)) {
			t.Fatal("octet counting")
		}
	})
}

func abs(n int) int {
	if n < 0 {
		if n == -n {
			return 0
		}
		return -n
	}
	return n
}

// FuzzParseMessage: any input parses or is refused without a panic, and what parses keeps
// to RFC 5424's limits.
func FuzzParseMessage(f *testing.F) {
	for _, s := range []string{
		`<134>1 2026-01-01T00:00:00Z h app - mid [x@32473 a="1\]" b="\\\""] hello`,
		`<0>1 - - - - - -`,
		`<191>1 - - - - - [a@1][b@2 c=""]`,
		`<13>1 2026-11-29T14:41:21.418034+00:00 vm root - - [timeQuality tzKnown="1" isSynced="0"] udp hi`,
		`<1>1 - - - - - [a@1 b="unterminated`,
		`<999>1 - - - - - -`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMessage(s)
		if err != nil {
			return
		}
		if m.Priority > 191 || len(m.MsgID) > maxMsgID || len(m.AppName) > maxAppName {
			t.Fatalf("%+v", m)
		}
		for _, el := range m.SD {
			if len(el.ID) > maxSDName {
				t.Fatalf("SD-ID %q", el.ID)
			}
			for _, p := range el.Params {
				if !utf8.ValidString(p.Value) {
					t.Fatalf("value %q", p.Value)
				}
				// Written again, the value reads back the same.
				again := "[" + el.ID + " " + p.Name + `="` + string(AppendParamValue(nil, p.Value)) + `"]`
				els, rest, err := ParseStructuredData(again)
				if err != nil || rest != "" || els[0].Params[0] != p {
					t.Fatalf("%q: %v %+v", again, err, els)
				}
			}
		}
	})
}
