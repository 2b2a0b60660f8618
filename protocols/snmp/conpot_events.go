package snmp

import (
	"strings"

	"github.com/icsnare/icsnare/protocols"
)

// ConpotOIDVal is the request or response value Conpot logs for SNMP: the first variable
// binding's OID and its value as pysnmp prints it.
type ConpotOIDVal struct {
	OID string `json:"oid"`
	Val string `json:"val"`
}

// ConpotSession implements protocols.ConpotSessioner: Conpot's SNMP logs no connection
// documents, only one per answered request.
func (protocol) ConpotSession() protocols.ConpotSession { return protocols.ConpotSession{} }

// conpotVersions are Conpot's version numbers in event types (v2c shows as SNMPv2).
var conpotVersions = map[string]string{"v1": "1", "v2c": "2", "v3": "3"}

// conpotCommands are Conpot's command names in event types, by the event's pdu field.
var conpotCommands = map[string]string{"get": "Get", "getnext": "GetNext", "getbulk": "Bulk", "set": "Set"}

// ConpotEvents implements protocols.ConpotEventer: one document per request the agent
// answered, event_type "SNMPv<1|2|3> <Get|GetNext|Bulk|Set>" (v2c shows as SNMPv2), request
// and response the first variable binding as {"oid", "val"}. Requests Conpot's agent never
// hands to its responder (a wrong community, a v3 discovery report, a malformed or evaded
// request) are not logged. The version, command and OID come from the event's fields, which
// the agent took from the whole (and decrypted) request; the values from the datagrams
// where they can be read: a SET's value from its fields, an encrypted v3 response is null.
func (protocol) ConpotEvents(e *protocols.Event) []protocols.ConpotEvent {
	if e.Type != Name+".request" || e.Response == nil {
		return nil
	}
	var version, command, oid, setValue string
	for _, f := range e.Fields {
		switch f.Key {
		case "dropped", "evaded", "report":
			return nil
		case "version":
			version, _ = f.Value.(string)
		case "pdu":
			name, _ := f.Value.(string)
			command = conpotCommands[name]
		case "oids":
			oids, _ := f.Value.([]string)
			if l, ok := f.Value.(oidList); ok {
				oids = l.Strings()
			}
			if len(oids) > 0 {
				oid = oids[0]
			}
		case "set_values":
			if vals, _ := f.Value.([]string); len(vals) > 0 {
				setValue = vals[0]
			}
		}
	}
	v, ok := conpotVersions[version]
	if !ok || command == "" {
		return nil
	}
	d := protocols.ConpotEvent{EventType: "SNMPv" + v + " " + command}
	var m message
	if decodeMessage(e.Request, &m) == nil && m.encrypted == nil && len(m.pdu.vbs) > 0 {
		d.Request = conpotVarbind(&m.pdu.vbs[0])
	} else if oid != "" {
		d.Request = &ConpotOIDVal{OID: oid, Val: setValue}
	}
	var r message
	if decodeMessage(e.Response, &r) == nil && r.encrypted == nil && len(r.pdu.vbs) > 0 {
		d.Response = conpotVarbind(&r.pdu.vbs[0])
	}
	return []protocols.ConpotEvent{d}
}

func conpotVarbind(vb *varbind) *ConpotOIDVal {
	oid, err := decodeOID(vb.oid, nil)
	if err != nil {
		return nil
	}
	return &ConpotOIDVal{OID: oidString(oid), Val: pyValue(vb)}
}

// pyValue prints a value as pysnmp's prettyPrint does: octet strings as text when every
// byte is printable (else 0x and hex), numbers in decimal, OIDs and addresses dotted, Null
// empty, and the v2 exceptions as their descriptions.
func pyValue(vb *varbind) string {
	switch vb.tag {
	case tagOctetString:
		for _, c := range vb.val {
			if (c < 32 && c != 9 && c != 10 && c != 13) || c > 126 {
				return "0x" + strings.ReplaceAll(formatHex(vb.val), ":", "")
			}
		}
		return string(vb.val)
	case tagInteger:
		v, _ := parseInt(vb.val)
		return string(appendIntDec(nil, v))
	case tagCounter32, tagGauge32, tagTimeTicks, tagCounter64:
		v, _ := parseUint(vb.val)
		return string(appendUintDec(nil, v))
	case tagOID:
		oid, err := decodeOID(vb.val, nil)
		if err != nil {
			return ""
		}
		return oidString(oid)
	case tagIPAddress:
		return formatIPv4(vb.val)
	case tagNull:
		return ""
	case tagNoSuchObject:
		return "No Such Object currently exists at this OID"
	case tagNoSuchInstance:
		return "No Such Instance currently exists at this OID"
	case tagEndOfMibView:
		return "No more variables left in this MIB View"
	}
	return "0x" + strings.ReplaceAll(formatHex(vb.val), ":", "")
}
