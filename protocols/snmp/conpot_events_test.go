package snmp

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/gosnmp/gosnmp"

	"github.com/icsnare/icsnare/protocols"
)

func marshalPacket(t *testing.T, v gosnmp.SnmpVersion, typ gosnmp.PDUType, vbs ...gosnmp.SnmpPDU) []byte {
	t.Helper()
	p := &gosnmp.SnmpPacket{Version: v, Community: "public", PDUType: typ, RequestID: 7, Variables: vbs}
	b, err := p.MarshalMsg()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestConpotSNMPShape: the document of Conpot's PR #312 example — "SNMPv1 GetNext",
// request {"oid": "1.3.6.1.2.1.4.21.1.1", "val": ""}, response {"oid":
// "1.3.6.1.2.1.11.1.0", "val": "18"} — and the other commands' event types.
func TestConpotSNMPShape(t *testing.T) {
	req := marshalPacket(t, gosnmp.Version1, gosnmp.GetNextRequest, gosnmp.SnmpPDU{Name: ".1.3.6.1.2.1.4.21.1.1", Type: gosnmp.Null})
	resp := marshalPacket(t, gosnmp.Version1, gosnmp.GetResponse, gosnmp.SnmpPDU{Name: ".1.3.6.1.2.1.11.1.0", Type: gosnmp.Counter32, Value: uint32(18)})
	got := protocols.ConpotDocuments(protocol{}, &protocols.Event{Type: "snmp.request", Transport: protocols.UDP, Request: req, Response: resp})
	if len(got) != 1 {
		t.Fatalf("documents %+v", got)
	}
	b, _ := json.Marshal(map[string]any{"request": got[0].Request, "response": got[0].Response})
	want := `{"request":{"oid":"1.3.6.1.2.1.4.21.1.1","val":""},"response":{"oid":"1.3.6.1.2.1.11.1.0","val":"18"}}`
	if got[0].EventType != "SNMPv1 GetNext" || got[0].DataType != "snmp" || string(b) != want {
		t.Errorf("got %s %s %s, want SNMPv1 GetNext %s", got[0].EventType, got[0].DataType, b, want)
	}

	for _, c := range []struct {
		v       gosnmp.SnmpVersion
		typ     gosnmp.PDUType
		respVB  gosnmp.SnmpPDU
		want    string
		wantVal string
	}{
		{gosnmp.Version2c, gosnmp.GetRequest, gosnmp.SnmpPDU{Name: ".1.3.6.1.2.1.1.5.0", Type: gosnmp.OctetString, Value: []byte("CP 443-1 EX40")}, "SNMPv2 Get", "CP 443-1 EX40"},
		{gosnmp.Version2c, gosnmp.SetRequest, gosnmp.SnmpPDU{Name: ".1.3.6.1.2.1.1.5.0", Type: gosnmp.OctetString, Value: []byte{0, 0xff}}, "SNMPv2 Set", "0x00ff"},
		{gosnmp.Version2c, gosnmp.GetBulkRequest, gosnmp.SnmpPDU{Name: ".1.3.6.1.2.1.1.2.0", Type: gosnmp.ObjectIdentifier, Value: ".1.3.6.1.4.1.20408"}, "SNMPv2 Bulk", "1.3.6.1.4.1.20408"},
		{gosnmp.Version2c, gosnmp.GetRequest, gosnmp.SnmpPDU{Name: ".1.3.6.1.2.1.1.9.0", Type: gosnmp.NoSuchObject}, "SNMPv2 Get", "No Such Object currently exists at this OID"},
	} {
		req := marshalPacket(t, c.v, c.typ, gosnmp.SnmpPDU{Name: c.respVB.Name, Type: gosnmp.Null})
		resp := marshalPacket(t, c.v, gosnmp.GetResponse, c.respVB)
		got := protocols.ConpotDocuments(protocol{}, &protocols.Event{Type: "snmp.request", Transport: protocols.UDP, Request: req, Response: resp})
		if len(got) != 1 || got[0].EventType != c.want {
			t.Errorf("%s: %+v", c.want, got)
			continue
		}
		if r, _ := got[0].Response.(*ConpotOIDVal); r == nil || r.Val != c.wantVal {
			t.Errorf("%s: response %+v, want val %q", c.want, got[0].Response, c.wantVal)
		}
	}

	// Requests Conpot's agent drops are not logged; neither are flows' starts.
	for _, e := range []protocols.Event{
		{Type: "snmp.request", Transport: protocols.UDP, Request: req, Fields: []protocols.Field{protocols.F("dropped", "bad community")}},
		{Type: "snmp.request", Transport: protocols.UDP, Request: req, Response: resp, Fields: []protocols.Field{protocols.F("evaded", true)}},
		{Type: "snmp.request", Transport: protocols.UDP, Request: []byte{0x30, 0x01}, Response: resp},
		{Phase: protocols.PhaseStart, Transport: protocols.TCP},
	} {
		if got := protocols.ConpotDocuments(protocol{}, &e); len(got) != 0 {
			t.Errorf("%+v: documents %+v", e, got)
		}
	}
}

// FuzzConpotEvents: whatever request and response bytes an event holds, the Conpot
// document is at most one, with a known event type and JSON-encodable values.
func FuzzConpotEvents(f *testing.F) {
	get := []byte{0x30, 0x26, 0x02, 0x01, 0x01, 0x04, 0x06, 'p', 'u', 'b', 'l', 'i', 'c', 0xa0, 0x19, 0x02, 0x01, 0x07, 0x02, 0x01, 0x00,
		0x02, 0x01, 0x00, 0x30, 0x0e, 0x30, 0x0c, 0x06, 0x08, 0x2b, 0x06, 0x01, 0x02, 0x01, 0x01, 0x05, 0x00, 0x05, 0x00}
	f.Add(get, get)
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x03}, []byte{})
	f.Fuzz(func(t *testing.T, req, resp []byte) {
		docs := protocols.ConpotDocuments(protocol{}, &protocols.Event{Type: "snmp.request", Transport: protocols.UDP, Request: req, Response: resp})
		if len(docs) > 1 {
			t.Fatalf("%d documents", len(docs))
		}
		for _, d := range docs {
			if !strings.HasPrefix(d.EventType, "SNMPv") {
				t.Fatalf("event type %q", d.EventType)
			}
			if _, err := json.Marshal([]any{d.Request, d.Response}); err != nil {
				t.Fatal(err)
			}
		}
	})
}
