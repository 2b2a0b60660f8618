package enip

import "github.com/icsnare/icsnare/protocols"

// ConpotSession implements protocols.ConpotSessioner: Conpot's EtherNet/IP logs
// NEW_CONNECTION when a TCP connection opens and nothing when it closes.
func (protocol) ConpotSession() protocols.ConpotSession {
	return protocols.ConpotSession{Start: protocols.ConpotNewConnection}
}

// ConpotEvents implements protocols.ConpotEventer as Conpot logs EtherNet/IP: a
// CONNECTION_CLOSED document after every processed transaction, no request or response
// content; over UDP each request also opens with NEW_CONNECTION, and a datagram that does
// not parse gives CONNECTION_FAILED.
func (protocol) ConpotEvents(e *protocols.Event) []protocols.ConpotEvent {
	udp := e.Transport == protocols.UDP
	switch e.Type {
	case evRequest, evWrite:
		if udp {
			return []protocols.ConpotEvent{{EventType: protocols.ConpotNewConnection}, {EventType: protocols.ConpotConnectionClosed}}
		}
		return []protocols.ConpotEvent{{EventType: protocols.ConpotConnectionClosed}}
	case evBadFrame:
		if udp {
			return []protocols.ConpotEvent{{EventType: protocols.ConpotConnectionFailed}}
		}
	}
	return nil
}
