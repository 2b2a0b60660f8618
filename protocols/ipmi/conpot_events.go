package ipmi

import "github.com/icsnare/icsnare/protocols"

// ConpotEvents implements protocols.ConpotEventer. Conpot's IPMI never opens an attack
// session, so its JSON log holds nothing for IPMI (Conpot issue #443); icsnare writes one
// document per answered or refused message with the RMCP datagrams as protocols.ConpotHex,
// in the shape Conpot uses for its other binary protocols, so T-Pot sees IPMI traffic at
// all. Authentication and session summaries stay in icsnare's own format.
func (protocol) ConpotEvents(e *protocols.Event) []protocols.ConpotEvent {
	if e.Request == nil {
		return nil
	}
	d := protocols.ConpotEvent{Request: protocols.ConpotHex(e.Request)}
	if e.Response != nil {
		d.Response = protocols.ConpotHex(e.Response)
	}
	return []protocols.ConpotEvent{d}
}
