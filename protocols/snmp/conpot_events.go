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

// conpotPDUNames are the command names in Conpot's SNMP event types ("SNMPv2 Get").
var conpotPDUNames = map[byte]string{pduGet: "Get", pduGetNext: "GetNext", pduGetBulk: "Bulk", pduSet: "Set"}

// ConpotSession implements protocols.ConpotSessioner: Conpot's SNMP logs no connection
// documents, only one per answered request.
func (protocol) ConpotSession() protocols.ConpotSession { return protocols.ConpotSession{} }

// ConpotEvents implements protocols.ConpotEventer: one document per request the agent
// answered, event_type "SNMPv<1|2|3> <Get|GetNext|Bulk|Set>" (v2c shows as SNMPv2), request
// and response the first variable binding as {"oid", "val"}. Requests Conpot's agent never
// hands to its responder (a wrong community, a v3 discovery report, a malformed or evaded
// request) are not logged. An encrypted v3 response cannot be read back: it is null.
func (protocol) ConpotEvents(e *protocols.Event) []protocols.ConpotEvent {
	if e.Type != Name+".request" || e.Response == nil {
		return nil
	}
	for _, f := range e.Fields {
		switch f.Key {
		case "dropped", "evaded", "report":
			return nil
		}
	}
	var m message
	if decodeMessage(e.Request, &m) != nil {
		return nil
	}
	typ := m.pdu.typ
	var reqVB *ConpotOIDVal
	if m.encrypted == nil {
		if len(m.pdu.vbs) > 0 {
			reqVB = conpotVarbind(&m.pdu.vbs[0])
		}
	} else {
		typ = 0
		for _, f := range e.Fields {
			switch f.Key {
			case "pdu":
				for t, n := range pduNames {
					if n == f.Value {
						typ = t
					}
				}
			case "oids":
				if oids, _ := f.Value.([]string); len(oids) > 0 {
					reqVB = &ConpotOIDVal{OID: oids[0]}
				}
			}
		}
	}
	name, ok := conpotPDUNames[typ]
	if !ok {
		return nil
	}
	version := "1"
	switch m.version {
	case version2c:
		version = "2"
	case version3:
		version = "3"
	}
	d := protocols.ConpotEvent{EventType: "SNMPv" + version + " " + name}
	if reqVB != nil {
		d.Request = reqVB
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
