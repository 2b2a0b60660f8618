package sensor

import (
	"encoding/json"
	"net/netip"
	"strconv"

	"github.com/icsnare/icsnare/protocols"
)

// AppendConpotDocument appends one document of Conpot's JSON logger: exactly its twelve
// keys, in its order (timestamp, sensorid, id, src_ip, src_port, dst_ip, dst_port,
// public_ip, data_type, request, response, event_type), written as Python's json.dumps
// writes them (", " and ": " separators, non-ASCII as \u escapes). timestamp is the
// session's start (naive UTC ISO 8601, as Conpot stamps every event of a session); id a
// UUID derived from the session id; publicIP "" is null.
func AppendConpotDocument(b []byte, e *protocols.Event, d protocols.ConpotEvent, publicIP string) []byte {
	b = append(b, `{"timestamp": "`...)
	b = appendConpotTime(b, e.Start, e.Time)
	b = append(b, `", "sensorid": `...)
	b = appendPyString(b, e.Sensor)
	b = append(b, `, "id": "`...)
	b = appendSessionUUID(b, e.SessionID)
	b = append(b, '"')
	b = appendPyAddrPort(b, "src", e.Src)
	b = appendPyAddrPort(b, "dst", e.Dst)
	b = append(b, `, "public_ip": `...)
	b = appendPyOptString(b, publicIP)
	b = append(b, `, "data_type": `...)
	b = appendPyString(b, d.DataType)
	b = append(b, `, "request": `...)
	b = appendPyValue(b, d.Request)
	b = append(b, `, "response": `...)
	b = appendPyValue(b, d.Response)
	b = append(b, `, "event_type": `...)
	b = appendPyOptString(b, d.EventType)
	return append(b, '}')
}

func appendPyAddrPort(b []byte, prefix string, ap netip.AddrPort) []byte {
	if !ap.IsValid() {
		return append(b, `, "`+prefix+`_ip": null, "`+prefix+`_port": null`...)
	}
	b = append(b, `, "`+prefix+`_ip": "`...)
	b = ap.Addr().Unmap().AppendTo(b)
	b = append(b, `", "`+prefix+`_port": `...)
	return strconv.AppendUint(b, uint64(ap.Port()), 10)
}

func appendPyOptString(b []byte, s string) []byte {
	if s == "" {
		return append(b, "null"...)
	}
	return appendPyString(b, s)
}

// appendPyValue writes a document's request or response: null, a string, or any value
// encoding/json can encode (SNMP's {"oid", "val"}), re-spaced as json.dumps spaces it.
func appendPyValue(b []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...)
	case string:
		return appendPyString(b, x)
	}
	j, err := json.Marshal(v)
	if err != nil {
		return append(b, "null"...) // Conpot's logger writes what it cannot encode as null
	}
	// json.Marshal writes no blanks: space the separators outside strings, and write the
	// strings again as json.dumps does.
	for i := 0; i < len(j); {
		switch c := j[i]; c {
		case '"':
			end := i + 1
			for end < len(j) && j[end] != '"' {
				if j[end] == '\\' {
					end++
				}
				end++
			}
			var s string
			if json.Unmarshal(j[i:end+1], &s) != nil {
				return append(b, "null"...)
			}
			b = appendPyString(b, s)
			i = end + 1
		case ',', ':':
			b = append(b, c, ' ')
			i++
		default:
			b = append(b, c)
			i++
		}
	}
	return b
}

// appendPyString writes s as json.dumps does with ensure_ascii: \" \\ \n \r \t \b \f,
// other control characters, DEL and everything beyond ASCII as \uXXXX (surrogate pairs above
// U+FFFF); invalid UTF-8 becomes U+FFFD.
func appendPyString(b []byte, s string) []byte {
	b = append(b, '"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b = append(b, '\\', byte(r))
		case r == '\n':
			b = append(b, '\\', 'n')
		case r == '\r':
			b = append(b, '\\', 'r')
		case r == '\t':
			b = append(b, '\\', 't')
		case r == '\b':
			b = append(b, '\\', 'b')
		case r == '\f':
			b = append(b, '\\', 'f')
		case r < 0x20 || (r >= 0x7f && r <= 0xffff):
			b = appendU4(b, r)
		case r > 0xffff:
			r -= 0x10000
			b = appendU4(b, 0xd800+(r>>10))
			b = appendU4(b, 0xdc00+(r&0x3ff))
		default:
			b = append(b, byte(r))
		}
	}
	return append(b, '"')
}

func appendU4(b []byte, r rune) []byte {
	return append(b, '\\', 'u', hexDigits[r>>12&15], hexDigits[r>>8&15], hexDigits[r>>4&15], hexDigits[r&15])
}
