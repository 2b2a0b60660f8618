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
	got := protocols.ConpotDocuments(protocol{}, snmpEvent(req, resp, "v1", "getnext", "1.3.6.1.2.1.4.21.1.1"))
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
		pdu     string
		respVB  gosnmp.SnmpPDU
		want    string
		wantVal string
	}{
		{gosnmp.Version2c, gosnmp.GetRequest, "get", gosnmp.SnmpPDU{Name: ".1.3.6.1.2.1.1.5.0", Type: gosnmp.OctetString, Value: []byte("CP 443-1 EX40")}, "SNMPv2 Get", "CP 443-1 EX40"},
		{gosnmp.Version2c, gosnmp.SetRequest, "set", gosnmp.SnmpPDU{Name: ".1.3.6.1.2.1.1.5.0", Type: gosnmp.OctetString, Value: []byte{0, 0xff}}, "SNMPv2 Set", "0x00ff"},
		{gosnmp.Version2c, gosnmp.GetBulkRequest, "getbulk", gosnmp.SnmpPDU{Name: ".1.3.6.1.2.1.1.2.0", Type: gosnmp.ObjectIdentifier, Value: ".1.3.6.1.4.1.20408"}, "SNMPv2 Bulk", "1.3.6.1.4.1.20408"},
		{gosnmp.Version2c, gosnmp.GetRequest, "get", gosnmp.SnmpPDU{Name: ".1.3.6.1.2.1.1.9.0", Type: gosnmp.NoSuchObject}, "SNMPv2 Get", "No Such Object currently exists at this OID"},
	} {
		req := marshalPacket(t, c.v, c.typ, gosnmp.SnmpPDU{Name: c.respVB.Name, Type: gosnmp.Null})
		resp := marshalPacket(t, c.v, gosnmp.GetResponse, c.respVB)
		got := protocols.ConpotDocuments(protocol{}, snmpEvent(req, resp, "v2c", c.pdu, c.respVB.Name[1:]))
		if len(got) != 1 || got[0].EventType != c.want {
			t.Errorf("%s: %+v", c.want, got)
			continue
		}
		if r, _ := got[0].Response.(*ConpotOIDVal); r == nil || r.Val != c.wantVal {
			t.Errorf("%s: response %+v, want val %q", c.want, got[0].Response, c.wantVal)
		}
	}

	// A request cut at max_event_payload (or encrypted) still gives its OID, and a SET its
	// value, from the fields the agent filled in from the whole request.
	e := snmpEvent(req[:10], resp[:10], "v3", "set", "1.3.6.1.2.1.1.6.0")
	e.Fields = append(e.Fields, protocols.F("set_values", []string{"Mars"}))
	got = protocols.ConpotDocuments(protocol{}, e)
	if len(got) != 1 || got[0].EventType != "SNMPv3 Set" || *got[0].Request.(*ConpotOIDVal) != (ConpotOIDVal{"1.3.6.1.2.1.1.6.0", "Mars"}) || got[0].Response != nil {
		t.Errorf("cut request: %+v", got)
	}

	// Requests Conpot's agent drops are not logged; neither are flows' starts.
	dropped := snmpEvent(req, nil, "v2c", "get", "1.3.6.1.2.1.1.5.0")
	dropped.Fields = append(dropped.Fields, protocols.F("dropped", "bad community"))
	evaded := snmpEvent(req, resp, "v2c", "get", "1.3.6.1.2.1.1.5.0")
	evaded.Fields = append(evaded.Fields, protocols.F("evaded", true))
	for _, e := range []*protocols.Event{dropped, evaded, snmpEvent([]byte{0x30, 0x01}, resp, "", "", ""),
		{Phase: protocols.PhaseStart, Transport: protocols.TCP}} {
		if got := protocols.ConpotDocuments(protocol{}, e); len(got) != 0 {
			t.Errorf("%+v: documents %+v", e, got)
		}
	}
}

// snmpEvent is a request event with the fields the agent sets.
func snmpEvent(req, resp []byte, version, pdu, oid string) *protocols.Event {
	e := &protocols.Event{Type: "snmp.request", Transport: protocols.UDP, Request: req, Response: resp}
	if version != "" {
		e.Fields = append(e.Fields, protocols.F("version", version), protocols.F("community", "public"), protocols.F("pdu", pdu),
			protocols.F("oids", []string{oid}))
	}
	return e
}

// TestConpotSNMPFromAgent: the agent's own events of a GET of sysName, and of a GET with a
// community it does not know, give Conpot's documents.
func TestConpotSNMPFromAgent(t *testing.T) {
	a := newAgent(t, "default")
	resp := a.do(request(t, version2c, "public", pduGet, 0, 0, vbSpec{oid: "1.3.6.1.2.1.1.5.0"}))
	if resp == nil {
		t.Fatal("no answer")
	}
	a.do(request(t, version2c, "icsnare-wrong", pduGet, 0, 0, vbSpec{oid: "1.3.6.1.2.1.1.5.0"}))
	evs := a.rec.OfType("snmp.request")
	if len(evs) != 2 {
		t.Fatalf("%d events", len(evs))
	}
	got := protocols.ConpotDocuments(protocol{}, evs[0])
	p := decodeResp(t, resp)
	name := string(p.Variables[0].Value.([]byte))
	if len(got) != 1 || got[0].EventType != "SNMPv2 Get" || *got[0].Request.(*ConpotOIDVal) != (ConpotOIDVal{"1.3.6.1.2.1.1.5.0", ""}) ||
		*got[0].Response.(*ConpotOIDVal) != (ConpotOIDVal{"1.3.6.1.2.1.1.5.0", name}) {
		t.Errorf("documents %+v, want sysName %q", got, name)
	}
	if got := protocols.ConpotDocuments(protocol{}, evs[1]); len(got) != 0 {
		t.Errorf("unknown community: %+v", got)
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
		docs := protocols.ConpotDocuments(protocol{}, snmpEvent(req, resp, "v2c", "get", "1.3.6.1.2.1.1.5.0"))
		if len(docs) != 1 {
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
