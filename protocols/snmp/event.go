package snmp

import (
	"github.com/icsnare/icsnare/protocols"
)

// maxEventOIDs bounds the OIDs listed in one event.
const maxEventOIDs = 16

var pduNames = map[byte]string{pduGet: "get", pduGetNext: "getnext", pduGetBulk: "getbulk", pduSet: "set",
	pduResponse: "response", pduTrapV1: "trap", pduTrapV2: "trap", pduInform: "inform", pduReport: "report"}

// Field values boxed once: a string put into an interface on every request would be an
// allocation each time.
var (
	pduNameValues = func() map[byte]any {
		m := make(map[byte]any, len(pduNames))
		for k, v := range pduNames {
			m[k] = v
		}
		return m
	}()
	errNameValues = func() []any {
		out := make([]any, len(errNames))
		for i, n := range errNames {
			out[i] = n
		}
		return out
	}()
	versionValues = map[string]any{"v1": "v1", "v2c": "v2c", "v3": "v3"}
)

// emit sends the request's event: version, community or user, PDU type, OIDs, error
// status, and whether it was tarpitted, evaded or dropped.
func (s *service) emit(sess *protocols.Session, st *reqState, req, resp []byte) {
	if sess.Events == nil {
		return
	}
	in := &st.info
	pduName, pduKnown := pduNameValues[st.m.pdu.typ]
	pduKnown = pduKnown && in.dropped != "malformed" && in.dropped != "bad version"
	if !pduKnown {
		pduName = nil
	}
	// The fields are built only for an event volume control keeps (the PDU type tells it
	// a SET, which it always keeps).
	if sess.Skip("request", req, resp, protocols.F("pdu", pduName)) {
		return
	}
	f := make([]protocols.Field, 0, 10)
	if v, ok := versionValues[in.version]; ok {
		f = append(f, protocols.F("version", v))
	} else if in.version != "" {
		f = append(f, protocols.F("version", in.version))
	}
	if in.userKey != "" {
		f = append(f, protocols.F(in.userKey, string(in.principal)))
	}
	if pduKnown {
		f = append(f, protocols.F("pdu", pduName))
		p := &st.m.pdu
		if n := len(p.vbs); n > 0 {
			f = append(f, protocols.F("oids", newOIDList(p.vbs)))
			if n > maxEventOIDs {
				f = append(f, protocols.F("varbinds", n))
			}
		}
		if p.typ == pduSet && in.errStatus == errNoError && resp != nil {
			f = append(f, protocols.F("set_values", setValues(p)))
		}
	}
	if resp != nil {
		if es := in.errStatus; es >= 0 && es < len(errNameValues) {
			f = append(f, protocols.F("error_status", errNameValues[es]))
		} else {
			f = append(f, protocols.F("error_status", errName(es)))
		}
	}
	if in.report > 0 {
		f = append(f, protocols.F("report", usmStatsNames[in.report]))
	}
	if in.tarpit > 0 {
		f = append(f, protocols.F("tarpit_ms", in.tarpit.Milliseconds()))
	}
	if in.evaded {
		f = append(f, protocols.F("evaded", true))
	}
	if in.dropped != "" {
		f = append(f, protocols.F("dropped", in.dropped))
	}
	sess.Emit("request", req, resp, f...)
}

func errName(es int) string {
	if es >= 0 && es < len(errNames) {
		return errNames[es]
	}
	return "unknown"
}

// setValues renders a SET's values for the event (strings as text, numbers in decimal).
func setValues(p *pdu) []string {
	out := make([]string, 0, min(len(p.vbs), maxEventOIDs))
	for i := 0; i < len(p.vbs) && i < maxEventOIDs; i++ {
		vb := &p.vbs[i]
		switch vb.tag {
		case tagOctetString, tagOpaque:
			out = append(out, string(vb.val))
		case tagInteger:
			v, _ := parseInt(vb.val)
			out = append(out, string(appendIntDec(nil, v)))
		case tagCounter32, tagGauge32, tagTimeTicks, tagCounter64:
			v, _ := parseUint(vb.val)
			out = append(out, string(appendUintDec(nil, v)))
		case tagOID:
			oid, err := decodeOID(vb.val, nil)
			if err != nil {
				out = append(out, "?")
			} else {
				out = append(out, oidString(oid))
			}
		case tagIPAddress:
			out = append(out, formatIPv4(vb.val))
		default:
			out = append(out, formatHex(vb.val))
		}
	}
	return out
}

func appendIntDec(b []byte, v int64) []byte {
	if v < 0 {
		return appendUintDec(append(b, '-'), uint64(-v))
	}
	return appendUintDec(b, uint64(v))
}
