package bacnet

import "github.com/icsnare/icsnare/protocols"

// ConpotEvents implements protocols.ConpotEventer: Conpot's BACnet logs one NEW_CONNECTION
// document per datagram and never the request's content, so neither does this (the
// request and response stay in icsnare's own format).
func (protocol) ConpotEvents(e *protocols.Event) []protocols.ConpotEvent {
	if e.Type != Name+".request" {
		return nil
	}
	return []protocols.ConpotEvent{{EventType: protocols.ConpotNewConnection}}
}
