package sensor

import (
	"io"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols"
)

type eventList struct {
	mu sync.Mutex
	ev []*protocols.Event
}

func (l *eventList) Emit(e *protocols.Event) { l.mu.Lock(); l.ev = append(l.ev, e); l.mu.Unlock() }

func floodSession(src string) *protocols.Session {
	return &protocols.Session{Protocol: "modbus", Local: netip.MustParseAddrPort("[::ffff:198.51.100.7]:502"),
		Remote: netip.MustParseAddrPort(src)}
}

func fieldsOf(e *protocols.Event) map[string]any {
	m := map[string]any{}
	for _, f := range e.Fields {
		m[f.Key] = f.Value
	}
	return m
}

// TestFloodAggregates: summarised events count per (port, protocol, source /24 or /64),
// with distinct sessions, and a flush writes one flood.summary per key and starts over.
// The two sessions of one key count in different shards, which the flush merges. The
// counts are the same with and without the sessions' cursors (the sensor's hooks), over
// two minutes: a cursor from before a flush is not used after it.
func TestFloodAggregates(t *testing.T) {
	for _, hooked := range []bool{false, true} {
		t.Run(map[bool]string{false: "add", true: "hook"}[hooked], func(t *testing.T) {
			f := newFloodTable()
			a1, a2 := floodSession("[::ffff:203.0.113.9]:40000"), floodSession("203.0.113.200:40001")
			a2.Stripe = 1
			b := floodSession("192.0.2.1:1")
			v6 := floodSession("[2001:db8:1:2::5]:9")
			count := f.add
			if hooked {
				hooks := map[*protocols.Session]func(*protocols.Session, int, int){}
				for _, s := range []*protocols.Session{a1, a2, b, v6} {
					hooks[s] = f.hook()
				}
				count = func(s *protocols.Session, in, out int) { hooks[s](s, in, out) }
			}
			for minute := range 2 {
				for range 10 {
					count(a1, 12, 11)
					count(a2, 12, 11)
				}
				count(b, 1, 2)
				count(v6, 3, 4)
				var out eventList
				f.flush(&out, "s1")
				if len(out.ev) != 3 {
					t.Fatalf("minute %d: %d flood.summary events, want 3", minute, len(out.ev))
				}
				by := map[string]map[string]any{}
				for _, e := range out.ev {
					if e.Type != FloodSummaryEvent || e.Sensor != "s1" || e.Protocol != "modbus" {
						t.Errorf("event %+v", e)
					}
					m := fieldsOf(e)
					by[m["source_prefix"].(string)] = m
				}
				if m := by["203.0.113.0/24"]; m["events"] != int64(20) || m["sessions"] != 2 || m["bytes_in"] != int64(240) || m["port"] != uint16(502) {
					t.Errorf("minute %d, 203.0.113.0/24: %v", minute, m)
				}
				if m := by["192.0.2.0/24"]; m["events"] != int64(1) || m["bytes_out"] != int64(2) || m["sessions"] != 1 {
					t.Errorf("minute %d, 192.0.2.0/24: %v", minute, m)
				}
				if m := by["2001:db8:1:2::/64"]; m["events"] != int64(1) {
					t.Errorf("minute %d, the IPv6 /64: %v", minute, by)
				}
			}
			var out eventList
			f.flush(&out, "s1")
			if len(out.ev) != 0 {
				t.Fatalf("a flush after an empty minute wrote %d events", len(out.ev))
			}
		})
	}
}

// TestFloodKeysBounded: past maxFloodKeys keys a minute, events count in one event
// without a prefix.
func TestFloodKeysBounded(t *testing.T) {
	f := newFloodTable()
	for i := range maxFloodKeys + 10 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 1}) // a /24 each
		sess := floodSession(netip.AddrPortFrom(a, 1).String())
		sess.Stripe = uint32(i) // as the sensor numbers sessions: the shards fill evenly
		f.add(sess, 1, 1)
	}
	var out eventList
	f.flush(&out, "s")
	if len(out.ev) != maxFloodKeys+1 {
		t.Fatalf("%d events, want %d and one for the rest", len(out.ev), maxFloodKeys+1)
	}
	var rest int64
	for _, e := range out.ev {
		if m := fieldsOf(e); m["source_prefix"] == nil {
			rest = m["events"].(int64)
		}
	}
	if rest != 10 {
		t.Fatalf("events past the key bound: %d, want 10", rest)
	}
}

// TestSummarisedEventNoAllocs: past per_session, a request event volume control summarises
// (session summary and flood aggregate) allocates nothing.
func TestSummarisedEventNoAllocs(t *testing.T) {
	bus := NewBus(4, NewJSONSink("discard", io.Discard, nil, false))
	f := newFloodTable()
	sess := benchSession(bus)
	sess.KeepEvents, sess.OnSummarised = 1, f.hook()
	e := requestEvent()
	q := bus.queues[0]
	emit := func() {
		sess.Request("read_holding_registers", false)
		sess.Emit("request", e.Request, e.Response, e.Fields...)
		for len(q.ch) > 0 {
			q.deliver(<-q.ch)
		}
	}
	emit()
	emit()
	if n := testing.AllocsPerRun(1000, emit); n >= 0.5 {
		t.Fatalf("a summarised event: %v allocations, want 0", n)
	}
	if sum := sess.Summary(); sum == nil || sum.Events < 1000 {
		t.Fatalf("summary %+v", sum)
	}
}

// TestFloodMerge: the counts of one key from several shards merge into one: sums, the
// earliest first and latest last, distinct sessions up to maxFloodSessions.
func TestFloodMerge(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s1, s2, s3 := &protocols.Session{}, &protocols.Session{}, &protocols.Session{}
	cases := []struct {
		name       string
		a, b, want floodCount
	}{
		{"sums and times",
			floodCount{events: 2, bytesIn: 10, bytesOut: 20, first: t0.Add(time.Second), last: t0.Add(5 * time.Second), sessions: map[*protocols.Session]struct{}{s1: {}}},
			floodCount{events: 3, bytesIn: 1, bytesOut: 2, first: t0, last: t0.Add(4 * time.Second), sessions: map[*protocols.Session]struct{}{s2: {}}},
			floodCount{events: 5, bytesIn: 11, bytesOut: 22, first: t0, last: t0.Add(5 * time.Second), sessions: map[*protocols.Session]struct{}{s1: {}, s2: {}}}},
		{"a session in both counts once",
			floodCount{events: 1, first: t0, last: t0, sessions: map[*protocols.Session]struct{}{s1: {}}},
			floodCount{events: 1, first: t0, last: t0.Add(time.Minute), sessions: map[*protocols.Session]struct{}{s1: {}, s3: {}}},
			floodCount{events: 2, first: t0, last: t0.Add(time.Minute), sessions: map[*protocols.Session]struct{}{s1: {}, s3: {}}}},
		{"over the bound in one shard stays over",
			floodCount{events: 1, first: t0, last: t0, sessions: map[*protocols.Session]struct{}{}},
			floodCount{events: 1, first: t0, last: t0, sessions: map[*protocols.Session]struct{}{s2: {}}, sessionsOver: true},
			floodCount{events: 2, first: t0, last: t0, sessions: map[*protocols.Session]struct{}{s2: {}}, sessionsOver: true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := c.a
			a.merge(&c.b)
			if a.events != c.want.events || a.bytesIn != c.want.bytesIn || a.bytesOut != c.want.bytesOut ||
				!a.first.Equal(c.want.first) || !a.last.Equal(c.want.last) || a.sessionsOver != c.want.sessionsOver ||
				len(a.sessions) != len(c.want.sessions) {
				t.Errorf("merged %+v, want %+v", a, c.want)
			}
		})
	}
	// Past maxFloodSessions distinct sessions, the merge marks the count over the bound.
	full := floodCount{sessions: map[*protocols.Session]struct{}{}}
	for range maxFloodSessions {
		full.sessions[&protocols.Session{}] = struct{}{}
	}
	full.merge(&floodCount{sessions: map[*protocols.Session]struct{}{s1: {}}})
	if len(full.sessions) != maxFloodSessions || !full.sessionsOver {
		t.Errorf("%d sessions, over %v; want %d and over", len(full.sessions), full.sessionsOver, maxFloodSessions)
	}
}
