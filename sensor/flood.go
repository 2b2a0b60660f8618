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

// floodShards spreads the table over locks: a session counts in the shard of its stripe,
// so sessions served on different CPUs do not take one lock per summarised event. A
// flush merges the shards.
const floodShards = 8

// floodTable counts summarised events per key for the current minute.
type floodTable struct {
	shards [floodShards]floodShard
}

// floodShard is one lock's part of the table; each shard holds at most
// maxFloodKeys/floodShards keys.
type floodShard struct {
	mu     sync.Mutex
	counts map[floodKey]*floodCount
	other  int64    // events past the shard's keys
	gen    uint64   // counts a take: a cursor from an earlier one is stale
	_      [64]byte // the next shard's lock on another cache line
}

// floodCursor is one session's place in its shard: the count its summarised events go
// to in the shard's current generation, the session already among that count's
// sessions. A session's key never changes, so while the generation holds, its next event
// needs neither the key nor a map. Read and written under the shard's lock only.
type floodCursor struct {
	gen uint64
	c   *floodCount // nil: none (no event yet, or the shard's keys were full)
}

// hook returns the OnSummarised function of one session: it counts the session's
// summarised events through a cursor of its own.
func (f *floodTable) hook() func(*protocols.Session, int, int) {
	cur := new(floodCursor)
	return func(sess *protocols.Session, reqBytes, respBytes int) { f.count(sess, cur, reqBytes, respBytes) }
}

func newFloodTable() *floodTable {
	f := &floodTable{}
	for i := range f.shards {
		f.shards[i].counts = map[floodKey]*floodCount{}
	}
	return f
}

// add counts one summarised event of sess.
func (f *floodTable) add(sess *protocols.Session, reqBytes, respBytes int) {
	f.count(sess, nil, reqBytes, respBytes)
}

// count is add through the session's cursor (nil: none).
func (f *floodTable) count(sess *protocols.Session, cur *floodCursor, reqBytes, respBytes int) {
	now := sess.LastActive() // the summarised request's time: spares a clock read per event
	if now.Unix() <= 0 {
		now = time.Now()
	}
	sh := &f.shards[sess.Stripe%floodShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if cur != nil && cur.c != nil && cur.gen == sh.gen {
		cur.c.events++
		cur.c.bytesIn += int64(reqBytes)
		cur.c.bytesOut += int64(respBytes)
		cur.c.last = now
		return
	}
	k := floodKey{port: sess.Local.Port(), protocol: sess.Protocol, prefix: sourcePrefix(sess.Remote.Addr().Unmap())}
	c, ok := sh.counts[k]
	if !ok {
		if len(sh.counts) >= maxFloodKeys/floodShards {
			sh.other++
			return
		}
		c = &floodCount{sessions: map[*protocols.Session]struct{}{}, first: now}
		sh.counts[k] = c
	}
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
	if cur != nil {
		cur.gen, cur.c = sh.gen, c
	}
}

// take empties the table and returns what it counted, the shards merged.
func (f *floodTable) take() (map[floodKey]*floodCount, int64) {
	var counts map[floodKey]*floodCount
	var other int64
	for i := range f.shards {
		sh := &f.shards[i]
		sh.mu.Lock()
		part, o := sh.counts, sh.other
		sh.counts, sh.other = map[floodKey]*floodCount{}, 0
		sh.gen++
		sh.mu.Unlock()
		other += o
		if counts == nil {
			counts = part
			continue
		}
		for k, c := range part {
			if into, ok := counts[k]; ok {
				into.merge(c)
				c.sessions = nil // a session's stale cursor may keep c, but not the sessions
			} else {
				counts[k] = c
			}
		}
	}
	return counts, other
}

// merge adds o's counts to c.
func (c *floodCount) merge(o *floodCount) {
	c.events += o.events
	c.bytesIn += o.bytesIn
	c.bytesOut += o.bytesOut
	if o.first.Before(c.first) {
		c.first = o.first
	}
	if o.last.After(c.last) {
		c.last = o.last
	}
	c.sessionsOver = c.sessionsOver || o.sessionsOver
	for s := range o.sessions {
		if len(c.sessions) >= maxFloodSessions {
			if _, seen := c.sessions[s]; !seen {
				c.sessionsOver = true
			}
			continue
		}
		c.sessions[s] = struct{}{}
	}
}

// flush emits one flood.summary event per key counted since the last flush, and resets.
func (f *floodTable) flush(emit protocols.Emitter, sensorID string) {
	counts, other := f.take()
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
		c.sessions = nil // a session's stale cursor may keep c, but not the sessions
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
