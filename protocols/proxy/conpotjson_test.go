package proxy_test

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/proxy"
	"github.com/icsnare/icsnare/sensor"
)

// TestConpotJSON: the sensor's --events-format conpot writes a proxy's chunk as Conpot's
// JSON logger does: data_type the proxy's id, null request and response for the raw chunk,
// then the AsciiDecoder's text as Python bytes; nothing for the session's start and end.
func TestConpotJSON(t *testing.T) {
	base := protocols.Event{Time: time.Now(), Protocol: proxy.Name, Transport: protocols.TCP, SessionID: "s-1",
		Src: netip.MustParseAddrPort("198.51.100.9:40000"), Dst: netip.MustParseAddrPort("203.0.113.5:50100"), Sensor: "plant"}
	ids := []protocols.Field{protocols.F("proxy", "Kamstrup telnet"), protocols.F("proxy_id", "kamstrup_telnet")}
	start, end, chunk := base, base, base
	start.Type, start.Phase = "proxy.connect", protocols.PhaseStart
	end.Type, end.Phase = "proxy.disconnect", protocols.PhaseEnd
	chunk.Type, chunk.Request = "proxy.request", []byte("!GV\r\n")
	chunk.Fields = append(ids, protocols.F("decoded", "!GV\r\n"), protocols.F("decoder", proxy.AsciiDecoderName))
	var out []byte
	for _, e := range []*protocols.Event{&start, &chunk, &end} {
		out = sensor.AppendConpotJSON(out, e)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d documents:\n%s", len(lines), out)
	}
	var docs []map[string]any
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		if len(m) != 12 || m["data_type"] != "kamstrup_telnet" || m["event_type"] != nil || m["response"] != nil {
			t.Errorf("document %s", l)
		}
		docs = append(docs, m)
	}
	if docs[0]["request"] != nil || docs[1]["request"] != `b'!GV\r\n'` {
		t.Errorf("requests %v, %v", docs[0]["request"], docs[1]["request"])
	}
	t.Logf("%s", out)
}
