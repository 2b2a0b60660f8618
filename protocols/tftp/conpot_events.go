package tftp

import "github.com/icsnare/icsnare/protocols"

// ConpotEvents implements protocols.ConpotEventer as Conpot logs TFTP: NEW_CONNECTION when
// a read or write request starts a transfer, CONNECTION_TIMEOUT when a transfer times out,
// CONNECTION_LOST when it fails otherwise or the request is refused with a TFTP error. File
// names are not logged (they stay in icsnare's own format).
func (protocol) ConpotEvents(e *protocols.Event) []protocols.ConpotEvent {
	switch e.Type {
	case Name + ".request":
		return []protocols.ConpotEvent{{EventType: protocols.ConpotNewConnection}}
	case Name + ".error":
		return []protocols.ConpotEvent{{EventType: protocols.ConpotConnectionLost}}
	case Name + ".transfer_failed":
		for _, f := range e.Fields {
			if r, ok := f.Value.(string); ok && f.Key == "reason" && r == errGiveUp.Error() {
				return []protocols.ConpotEvent{{EventType: protocols.ConpotConnectionTimeout}}
			}
		}
		return []protocols.ConpotEvent{{EventType: protocols.ConpotConnectionLost}}
	}
	return nil
}
