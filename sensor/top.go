package sensor

import (
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/icsnare/icsnare/protocols"
)

// Top counts, per minute, the sessions and events of the busiest emulated hosts, sources
// and protocols, for `icsnare top`. It is a Sink: the bus hands it every event. Memory is
// bounded: each minute keeps at most topKeys hosts and topKeys sources, pruning the
// smaller half when full (lossy counting: a key that comes back after a prune restarts its
// count, so counts are lower bounds and the busiest keys survive).
type Top struct {
	mu      sync.Mutex
	minutes []topMinute // a ring, one per minute
	now     func() time.Time
}

// topKeys bounds the hosts and the sources each minute keeps.
const topKeys = 4096

// TopCount is one row of a top list.
type TopCount struct {
	Key      string `json:"key"`
	Sessions int64  `json:"sessions"`
	Events   int64  `json:"events"`
}

// TopReport is what /debug/top serves.
type TopReport struct {
	Since     time.Time  `json:"since"`
	Until     time.Time  `json:"until"`
	Hosts     []TopCount `json:"hosts"`
	Sources   []TopCount `json:"sources"`
	Protocols []TopCount `json:"protocols"`
}

type topCounts struct{ sessions, events int64 }

type topMinute struct {
	start     int64 // unix minute
	hosts     map[netip.Addr]topCounts
	sources   map[netip.Addr]topCounts
	protocols map[string]topCounts
}

// NewTop keeps the last minutes minutes (at least 1).
func NewTop(minutes int) *Top {
	return &Top{minutes: make([]topMinute, max(minutes, 1)), now: time.Now}
}

// Name implements Sink.
func (t *Top) Name() string { return "top" }

// Flush implements Sink.
func (t *Top) Flush() error { return nil }

// Close implements Sink.
func (t *Top) Close() error { return nil }

// Write implements Sink: it counts e for its host, source and protocol.
func (t *Top) Write(e *protocols.Event) error {
	if e.Protocol == "" || !e.Dst.IsValid() || !e.Src.IsValid() {
		return nil // not a session's event (the XDP limiter's …)
	}
	add := topCounts{events: 1}
	if e.Phase == protocols.PhaseStart {
		add = topCounts{sessions: 1}
	}
	minute := t.now().Unix() / 60
	t.mu.Lock()
	defer t.mu.Unlock()
	m := &t.minutes[minute%int64(len(t.minutes))]
	if m.start != minute || m.hosts == nil {
		*m = topMinute{start: minute, hosts: map[netip.Addr]topCounts{}, sources: map[netip.Addr]topCounts{},
			protocols: map[string]topCounts{}}
	}
	bump(m.hosts, e.Dst.Addr().Unmap(), add)
	bump(m.sources, e.Src.Addr().Unmap(), add)
	c := m.protocols[e.Protocol] // protocols are a small fixed set
	c.sessions += add.sessions
	c.events += add.events
	m.protocols[e.Protocol] = c
	return nil
}

// bump adds a to k's counts, pruning the smaller half of m first when it is full.
func bump[K comparable](m map[K]topCounts, k K, a topCounts) {
	c, ok := m[k]
	if !ok && len(m) >= topKeys {
		prune(m)
	}
	c.sessions += a.sessions
	c.events += a.events
	m[k] = c
}

// prune deletes the keys whose weight is at most the median's.
func prune[K comparable](m map[K]topCounts) {
	w := make([]int64, 0, len(m))
	for _, c := range m {
		w = append(w, c.sessions+c.events)
	}
	slices.Sort(w)
	median := w[len(w)/2]
	for k, c := range m {
		if c.sessions+c.events <= median {
			delete(m, k)
		}
	}
}

// Report returns the n busiest hosts, sources and protocols of the last minutes minutes
// (at most as many as Top keeps), by events and then sessions.
func (t *Top) Report(minutes, n int) TopReport {
	now := t.now()
	cur := now.Unix() / 60
	minutes = min(max(minutes, 1), len(t.minutes))
	hosts, sources, protos := map[string]topCounts{}, map[string]topCounts{}, map[string]topCounts{}
	t.mu.Lock()
	for _, m := range t.minutes {
		if m.hosts == nil || m.start <= cur-int64(minutes) {
			continue
		}
		for k, c := range m.hosts {
			merge(hosts, k.String(), c)
		}
		for k, c := range m.sources {
			merge(sources, k.String(), c)
		}
		for k, c := range m.protocols {
			merge(protos, k, c)
		}
	}
	t.mu.Unlock()
	return TopReport{Since: time.Unix((cur-int64(minutes)+1)*60, 0).UTC(), Until: now.UTC(),
		Hosts: rank(hosts, n), Sources: rank(sources, n), Protocols: rank(protos, n)}
}

func merge(into map[string]topCounts, k string, c topCounts) {
	t := into[k]
	t.sessions += c.sessions
	t.events += c.events
	into[k] = t
}

func rank(m map[string]topCounts, n int) []TopCount {
	out := make([]TopCount, 0, len(m))
	for k, c := range m {
		out = append(out, TopCount{Key: k, Sessions: c.sessions, Events: c.events})
	}
	slices.SortFunc(out, func(a, b TopCount) int {
		if a.Events != b.Events {
			return int(b.Events - a.Events)
		}
		if a.Sessions != b.Sessions {
			return int(b.Sessions - a.Sessions)
		}
		if a.Key < b.Key {
			return -1
		}
		return 1
	})
	if n > 0 && len(out) > n {
		out = out[:n]
	}
	return out
}

// ServeHTTP serves the report as JSON (query: minutes, n) to clients on a loopback
// address only: it names attackers' and hosts' addresses, which /metrics never does.
func (t *Top) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if ip, perr := netip.ParseAddr(host); err != nil || perr != nil || !ip.Unmap().IsLoopback() {
		http.Error(w, "icsnare: /debug/top answers loopback clients only", http.StatusForbidden)
		return
	}
	minutes, n := len(t.minutes), 10
	if v := r.URL.Query().Get("minutes"); v != "" {
		if minutes, err = strconv.Atoi(v); err != nil || minutes < 1 {
			http.Error(w, "icsnare: minutes: want a positive integer", http.StatusBadRequest)
			return
		}
	}
	if v := r.URL.Query().Get("n"); v != "" {
		if n, err = strconv.Atoi(v); err != nil || n < 1 || n > 1000 {
			http.Error(w, "icsnare: n: want 1 to 1000", http.StatusBadRequest)
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(t.Report(minutes, n))
}
