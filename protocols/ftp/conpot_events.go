package ftp

import (
	"bytes"

	"github.com/icsnare/icsnare/protocols"
)

// ConpotEvents implements protocols.ConpotEventer as Conpot logs FTP: the raw bytes of
// every command read and every reply written as two documents ({"request": b'…'} then
// {"response": b'…'}, Python bytes literals as its JSON logger renders them);
// CONNECTION_TERMINATED after QUIT or a 421 that ends the session; CONNECTION_TIMEOUT when
// the control connection times out. The sensor adds NEW_CONNECTION and CONNECTION_LOST.
// Logins, uploads and the rest stay in icsnare's own format.
func (protocol) ConpotEvents(e *protocols.Event) []protocols.ConpotEvent {
	switch e.Type {
	case Name + ".timeout":
		return []protocols.ConpotEvent{{EventType: protocols.ConpotConnectionTimeout}}
	case Name + ".command":
	default:
		return nil
	}
	line := e.Request
	if !bytes.HasSuffix(line, []byte("\n")) {
		line = append(line[:len(line):len(line)], '\r', '\n')
	}
	docs := []protocols.ConpotEvent{{Request: protocols.ConpotBytes(line)}}
	if len(e.Response) > 0 {
		docs = append(docs, protocols.ConpotEvent{Response: protocols.ConpotBytes(e.Response)})
	}
	code, verb := 0, ""
	for _, f := range e.Fields {
		switch f.Key {
		case "code":
			code, _ = f.Value.(int)
		case "command":
			verb, _ = f.Value.(string)
		}
	}
	if verb == "QUIT" || code == 421 {
		docs = append(docs, protocols.ConpotEvent{EventType: protocols.ConpotConnectionTerminated})
	}
	return docs
}
