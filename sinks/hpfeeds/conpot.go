package hpfeeds

import (
	"crypto/sha1"
	"encoding/json"
	"net/netip"
	"strconv"
	"time"

	"github.com/icsnare/icsnare/protocols"
)

// AppendConpotRecord appends the payload Conpot's hpfeeds logger publishes for one of its
// documents: json.dumps of the session record (id, remote, src_ip, src_port, local, dst_ip,
// dst_port, data_type, timestamp, public_ip, data) with Python's separators and ASCII
// escapes, data holding the document's type, request and response. id is the UUID that
// stands for the session in the sensor's Conpot JSON; publicIP "" is null.
func AppendConpotRecord(b []byte, e *protocols.Event, d protocols.ConpotEvent, publicIP string) []byte {
	b = append(b, `{"id": "`...)
	b = appendSessionUUID(b, e.SessionID)
	b = append(b, `", "remote": `...)
	b = appendPyPair(b, e.Src)
	b = appendPyAddrPort(b, "src", e.Src)
	b = append(b, `, "local": `...)
	b = appendPyPair(b, e.Dst)
	b = appendPyAddrPort(b, "dst", e.Dst)
	b = append(b, `, "data_type": `...)
	b = appendPyString(b, d.DataType)
	b = append(b, `, "timestamp": "`...)
	b = appendPyTime(b, e.Start, e.Time)
	b = append(b, `", "public_ip": `...)
	if publicIP == "" {
		b = append(b, "null"...)
	} else {
		b = appendPyString(b, publicIP)
	}
	b = append(b, `, "data": {`...)
	sep := ""
	if d.EventType != "" {
		b = append(b, `"type": `...)
		b = appendPyString(b, d.EventType)
		sep = ", "
	}
	if d.Request != nil || d.EventType == "" {
		b = append(b, sep...)
		b = append(b, `"request": `...)
		b = appendPyValue(b, d.Request)
		sep = ", "
	}
	if d.Response != nil || d.EventType == "" {
		b = append(b, sep...)
		b = append(b, `"response": `...)
		b = appendPyValue(b, d.Response)
	}
	return append(b, "}}"...)
}

// appendPyPair writes an address as Python's json.dumps writes a (host, port) tuple.
func appendPyPair(b []byte, ap netip.AddrPort) []byte {
	if !ap.IsValid() {
		return append(b, "[null, null]"...)
	}
	b = append(b, `["`...)
	b = ap.Addr().Unmap().AppendTo(b)
	b = append(b, `", `...)
	b = strconv.AppendUint(b, uint64(ap.Port()), 10)
	return append(b, ']')
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

// appendPyTime writes start (or, when zero, at) as Python's isoformat() of a naive UTC
// datetime: microseconds, none at all when they are zero.
func appendPyTime(b []byte, start, at time.Time) []byte {
	t := start
	if t.IsZero() {
		t = at
	}
	t = t.UTC().Truncate(time.Microsecond)
	if t.Nanosecond() == 0 {
		return t.AppendFormat(b, "2006-01-02T15:04:05")
	}
	return t.AppendFormat(b, "2006-01-02T15:04:05.000000")
}

// appendPyValue writes a request or response: null, a string, or a value encoding/json
// encodes (SNMP's {"oid", "val"}), spaced as json.dumps spaces it.
func appendPyValue(b []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...)
	case string:
		return appendPyString(b, x)
	}
	j, err := json.Marshal(v)
	if err != nil {
		return append(b, "null"...) // what Conpot's json_default makes of what it cannot encode
	}
	// encoding/json writes no blanks and keeps the order of struct fields: space the
	// separators outside strings, and write each string again as json.dumps writes it.
	out := b
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
			if end >= len(j) || json.Unmarshal(j[i:end+1], &s) != nil {
				return append(b, "null"...)
			}
			out = appendPyString(out, s)
			i = end + 1
		case ',', ':':
			out = append(out, c, ' ')
			i++
		default:
			out = append(out, c)
			i++
		}
	}
	return out
}

// appendPyString writes s as json.dumps does with ensure_ascii: \" \\ \n \r \t \b \f, other
// control characters, DEL and everything beyond ASCII as \uXXXX (surrogate pairs above
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

const hexDigits = "0123456789abcdef"

func appendU4(b []byte, r rune) []byte {
	return append(b, '\\', 'u', hexDigits[r>>12&15], hexDigits[r>>8&15], hexDigits[r>>4&15], hexDigits[r&15])
}

// sessionUUIDSpace is the name space of the UUIDs that stand for icsnare session ids in
// Conpot's "id" (the sensor's Conpot JSON uses the same: fa52f727-79da-5bfc-92e5-a1dc68c2f715).
var sessionUUIDSpace = [16]byte{0xfa, 0x52, 0xf7, 0x27, 0x79, 0xda, 0x5b, 0xfc, 0x92, 0xe5, 0xa1, 0xdc, 0x68, 0xc2, 0xf7, 0x15}

// appendSessionUUID writes the name-based (version 5) UUID of a session id.
func appendSessionUUID(b []byte, sessionID string) []byte {
	h := sha1.New()
	h.Write(sessionUUIDSpace[:])
	h.Write([]byte(sessionID))
	var sum [sha1.Size]byte
	u := h.Sum(sum[:0])[:16]
	u[6] = u[6]&0x0f | 0x50
	u[8] = u[8]&0x3f | 0x80
	for i, x := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		b = append(b, hexDigits[x>>4], hexDigits[x&15])
	}
	return b
}
