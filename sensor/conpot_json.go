package sensor

import (
	"github.com/icsnare/icsnare/events"
	"github.com/icsnare/icsnare/protocols"
)

// AppendConpotDocument appends one document of Conpot's JSON logger
// (events.AppendConpotDocument).
func AppendConpotDocument(b []byte, e *protocols.Event, d protocols.ConpotEvent, publicIP string) []byte {
	return events.AppendConpotDocument(b, e, d, publicIP)
}

// SessionUUID returns the UUID that stands for an icsnare session id in Conpot's "id"
// (events.SessionUUID).
func SessionUUID(sessionID string) string { return events.SessionUUID(sessionID) }
