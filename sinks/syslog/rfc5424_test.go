package syslog

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols"
)

func testEncoder() Encoder {
	o := DefaultOptions()
	if err := o.Validate(); err != nil {
		panic(err)
	}
	return Encoder{Facility: 16, Severity: o.classifier.Severity, Hostname: "sensor-1", AppName: "icsnare", ProcID: "42",
		SDID: "icsnare@32473", Message: MessageText, MaxMessage: 8192}
}

// TestEncode: whole messages, written out as RFC 5424 lays them out.
func TestEncode(t *testing.T) {
	at := time.Date(2026, 11, 29, 15, 4, 5, 123456789, time.UTC)
	src, dst := netip.MustParseAddrPort("198.51.100.7:40001"), netip.MustParseAddrPort("192.0.2.5:502")
	for _, tc := range []struct {
		name string
		mod  func(*Encoder)
		e    protocols.Event
		want string
	}{
		{"modbus write", nil, protocols.Event{Time: at, Type: "modbus.request", Protocol: "modbus", Transport: "tcp", Src: src, Dst: dst,
			Request: []byte{1, 6}, Fields: []protocols.Field{protocols.F("function_code", uint8(6))}},
			`<133>1 2026-11-29T15:04:05.123456Z sensor-1 icsnare 42 modbus.request [icsnare@32473 event_type="modbus.request" protocol="modbus" transport="tcp" src_ip="198.51.100.7" src_port="40001" dst_ip="192.0.2.5" dst_port="502" request="0106" function_code="6"] modbus.request 198.51.100.7:40001 -> 192.0.2.5:502`},
		{"modbus read", func(c *Encoder) { c.Message = MessageNone }, protocols.Event{Time: at, Type: "modbus.request",
			Fields: []protocols.Field{protocols.F("function_code", uint8(3))}},
			`<134>1 2026-11-29T15:04:05.123456Z sensor-1 icsnare 42 modbus.request [icsnare@32473 event_type="modbus.request" function_code="3"]`},
		{"s7 stop", func(c *Encoder) { c.Message = MessageNone }, protocols.Event{Type: "s7comm.stop"},
			`<132>1 - sensor-1 icsnare 42 s7comm.stop [icsnare@32473 event_type="s7comm.stop"]`},
		{"escapes and names", func(c *Encoder) { c.Message, c.Hostname = MessageNone, "" }, protocols.Event{Type: "a b.c",
			Fields: []protocols.Field{protocols.F(`k="]`, `v"\]`), protocols.F("", "x"), protocols.F(strings.Repeat("n", 40), 1.5)}},
			`<134>1 - - icsnare 42 a_b.c [icsnare@32473 event_type="a b.c" k___="v\"\\\]" _="x" nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn="1.5"]`},
		{"MSGID cut at 32", func(c *Encoder) { c.Message = MessageNone }, protocols.Event{Type: strings.Repeat("t", 40)},
			`<134>1 - sensor-1 icsnare 42 ` + strings.Repeat("t", 32) + ` [icsnare@32473 event_type="` + strings.Repeat("t", 40) + `"]`},
		{"json MSG", func(c *Encoder) { c.Message = MessageJSON }, protocols.Event{Type: "x.y"},
			"<134>1 - sensor-1 icsnare 42 x.y [icsnare@32473 event_type=\"x.y\"] \ufeff" + `{"timestamp":"0001-01-01T00:00:00Z","event_type":"x.y","session_id":"","protocol":"","transport":"","src_ip":null,"src_port":null,"dst_ip":null,"dst_port":null,"sensor":"","profile":""}`},
		{"value cut", func(c *Encoder) { c.Message, c.MaxValue = MessageNone, 4 }, protocols.Event{Type: "x.y", Request: []byte("abcdefgh"), Text: true},
			`<134>1 - sensor-1 icsnare 42 x.y [icsnare@32473 event_type="x.y" request="abcd" truncated="request"]`},
	} {
		c := testEncoder()
		if tc.mod != nil {
			tc.mod(&c)
		}
		if got := string(c.Append(nil, &tc.e)); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, tc.want)
		}
	}
}

// TestEncodeBounded: a message over max_message is written again with shorter values,
// then without fields, then without MSG, and still parses.
func TestEncodeBounded(t *testing.T) {
	c := testEncoder()
	c.MaxMessage = 480
	e := &protocols.Event{Type: "http.request", Request: []byte(strings.Repeat("A", 5000)), Text: true}
	for range 50 {
		e.Fields = append(e.Fields, protocols.F("field", strings.Repeat("v", 20)))
	}
	msg := c.Append(nil, e)
	if len(msg) > 480 {
		t.Fatalf("%d bytes: %s", len(msg), msg)
	}
	m, err := ParseMessage(string(msg))
	if err != nil {
		t.Fatal(err)
	}
	p := m.SD[0].Params
	if last := p[len(p)-1]; last.Name != "truncated" || last.Value != "request,fields" {
		t.Fatalf("params %q", p)
	}
}

func TestParseMessageRefuses(t *testing.T) {
	for _, s := range []string{
		"", "<>1 - - - - - -", "<192>1 - - - - - -", "<01>1 - - - - - -", "<1>2 - - - - - -", "<1>1 - - - - -",
		"<1>1 yesterday - - - - -", "<1>1 - - - - - [", "<1>1 - - - - - [a@1 b]", `<1>1 - - - - - [a@1 b="c]"]`,
		`<1>1 - - - - - [a@1 b="c"`, "<1>1 - - - - - [" + strings.Repeat("a", 33) + "]", `<1>1 - - - - - [a@1 b="` + "\xff" + `"]`,
		"<1>1 - - - - " + strings.Repeat("m", 33) + " -", "<1>1 - - - - - -x",
	} {
		if m, err := ParseMessage(s); err == nil {
			t.Errorf("ParseMessage(%q) = %+v", s, m)
		}
	}
}

func TestValidSDID(t *testing.T) {
	for id, ok := range map[string]bool{
		"icsnare@32473": true, "x@1.2.3": true, "icsnare": false, "@1": false, "x@": false, "x@0": false,
		"x y@1": false, "x@1a": false, "x=y@1": false, "a@1..2": false, strings.Repeat("a", 30) + "@12": false,
	} {
		if err := ValidSDID(id); (err == nil) != ok {
			t.Errorf("ValidSDID(%q) = %v", id, err)
		}
	}
}

func TestSeverityRules(t *testing.T) {
	c := testEncoder()
	for _, tc := range []struct {
		e    protocols.Event
		want int
	}{
		{protocols.Event{Type: "modbus.request", Fields: []protocols.Field{protocols.F("function_code", uint8(16))}}, 5},
		{protocols.Event{Type: "modbus.request", Fields: []protocols.Field{protocols.F("function_code", uint8(3))}}, 6},
		{protocols.Event{Type: "s7comm.write"}, 5},
		{protocols.Event{Type: "s7comm.stop"}, 4},
		{protocols.Event{Type: "snmp.request", Fields: []protocols.Field{protocols.F("pdu", "set")}}, 5},
		{protocols.Event{Type: "bacnet.request", Fields: []protocols.Field{protocols.F("service", "reinitialize-device")}}, 4},
		{protocols.Event{Type: "ftp.upload"}, 5},
		{protocols.Event{Type: "http.request"}, 6},
	} {
		if got := c.Severity(&tc.e); got != tc.want {
			t.Errorf("%s %v: severity %d, want %d", tc.e.Type, tc.e.Fields, got, tc.want)
		}
	}
}
