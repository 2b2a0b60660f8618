package modbus

import "github.com/icsnare/icsnare/protocols"

// ConpotEvents implements protocols.ConpotEventer: one document per request with the whole
// request ADU and the response PDU (without its MBAP header, as Conpot logs it) as
// protocols.ConpotHex, and CONNECTION_TERMINATED for a frame Conpot would end the
// connection on (a bad MBAP length, a truncated frame). The sensor adds NEW_CONNECTION and
// CONNECTION_LOST.
func (protocol) ConpotEvents(e *protocols.Event) []protocols.ConpotEvent {
	switch e.Type {
	case evRequest:
		d := protocols.ConpotEvent{Request: protocols.ConpotHex(e.Request)}
		if e.Response != nil {
			d.Response = protocols.ConpotHex(responsePDU(e.Response))
		}
		return []protocols.ConpotEvent{d}
	case evBadFrame, evPartialFrame:
		return []protocols.ConpotEvent{{EventType: protocols.ConpotConnectionTerminated}}
	}
	return nil
}

// responsePDU strips the MBAP header from a response ADU.
func responsePDU(adu []byte) []byte {
	if len(adu) < HeaderLen {
		return adu
	}
	return adu[HeaderLen:]
}
