package s7comm

import "github.com/icsnare/icsnare/protocols"

// ConpotEvents implements protocols.ConpotEventer: one document per exchange with the
// request and reply frames (TPKT included) as protocols.ConpotHex, as Conpot logs them; the
// sensor adds NEW_CONNECTION and CONNECTION_LOST.
func (protocol) ConpotEvents(e *protocols.Event) []protocols.ConpotEvent {
	if e.Request == nil && e.Response == nil {
		return nil
	}
	d := protocols.ConpotEvent{Request: protocols.ConpotHex(e.Request)}
	if e.Response != nil {
		d.Response = protocols.ConpotHex(e.Response)
	}
	return []protocols.ConpotEvent{d}
}
