package protocols

import (
	"sort"
	"strings"
	"sync"
)

// StreamDecoder turns one proxied connection's bytes into readable text for events, as
// Conpot's proxy decoders do (a Kamstrup frame becomes "Request for 1 register(s): …").
// A decoder lives as long as one connection, so it may keep a partial frame between calls.
type StreamDecoder interface {
	// DecodeIn decodes bytes the client sent towards the backend.
	DecodeIn(b []byte) string
	// DecodeOut decodes bytes the backend sent back to the client.
	DecodeOut(b []byte) string
}

var (
	decMu    sync.RWMutex
	decoders = map[string]func() StreamDecoder{}
)

// RegisterDecoder makes a decoder available to proxy sections under name: the Conpot class
// path a template's <decoder> names (e.g.
// "conpot.protocols.kamstrup_meter.decoder_382.Decoder382"). Protocol packages call it
// from init.
func RegisterDecoder(name string, factory func() StreamDecoder) {
	decMu.Lock()
	defer decMu.Unlock()
	if _, dup := decoders[name]; dup {
		panic("protocols: decoder registered twice: " + name)
	}
	decoders[name] = factory
}

// LookupDecoder returns the decoder factory registered under name.
func LookupDecoder(name string) (func() StreamDecoder, bool) {
	decMu.RLock()
	defer decMu.RUnlock()
	f, ok := decoders[strings.TrimSpace(name)]
	return f, ok
}

// DecoderNames lists the registered decoders, sorted.
func DecoderNames() []string {
	decMu.RLock()
	defer decMu.RUnlock()
	out := make([]string, 0, len(decoders))
	for n := range decoders {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
