package hpfeeds

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/icsnare/icsnare/protocols"
)

// FuzzParseMessage: any bytes from a peer parse or are refused without a panic; a message
// that parses is no longer than its length field, and a publish that parses is written
// again byte for byte.
func FuzzParseMessage(f *testing.F) {
	info, _ := AppendInfo(nil, "broker", []byte{1, 2, 3, 4})
	auth, _ := AppendAuth(nil, "ident", []byte{1, 2, 3, 4}, "secret")
	pub, _ := AppendPublish(nil, "ident", "chan", []byte(`{"a":1}`))
	errMsg, _ := AppendMessage(nil, OpError, []byte("authfail"))
	for _, s := range [][]byte{info, auth, pub, errMsg, {0, 0, 0, 4, 0}, {0xff, 0xff, 0xff, 0xff, 3}, {0, 0, 0, 6, 3, 9}} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		op, p, n, err := ParseMessage(b, MaxMessage)
		if err != nil || n == 0 {
			return
		}
		if n > len(b) || len(p) != n-headerLen {
			t.Fatalf("n %d, payload %d of %d bytes", n, len(p), len(b))
		}
		ParseInfo(p)
		ParseAuth(p)
		ParseSubscribe(p)
		if op == OpPublish {
			ident, ch, data, err := ParsePublish(p)
			if err != nil {
				return
			}
			again, err := AppendPublish(nil, ident, ch, data)
			if err != nil || !bytes.Equal(again, b[:n]) {
				t.Fatalf("publish written again as %x, was %x (%v)", again, b[:n], err)
			}
		}
		op2, p2, _, err := ReadMessage(bytes.NewReader(b), nil, MaxMessage)
		if err != nil || op2 != op || !bytes.Equal(p2, p) {
			t.Fatalf("ReadMessage disagrees: %d %x %v", op2, p2, err)
		}
	})
}

// FuzzPublish: any ident, channel and payload either make a publish that parses back to
// them, or an ErrTooLong.
func FuzzPublish(f *testing.F) {
	f.Add("sensor-1", "icsnare.events", []byte(`{"event_type":"modbus.request"}`))
	f.Add("", "", []byte{})
	f.Add(string(make([]byte, 256)), "c", []byte{0})
	f.Fuzz(func(t *testing.T, ident, ch string, payload []byte) {
		msg, err := AppendPublish([]byte("prefix"), ident, ch, payload)
		if err != nil {
			if string(msg) != "prefix" {
				t.Fatalf("a failed append left %q", msg)
			}
			if len(ident) <= 255 && len(ch) <= 255 && len(payload) < MaxMessage-600 {
				t.Fatalf("refused: %v", err)
			}
			return
		}
		op, p, n, err := ParseMessage(msg[6:], MaxMessage)
		if err != nil || n != len(msg)-6 || op != OpPublish {
			t.Fatalf("%v %d", err, n)
		}
		i, c, d, err := ParsePublish(p)
		if err != nil || i != ident || c != ch || !bytes.Equal(d, payload) {
			t.Fatalf("parsed back %q %q %x: %v", i, c, d, err)
		}
	})
}

// FuzzConpotRecord: any request, response and event type make a Conpot record that is
// valid JSON, pure ASCII (Python's ensure_ascii), and carries them (invalid UTF-8 as
// U+FFFD).
func FuzzConpotRecord(f *testing.F) {
	f.Add("NEW_CONNECTION", "b'0001'", "", "s1", "203.0.113.1")
	f.Add("", "GET / HTTP/1.1\r\n\"ü\"", "\x00\xff𝄞", "", "")
	f.Fuzz(func(t *testing.T, typ, req, resp, session, public string) {
		e := &protocols.Event{SessionID: session, Src: netip.MustParseAddrPort("198.51.100.1:1"), Time: time.Unix(1, 5000)}
		d := protocols.ConpotEvent{DataType: "modbus", EventType: typ, Request: req, Response: resp}
		if resp == "" {
			d.Response = map[string]any{"oid": resp, "val": []int{1}}
		}
		b := AppendConpotRecord(nil, e, d, public)
		for _, c := range b {
			if c >= 0x80 {
				t.Fatalf("non-ASCII byte in %q", b)
			}
		}
		var m struct {
			ID       string         `json:"id"`
			PublicIP *string        `json:"public_ip"`
			Data     map[string]any `json:"data"`
		}
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%v: %s", err, b)
		}
		if len(m.ID) != 36 || (public == "") != (m.PublicIP == nil) {
			t.Fatalf("id %q public_ip %v", m.ID, m.PublicIP)
		}
		if typ != "" && m.Data["type"] != fix(typ) {
			t.Fatalf("type %q, want %q", m.Data["type"], fix(typ))
		}
		if m.Data["request"] != fix(req) {
			t.Fatalf("request %q, want %q", m.Data["request"], fix(req))
		}
	})
}

// fix is what a JSON round trip makes of s.
func fix(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b []byte
	for _, r := range s {
		b = utf8.AppendRune(b, r)
	}
	return string(b)
}
