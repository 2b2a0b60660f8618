package protocols

import (
	"encoding/hex"
	"strings"
)

// ConpotEvent is one document as Conpot's JSON logger writes it for an event: the protocol
// name Conpot logs (data_type), its event type ("" is written as null) and the request and
// response values (nil is written as null; a string, or a JSON-encodable value such as
// SNMP's {"oid": …, "val": …}). The sensor adds the session fields (timestamp, sensorid,
// id, addresses, public_ip). An empty DataType is the protocol's Conpot data_type (see
// ConpotSession).
type ConpotEvent struct {
	DataType  string
	EventType string
	Request   any
	Response  any
}

// ConpotEventer is implemented by a Protocol whose events have Conpot counterparts.
// ConpotEvents returns the documents Conpot would log for e, in order (none when Conpot
// logs nothing for it). The sensor writes them with the "conpot" events format; session
// start and end documents (NEW_CONNECTION, CONNECTION_LOST …) are the sensor's, not the
// protocol's (see ConpotSessioner). A protocol that does not implement it gets one document
// per event that carries a request or a response, with them as ConpotHex (or text for text
// events). The sensor never passes its own session start and end events (Event.Phase) to
// ConpotEvents.
type ConpotEventer interface {
	ConpotEvents(e *Event) []ConpotEvent
}

// Conpot's session event types, as its JSON logger writes them in event_type.
const (
	ConpotNewConnection        = "NEW_CONNECTION"
	ConpotConnectionLost       = "CONNECTION_LOST"
	ConpotConnectionTerminated = "CONNECTION_TERMINATED"
	ConpotConnectionQuit       = "CONNECTION_QUIT"
	ConpotConnectionTimeout    = "CONNECTION_TIMEOUT"
	ConpotConnectionClosed     = "CONNECTION_CLOSED"
	ConpotConnectionFailed     = "CONNECTION_FAILED"
)

// ConpotEndsSession reports whether a document of this event type ends its session in
// Conpot's log: after one, the sensor writes no ConpotSession.End document for the session.
// (ENIP's CONNECTION_CLOSED follows every transaction, not the session's end.)
func ConpotEndsSession(eventType string) bool {
	switch eventType {
	case ConpotConnectionLost, ConpotConnectionTerminated, ConpotConnectionQuit, ConpotConnectionTimeout:
		return true
	}
	return false
}

// ConpotSession says what Conpot logs around a protocol's sessions.
type ConpotSession struct {
	// DataType is Conpot's name for the protocol in data_type ("IEC104",
	// "kamstrup_protocol" …); "" is the protocol's own name.
	DataType string
	// Start is the event type of the document written when a TCP connection opens ("" for
	// none: HTTP, a proxy); End the one written when it closes, unless a document of the
	// protocol's already ended the session (ConpotEndsSession).
	Start, End string
}

// ConpotSessioner is implemented by a Protocol whose Conpot session documents differ from
// the default: NEW_CONNECTION when a TCP connection opens, CONNECTION_LOST when it closes,
// data_type the protocol's name. UDP flows have no start and end documents of the sensor's;
// a UDP protocol writes Conpot's (BACnet's NEW_CONNECTION per datagram) from ConpotEvents.
type ConpotSessioner interface {
	ConpotSession() ConpotSession
}

// ConpotSessionOf returns p's Conpot session documents, with the defaults filled in.
func ConpotSessionOf(p Protocol) ConpotSession {
	cs := ConpotSession{Start: ConpotNewConnection, End: ConpotConnectionLost}
	if s, ok := p.(ConpotSessioner); ok {
		cs = s.ConpotSession()
	}
	if cs.DataType == "" {
		cs.DataType = p.Name()
	}
	return cs
}

// ConpotDocuments returns the Conpot documents for e of protocol p, with DataType filled
// in: the session start or end document for the sensor's session events (TCP only), the
// protocol's ConpotEvents otherwise, or the default of one document per event with a
// request or a response.
func ConpotDocuments(p Protocol, e *Event) []ConpotEvent {
	cs := ConpotSessionOf(p)
	var docs []ConpotEvent
	switch e.Phase {
	case PhaseStart, PhaseEnd:
		typ := cs.Start
		if e.Phase == PhaseEnd {
			typ = cs.End
		}
		if typ == "" || e.Transport != TCP {
			return nil
		}
		docs = []ConpotEvent{{EventType: typ}}
	default:
		if ce, ok := p.(ConpotEventer); ok {
			docs = ce.ConpotEvents(e)
		} else if e.Request != nil || e.Response != nil {
			docs = []ConpotEvent{{Request: conpotPayload(e.Request, e.Text), Response: conpotPayload(e.Response, e.Text)}}
		}
	}
	for i := range docs {
		if docs[i].DataType == "" {
			docs[i].DataType = cs.DataType
		}
	}
	return docs
}

func conpotPayload(b []byte, text bool) any {
	switch {
	case b == nil:
		return nil
	case text:
		return string(b)
	}
	return ConpotHex(b)
}

// ConpotHex formats b as Conpot logs raw frames: the hex digits written as a Python bytes
// literal, b'0001…'.
func ConpotHex(b []byte) string {
	out := make([]byte, 0, 3+2*len(b))
	out = append(out, 'b', '\'')
	out = hex.AppendEncode(out, b)
	return string(append(out, '\''))
}

// ConpotBytes formats b as Conpot's JSON logger writes a raw bytes value: Python's repr of
// a bytes object (b'USER x\r\n'), as str(bytes) renders it.
func ConpotBytes(b []byte) string {
	quote := byte('\'')
	if strings.IndexByte(string(b), '\'') >= 0 && strings.IndexByte(string(b), '"') < 0 {
		quote = '"'
	}
	out := make([]byte, 0, len(b)+3)
	out = append(out, 'b', quote)
	for _, c := range b {
		out = appendPyByte(out, c, quote)
	}
	return string(append(out, quote))
}

// PyRepr formats s as Python's repr of a str does: single quotes unless s holds a single
// quote and no double quote; backslash, the quote and control characters escaped.
func PyRepr(s string) string {
	quote := byte('\'')
	if strings.IndexByte(s, '\'') >= 0 && strings.IndexByte(s, '"') < 0 {
		quote = '"'
	}
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte(quote)
	for _, r := range s {
		switch {
		case r == '\\' || r == rune(quote):
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			b.WriteString(`\x`)
			b.WriteByte(hexDigits[r>>4])
			b.WriteByte(hexDigits[r&15])
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte(quote)
	return b.String()
}

const hexDigits = "0123456789abcdef"

func appendPyByte(out []byte, c, quote byte) []byte {
	switch {
	case c == '\\' || c == quote:
		return append(out, '\\', c)
	case c == '\t':
		return append(out, '\\', 't')
	case c == '\n':
		return append(out, '\\', 'n')
	case c == '\r':
		return append(out, '\\', 'r')
	case c < 0x20 || c >= 0x7f:
		return append(out, '\\', 'x', hexDigits[c>>4], hexDigits[c&15])
	}
	return append(out, c)
}
