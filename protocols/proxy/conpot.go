package proxy

import (
	"strings"

	"github.com/icsnare/icsnare/protocols"
)

// ConpotEvents implements protocols.ConpotEventer with what Conpot's JSON logger writes
// for a proxy: its data_type is the proxy's id (the name lower-cased, spaces as
// underscores). Conpot logs each chunk as {"raw_request": hex, "raw_response": ""} (or the
// other way round), keys its JSON logger drops, so the document has null request and
// response; with a decoder a second document follows: the decoded request as "request",
// and for a decoded response an empty "request" (Conpot files the decoded response under
// "raw_response", which the logger drops too). The AsciiDecoder returns bytes, which the
// logger writes as Python's repr (b'...'). Conpot logs nothing else for a proxy: no
// backend or TLS events, and no session documents (see ConpotSession).
func (protocol) ConpotEvents(e *protocols.Event) []protocols.ConpotEvent {
	var id, decoded, decoder string
	var hasDecoded bool
	for _, f := range e.Fields {
		switch f.Key {
		case "proxy_id":
			id, _ = f.Value.(string)
		case "decoded":
			decoded, hasDecoded = f.Value.(string)
		case "decoder":
			decoder, _ = f.Value.(string)
		}
	}
	if id == "" {
		return nil
	}
	var in bool
	switch strings.TrimPrefix(e.Type, Name+".") {
	case "request":
		in = true
	case "response":
	default:
		return nil
	}
	out := []protocols.ConpotEvent{{DataType: id}}
	if !hasDecoded {
		return out
	}
	var req any = ""
	if in {
		req = decoded
		if decoder == AsciiDecoderName {
			req = protocols.ConpotBytes([]byte(decoded))
		}
	}
	return append(out, protocols.ConpotEvent{DataType: id, Request: req})
}

// ConpotSession implements protocols.ConpotSessioner: Conpot writes no NEW_CONNECTION or
// CONNECTION_LOST for a proxy's connections, and its data_type is per proxy (set by
// ConpotEvents).
func (protocol) ConpotSession() protocols.ConpotSession { return protocols.ConpotSession{} }
