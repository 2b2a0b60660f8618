package protocols

import (
	"sync"
	"time"
)

// Volume control: a session keeps its first KeepEvents request events, and after them
// only the notable ones (writes, state changes, errors); the others are summarised for the
// session's end event instead of written one by one.

// maxSummaryKinds bounds the kinds a session summary counts one by one; the rest count
// under "other".
const maxSummaryKinds = 32

// Summary is what a session summarised instead of emitting: written in its end event.
type Summary struct {
	Events   int64            `json:"events"`
	Kinds    map[string]int64 `json:"kinds"` // by request kind (Request's kind), or event type
	BytesIn  int64            `json:"bytes_in"`
	BytesOut int64            `json:"bytes_out"`
	First    time.Time        `json:"first"`
	Last     time.Time        `json:"last"`
}

// volume is a session's volume-control state.
type volume struct {
	mu      sync.Mutex
	emitted int
	notable bool
	kind    string
	sum     *Summary
	// A run of summarised requests of one kind is counted here and folded into
	// sum.Kinds when the kind changes or the summary is read: a session repeating one
	// request costs no map update per request.
	runKind string
	runN    int64
}

// foldRun adds the pending run of one kind to the summary's kinds; v.mu held.
func (v *volume) foldRun() {
	if v.runN == 0 {
		return
	}
	kind := v.runKind
	if _, ok := v.sum.Kinds[kind]; !ok && len(v.sum.Kinds) >= maxSummaryKinds-1 { // one left for "other"
		kind = "other"
	}
	v.sum.Kinds[kind] += v.runN
	v.runKind, v.runN = "", 0
}

// Notable marks the session's next event as one volume control always keeps: a write,
// a state change (start, stop, login …). Request with failed set marks errors the same way.
func (s *Session) Notable() {
	if s.KeepEvents <= 0 {
		return
	}
	s.vol.mu.Lock()
	s.vol.notable = true
	s.vol.mu.Unlock()
}

// NotableIf marks the session's next event notable (see Notable) when cond holds.
func (s *Session) NotableIf(cond bool) {
	if cond {
		s.Notable()
	}
}

// noteRequest remembers the kind of the request being handled, and marks a failed one
// notable.
func (s *Session) noteRequest(kind string, failed bool) {
	if s.KeepEvents <= 0 {
		return
	}
	s.vol.mu.Lock()
	s.vol.kind = kind
	if failed {
		s.vol.notable = true
	}
	s.vol.mu.Unlock()
}

// summarise reports whether the event about to be emitted is summarised instead (the
// session is past KeepEvents and the event is not notable: marked by the protocol, a
// failed request, or a write or state change by ClassifyAction), and counts it if so.
func (s *Session) summarise(typ string, req, resp []byte, fields []Field) bool {
	return s.summariseOrPeek(typ, req, resp, fields, false, nil)
}

// Skip is for a protocol that builds an event's fields only when the event is kept: it
// reports whether an event of type typ need not be built, because the session has no
// emitter or volume control summarises it (counting it in the summary, as Emit would).
// When it returns false the session is left as it was, for the Emit that follows with the
// full fields. fields need only hold what ClassifyAction reads for typ (Modbus's
// function_code, SNMP's pdu, BACnet's service, s7comm's function), so the request path
// builds nothing for a summarised event.
func (s *Session) Skip(typ string, req, resp []byte, fields ...Field) bool {
	if s.Events == nil {
		return true
	}
	if s.KeepEvents <= 0 {
		return false
	}
	return s.summariseOrPeek(s.qualified(typ), req, resp, fields, true, nil)
}

// RequestSkip is Request(kind, failed) followed by Skip(typ, req, resp, fields...), with
// one volume-control lock instead of two: for the request path of a protocol that builds
// its event's fields only for a kept event.
func (s *Session) RequestSkip(kind string, failed bool, typ string, req, resp []byte, fields ...Field) bool {
	s.countRequest(kind, failed)
	if s.Events == nil || s.KeepEvents <= 0 {
		s.noteRequest(kind, failed)
		return s.Events == nil
	}
	return s.summariseOrPeek(s.qualified(typ), req, resp, fields, true, &requestNote{kind, failed})
}

// requestNote is what Request tells volume control of the request being handled.
type requestNote struct {
	kind   string
	failed bool
}

// summariseOrPeek is summarise; with peek, an event that is kept leaves the volume state
// untouched (Skip's Emit follows and decides again, the same way). A note (RequestSkip's)
// is taken first, under the same lock, as noteRequest takes it.
func (s *Session) summariseOrPeek(typ string, req, resp []byte, fields []Field, peek bool, note *requestNote) bool {
	if s.KeepEvents <= 0 {
		return false
	}
	v := &s.vol
	v.mu.Lock()
	if note != nil {
		v.kind = note.kind
		v.notable = v.notable || note.failed
	}
	notable, kind := v.notable, v.kind
	if !notable && v.emitted >= s.KeepEvents {
		_, notable = ClassifyAction(typ, fields)
	}
	if v.emitted < s.KeepEvents || notable {
		if !peek {
			v.notable, v.kind = false, ""
			v.emitted++
		}
		v.mu.Unlock()
		return false
	}
	v.notable, v.kind = false, ""
	// The session's last activity is the request being summarised (Request and Received
	// mark it), which spares a clock read per event.
	now := s.activeOrNow().UTC()
	if v.sum == nil {
		v.sum = &Summary{Kinds: map[string]int64{}, First: now}
	}
	if kind == "" {
		kind = typ
	}
	if kind != v.runKind {
		v.foldRun()
		v.runKind = kind
	}
	v.runN++
	v.sum.Events++
	v.sum.BytesIn += int64(len(req))
	v.sum.BytesOut += int64(len(resp))
	v.sum.Last = now
	v.mu.Unlock()
	if s.OnSummarised != nil {
		s.OnSummarised(s, len(req), len(resp))
	}
	return true
}

// Summary returns a copy of what the session summarised so far, or nil when nothing.
func (s *Session) Summary() *Summary {
	s.vol.mu.Lock()
	defer s.vol.mu.Unlock()
	if s.vol.sum == nil {
		return nil
	}
	s.vol.foldRun()
	c := *s.vol.sum
	c.Kinds = make(map[string]int64, len(s.vol.sum.Kinds))
	for k, n := range s.vol.sum.Kinds {
		c.Kinds[k] = n
	}
	return &c
}

// activeOrNow is the session's last activity, or now for a session that saw none.
func (s *Session) activeOrNow() time.Time {
	if t := s.life.last.Load(); t != 0 {
		return time.Unix(0, t)
	}
	return time.Now()
}

// RequestTime is when the request being handled arrived, as the transport marked it (a
// UDP flow's datagram, a TCP session's last read), so a protocol that needs the time of a
// request reads no clock of its own; now when the session has no such mark.
func (s *Session) RequestTime() time.Time {
	if t := s.life.heard.Load(); t != 0 {
		return time.Unix(0, t)
	}
	return time.Now()
}
