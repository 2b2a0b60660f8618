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
// NEW_CONNECTION, no backend or TLS events.
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
			req = PythonBytesRepr([]byte(decoded))
		}
	}
	return append(out, protocols.ConpotEvent{DataType: id, Request: req})
}

// PythonBytesRepr writes b as Python's repr of a bytes object: b'…' (b"…" when b holds a
// single quote and no double quote), with \\, \t, \n, \r and the quote escaped and any
// other byte outside printable ASCII as \xhh.
func PythonBytesRepr(b []byte) string {
	quote := byte('\'')
	if strings.IndexByte(string(b), '\'') >= 0 && strings.IndexByte(string(b), '"') < 0 {
		quote = '"'
	}
	const hexd = "0123456789abcdef"
	out := make([]byte, 0, len(b)+3)
	out = append(out, 'b', quote)
	for _, c := range b {
		switch {
		case c == quote || c == '\\':
			out = append(out, '\\', c)
		case c == '\t':
			out = append(out, '\\', 't')
		case c == '\n':
			out = append(out, '\\', 'n')
		case c == '\r':
			out = append(out, '\\', 'r')
		case c < 0x20 || c >= 0x7f:
			out = append(out, '\\', 'x', hexd[c>>4], hexd[c&15])
		default:
			out = append(out, c)
		}
	}
	return string(append(out, quote))
}
