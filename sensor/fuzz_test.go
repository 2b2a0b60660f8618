package sensor

import (
	"encoding/json"
	"net/netip"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols"
)

// FuzzEventJSON: whatever a protocol puts in an event, each encoding is one valid JSON
// object on one line.
func FuzzEventJSON(f *testing.F) {
	f.Add("modbus.request", "key", "value", []byte{0, 1, 2}, true)
	f.Add("http.request", "user_agent", "Mozilla/5.0 \"x\" \\ \n\x00\xff\u2028", []byte("GET / HTTP/1.1\r\n"), false)
	f.Fuzz(func(t *testing.T, typ, key, val string, payload []byte, text bool) {
		e := &protocols.Event{Time: time.Unix(0, 0), Type: typ, Src: netip.MustParseAddrPort("192.0.2.1:1"),
			Request: payload, Response: payload, Text: text,
			Fields: []protocols.Field{protocols.F(key, val), protocols.F("n", len(val))}}
		doc := protocols.ConpotEvent{DataType: key, EventType: val, Request: val, Response: protocols.ConpotBytes(payload)}
		conpot := AppendConpotDocument(nil, e, doc, "")
		var cm map[string]any
		if err := json.Unmarshal(conpot, &cm); err != nil || len(cm) != 12 || (val == "") != (cm["event_type"] == nil) {
			t.Fatalf("conpot document %q: %v, %d keys", conpot, err, len(cm))
		}
		for _, line := range [][]byte{AppendJSON(nil, e), conpot} {
			var m map[string]any
			if err := json.Unmarshal(line, &m); err != nil {
				t.Fatalf("invalid JSON %q: %v", line, err)
			}
			for _, c := range line {
				if c == '\n' {
					t.Fatalf("newline inside an event line: %q", line)
				}
			}
		}
	})
}
