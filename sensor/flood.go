package sensor

import (
	"net/netip"
	"sync"
	"time"

	"github.com/icsnare/icsnare/protocols"
)

// Flood aggregates: the request events volume control summarised instead of writing them,
// counted per (destination port, protocol, source /24 or /64) and minute, and written once
// a minute as flood.summary events.

// maxFloodKeys bounds the keys counted in a minute; past it, the minute's other events
// count under a key with no prefix.
const maxFloodKeys = 4096

// FloodSummaryEvent is the event type of the flood aggregates.
const FloodSummaryEvent = "flood.summary"

// SessionSummaryEvent is the event type (after the protocol's name) a UDP flow writes at
// its end with what volume control summarised; a TCP session's disconnect event carries it.
const SessionSummaryEvent = "session_summary"

type floodKey struct {
	port     uint16
	protocol string
	prefix   netip.Prefix
}

type floodCount struct {
	events, bytesIn, bytesOut int64
	sessions                  map[*protocols.Session]struct{} // bounded by maxFloodSessions
	sessionsOver              bool
	first, last               time.Time
}

// maxFloodSessions bounds the sessions a key remembers to count distinct ones.
const maxFloodSessions = 1024

// floodTable counts summarised events per key for the current minute.
type floodTable struct {
	mu     sync.Mutex
	counts map[floodKey]*floodCount
	other  int64 // events past maxFloodKeys
	// lastKey and last are the key counted last and its count in counts (nil: none).
	lastKey floodKey
	last    *floodCount
}

func newFloodTable() *floodTable { return &floodTable{counts: map[floodKey]*floodCount{}} }

// add counts one summarised event of sess.
func (f *floodTable) add(sess *protocols.Session, reqBytes, respBytes int) {
	k := floodKey{port: sess.Local.Port(), protocol: sess.Protocol, prefix: sourcePrefix(sess.Remote.Addr().Unmap())}
	now := sess.LastActive() // the summarised request's time: spares a clock read per event
	if now.Unix() <= 0 {
		now = time.Now()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.last, f.last != nil && f.lastKey == k // a flood comes mostly from one key
	if !ok {
		c, ok = f.counts[k]
	}
	if !ok {
		if len(f.counts) >= maxFloodKeys {
			f.other++
			return
		}
		c = &floodCount{sessions: map[*protocols.Session]struct{}{}, first: now}
		f.counts[k] = c
	}
	f.lastKey, f.last = k, c
	c.events++
	c.bytesIn += int64(reqBytes)
	c.bytesOut += int64(respBytes)
	c.last = now
	if _, seen := c.sessions[sess]; !seen {
		if len(c.sessions) < maxFloodSessions {
			c.sessions[sess] = struct{}{}
		} else {
			c.sessionsOver = true
		}
	}
}

// flush emits one flood.summary event per key counted since the last flush, and resets.
func (f *floodTable) flush(emit protocols.Emitter, sensorID string) {
	f.mu.Lock()
	counts, other := f.counts, f.other
	f.counts, f.other, f.last = map[floodKey]*floodCount{}, 0, nil
	f.mu.Unlock()
	for k, c := range counts {
		e := protocols.NewEvent()
		e.Time, e.Start, e.Type, e.Protocol, e.Sensor = c.last.UTC(), c.first.UTC(), FloodSummaryEvent, k.protocol, sensorID
		sessions := any(len(c.sessions))
		if c.sessionsOver {
			sessions = ">" + itoa(maxFloodSessions)
		}
		e.Fields = append(e.Fields[:0], protocols.F("source_prefix", k.prefix.String()), protocols.F("port", k.port),
			protocols.F("events", c.events), protocols.F("bytes_in", c.bytesIn), protocols.F("bytes_out", c.bytesOut),
			protocols.F("sessions", sessions), protocols.F("first", c.first.UTC().Format(time.RFC3339Nano)),
			protocols.F("last", c.last.UTC().Format(time.RFC3339Nano)))
		emit.Emit(e)
	}
	if other > 0 {
		e := protocols.NewEvent()
		e.Time, e.Type, e.Sensor = time.Now().UTC(), FloodSummaryEvent, sensorID
		e.Fields = append(e.Fields[:0], protocols.F("events", other), protocols.F("keys_over", maxFloodKeys))
		emit.Emit(e)
	}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}
