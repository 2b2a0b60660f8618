package events

import (
	"crypto/sha1"
	"encoding/json"
	"net/netip"
	"strconv"
	"time"

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
	b = AppendPyTime(b, e.Start, e.Time)
	b = append(b, `", "sensorid": `...)
	b = AppendPyString(b, e.Sensor)
	b = append(b, `, "id": "`...)
	b = AppendSessionUUID(b, e.SessionID)
	b = append(b, '"')
	b = AppendPyAddrPort(b, "src", e.Src)
	b = AppendPyAddrPort(b, "dst", e.Dst)
	b = append(b, `, "public_ip": `...)
	b = appendPyOptString(b, publicIP)
	b = append(b, `, "data_type": `...)
	b = AppendPyString(b, d.DataType)
	b = append(b, `, "request": `...)
	b = AppendPyValue(b, d.Request)
	b = append(b, `, "response": `...)
	b = AppendPyValue(b, d.Response)
	b = append(b, `, "event_type": `...)
	b = appendPyOptString(b, d.EventType)
	return append(b, '}')
}

// AppendPyAddrPort writes the <prefix>_ip and <prefix>_port keys of a Conpot document.
func AppendPyAddrPort(b []byte, prefix string, ap netip.AddrPort) []byte {
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
	return AppendPyString(b, s)
}

// AppendPyValue writes a document's request or response: null, a string, or any value
// encoding/json can encode (SNMP's {"oid", "val"}), re-spaced as json.dumps spaces it.
func AppendPyValue(b []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...)
	case string:
		return AppendPyString(b, x)
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
			b = AppendPyString(b, s)
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

// AppendPyString writes s as json.dumps does with ensure_ascii: \" \\ \n \r \t \b \f,
// other control characters, DEL and everything beyond ASCII as \uXXXX (surrogate pairs above
// U+FFFF); invalid UTF-8 becomes U+FFFD.
func AppendPyString(b []byte, s string) []byte {
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
	return append(b, '\\', 'u', jsonHex[r>>12&15], jsonHex[r>>8&15], jsonHex[r>>4&15], jsonHex[r&15])
}

// conpotTimeLayout is Python's datetime.isoformat() of a naive datetime with microseconds;
// without them it drops the fraction (see AppendPyTime).
const conpotTimeLayout = "2006-01-02T15:04:05.000000"

// AppendPyTime writes start (or, when zero, at) as Python's isoformat() of a naive UTC
// datetime: microseconds, and no fraction at all when they are zero.
func AppendPyTime(b []byte, start, at time.Time) []byte {
	t := start
	if t.IsZero() {
		t = at
	}
	t = t.UTC().Truncate(time.Microsecond)
	if t.Nanosecond() == 0 {
		return t.AppendFormat(b, "2006-01-02T15:04:05")
	}
	return t.AppendFormat(b, conpotTimeLayout)
}

// sessionUUIDSpace is the name space of session UUIDs (RFC 9562 §5.5, name-based with
// SHA-1): fa52f727-79da-5bfc-92e5-a1dc68c2f715, the UUIDv5 of "icsnare-session" in the
// URL name space.
var sessionUUIDSpace = [16]byte{0xfa, 0x52, 0xf7, 0x27, 0x79, 0xda, 0x5b, 0xfc, 0x92, 0xe5, 0xa1, 0xdc, 0x68, 0xc2, 0xf7, 0x15}

// SessionUUID returns the UUID that stands for an icsnare session id in Conpot's "id": a
// name-based (version 5) UUID of the id, so every document of a session carries the same
// one and different sessions different ones.
func SessionUUID(sessionID string) string {
	return string(AppendSessionUUID(nil, sessionID))
}

// AppendSessionUUID appends SessionUUID(sessionID).
func AppendSessionUUID(b []byte, sessionID string) []byte {
	h := sha1.New()
	h.Write(sessionUUIDSpace[:])
	h.Write([]byte(sessionID))
	var sum [sha1.Size]byte
	u := h.Sum(sum[:0])[:16]
	u[6] = u[6]&0x0f | 0x50 // version 5
	u[8] = u[8]&0x3f | 0x80 // RFC 9562 variant
	for i, x := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		b = append(b, jsonHex[x>>4], jsonHex[x&15])
	}
	return b
}

// MaxEndedSessions bounds the sessions a ConpotSessions remembers as ended by a protocol's
// own document.
const MaxEndedSessions = 1 << 16

// ConpotSessions turns events into Conpot's documents in the order they come, as Conpot's
// loggers write them: a TCP session whose protocol's own document ended it
// (CONNECTION_TERMINATED …) gets no second end document from the sensor's end event. The
// zero value is ready for use; it is not safe for concurrent use (a sink's one goroutine).
type ConpotSessions struct {
	ended map[string]struct{}
}

// Documents returns the Conpot documents of e; none for an event of no protocol (the XDP
// limiter's …), which Conpot has no counterpart for.
func (c *ConpotSessions) Documents(e *protocols.Event) []protocols.ConpotEvent {
	p, ok := protocols.Lookup(e.Protocol)
	if !ok {
		return nil
	}
	docs := protocols.ConpotDocuments(p, e)
	if e.Phase == protocols.PhaseEnd {
		if _, done := c.ended[e.SessionID]; done {
			docs = nil
		}
		delete(c.ended, e.SessionID)
	}
	for _, d := range docs {
		if e.Phase == "" && e.Transport == protocols.TCP && protocols.ConpotEndsSession(d.EventType) {
			if c.ended == nil || len(c.ended) >= MaxEndedSessions {
				c.ended = map[string]struct{}{} // lost end events must not grow it for ever
			}
			c.ended[e.SessionID] = struct{}{}
		}
	}
	return docs
}

// Remembered returns how many sessions it remembers as ended.
func (c *ConpotSessions) Remembered() int { return len(c.ended) }
