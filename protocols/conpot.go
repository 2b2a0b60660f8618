package protocols

import "encoding/hex"

// ConpotEvent is one document as Conpot's JSON logger writes it for an event: the protocol
// name Conpot logs (data_type), its event type ("" is written as null) and the request and
// response values (nil is written as null; a string, or a JSON-encodable value such as
// SNMP's {"oid": …, "val": …}). The sensor adds the session fields (timestamp, sensorid,
// id, addresses, public_ip).
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
// protocol's. A protocol that does not implement it gets one document per request event
// with the request and response as ConpotHex (or text for text events).
type ConpotEventer interface {
	ConpotEvents(e *Event) []ConpotEvent
}

// ConpotHex formats b as Conpot logs raw frames: the hex digits written as a Python bytes
// literal, b'0001…'.
func ConpotHex(b []byte) string {
	out := make([]byte, 0, 3+2*len(b))
	out = append(out, 'b', '\'')
	out = hex.AppendEncode(out, b)
	return string(append(out, '\''))
}
