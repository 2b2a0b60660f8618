package stix

import (
	"cmp"
	"container/list"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/icsnare/icsnare/protocols"
)

// Bounds of what one session and one source keep.
const (
	maxActionLabels = 32          // distinct action labels kept per session or source
	maxHostsCounted = 4096        // distinct hosts counted per observed-data (aggregate = "port")
	maxHostsWindow  = 65536       // … and in all of a bundle's window
	maxCount        = 999_999_999 // STIX's bound of number_observed and count
	objectsPerFlow  = 4           // observed-data, network-traffic, two addresses at most
	objectsPerActor = 2           // indicator and sighting
)

// Exporter aggregates events into sessions, and sessions into STIX bundles: the sensor's
// identity, one observed-data (with its network-traffic and address SCOs) per source,
// host, port and protocol seen in the bundle's window, and an indicator and a sighting per
// source that wrote to a device or changed its state. Its state is bounded: at most
// MaxSessions open sessions (the least recently active one is exported early), idle
// sessions exported after SessionTimeout, a bundle cut when it reaches MaxBundleObjects,
// MaxIndicators indicators remembered. It is not safe for concurrent use.
type Exporter struct {
	opts     Options
	identity Identity
	identRaw json.RawMessage

	sessions map[string]*session
	lru      *list.List // of *session, most recently active first

	windowStart time.Time
	flows       map[flowKey]*flow
	actors      map[netip.Addr]*actor
	pending     int // objects the window's bundle will hold, the identity aside
	hostsSeen   int // hosts counted in the window's flows (aggregate = "port")

	indicators map[netip.Addr]*list.Element // of *indicatorRec
	indLRU     *list.List

	// Evicted counts sessions exported before they ended because MaxSessions were open.
	Evicted int64
	// Expired counts sessions exported after SessionTimeout without an event.
	Expired int64
	// Unaddressed counts sessions left out because their events named no source or
	// destination address.
	Unaddressed int64
}

type session struct {
	id                  string
	src, dst            netip.AddrPort
	transport, protocol string
	start, last         time.Time
	events, requests    int64
	haveRequests        bool
	bytesIn, bytesOut   int64
	haveBytes           bool
	acts                actions
	elem                *list.Element
}

type flowKey struct {
	src, dst            netip.Addr
	dstPort             uint16
	transport, protocol string
}

type flow struct {
	hosts             map[netip.Addr]struct{} // aggregate = "port" only
	hostsCapped       bool                    // a host was not counted (a bound)
	first, last       time.Time
	sessions          int64
	requests          int64
	bytesIn, bytesOut int64
	haveBytes         bool
	srcPort           uint16
}

// actor is a source that wrote to a device or changed its state in the window.
type actor struct {
	acts actions
}

// actions counts what a session or source did, by label.
type actions struct {
	first, last time.Time
	count       int64
	kinds       map[string]bool
	labels      map[string]int64
	labelKind   map[string]string
}

func (a *actions) add(act Action, n int64, first, last time.Time) {
	if a.labels == nil {
		a.labels, a.kinds, a.labelKind = map[string]int64{}, map[string]bool{}, map[string]string{}
	}
	if a.count == 0 || first.Before(a.first) {
		a.first = first
	}
	if last.After(a.last) {
		a.last = last
	}
	a.count += n
	a.kinds[act.Kind] = true
	label := act.Label
	if _, ok := a.labels[label]; !ok && len(a.labels) >= maxActionLabels {
		label = "other"
	}
	a.labels[label] += n
	if _, ok := a.labelKind[label]; !ok {
		a.labelKind[label] = act.Kind
	}
}

func (a *actions) merge(b *actions) {
	if b.count == 0 {
		return
	}
	for label, n := range b.labels {
		a.add(Action{Kind: b.labelKind[label], Label: label}, n, b.first, b.last)
	}
}

// summary lists the labels with their counts, most frequent first.
func (a *actions) summary() string {
	type lc struct {
		label string
		n     int64
	}
	var l []lc
	for label, n := range a.labels {
		l = append(l, lc{label, n})
	}
	slices.SortFunc(l, func(x, y lc) int {
		if c := cmp.Compare(y.n, x.n); c != 0 {
			return c
		}
		return strings.Compare(x.label, y.label)
	})
	parts := make([]string, len(l))
	for i, x := range l {
		parts[i] = fmt.Sprintf("%s ×%d", x.label, x.n)
	}
	return strings.Join(parts, ", ")
}

type indicatorRec struct {
	addr       netip.Addr
	id         string
	raw        json.RawMessage
	validUntil time.Time // zero: open
}

// NewExporter returns an exporter of the sensor whose identity is id.
func NewExporter(opts Options, id Identity) *Exporter {
	return &Exporter{opts: opts, identity: id, identRaw: mustJSON(id),
		sessions: map[string]*session{}, lru: list.New(),
		flows: map[flowKey]*flow{}, actors: map[netip.Addr]*actor{},
		indicators: map[netip.Addr]*list.Element{}, indLRU: list.New()}
}

// OpenSessions returns how many sessions the exporter follows now.
func (x *Exporter) OpenSessions() int { return len(x.sessions) }

// Add takes one event and returns the bundles it completed (usually none). Events of no
// session (the sensor's own aggregates) are not sessions' and are left out.
func (x *Exporter) Add(e *protocols.Event, now time.Time) []*Bundle {
	if e.SessionID == "" {
		return nil
	}
	var out []*Bundle
	s := x.sessions[e.SessionID]
	if s == nil {
		if len(x.sessions) >= x.opts.MaxSessions {
			x.Evicted++
			out = x.finish(x.lru.Back().Value.(*session), now, out)
		}
		s = &session{id: e.SessionID, src: e.Src, dst: e.Dst, transport: e.Transport, protocol: e.Protocol,
			start: e.Start, last: e.Time}
		if s.start.IsZero() || s.start.After(e.Time) {
			s.start = e.Time
		}
		s.elem = x.lru.PushFront(s)
		x.sessions[e.SessionID] = s
	} else {
		x.lru.MoveToFront(s.elem)
	}
	if e.Time.After(s.last) {
		s.last = e.Time
	}
	switch e.Phase {
	case protocols.PhaseStart:
	case protocols.PhaseEnd:
		if n, ok := protocols.FieldInt(e.Fields, "requests"); ok {
			s.requests, s.haveRequests = n, true
		}
		in, okIn := protocols.FieldInt(e.Fields, "bytes_in")
		outB, okOut := protocols.FieldInt(e.Fields, "bytes_out")
		if okIn && okOut {
			s.bytesIn, s.bytesOut, s.haveBytes = in, outB, true
		}
		return x.finish(s, now, out)
	default:
		s.events++
		if act, ok := Classify(e); ok {
			s.acts.add(act, 1, e.Time, e.Time)
		}
	}
	return out
}

// Tick exports the sessions idle for SessionTimeout and, once the window is
// BundleInterval old, its bundle.
func (x *Exporter) Tick(now time.Time) []*Bundle {
	var out []*Bundle
	for el := x.lru.Back(); el != nil; el = x.lru.Back() {
		s := el.Value.(*session)
		if now.Sub(s.last) < x.opts.SessionTimeout.Duration {
			break
		}
		x.Expired++
		out = x.finish(s, now, out)
	}
	if x.pending > 0 && now.Sub(x.windowStart) >= x.opts.BundleInterval.Duration {
		out = append(out, x.cut(now))
	}
	return out
}

// Close exports every open session and returns the last bundle.
func (x *Exporter) Close(now time.Time) []*Bundle {
	var out []*Bundle
	for el := x.lru.Back(); el != nil; el = x.lru.Back() {
		out = x.finish(el.Value.(*session), now, out)
	}
	if x.pending > 0 {
		out = append(out, x.cut(now))
	}
	return out
}

// finish moves session s into the window, cutting a bundle first when the window is full.
func (x *Exporter) finish(s *session, now time.Time, out []*Bundle) []*Bundle {
	x.lru.Remove(s.elem)
	delete(x.sessions, s.id)
	if !s.src.Addr().IsValid() || !s.dst.Addr().IsValid() {
		x.Unaddressed++ // nothing to observe: no address to name
		return out
	}
	if !x.opts.ObserveAll && s.acts.count == 0 {
		return out
	}
	src := s.src.Addr().Unmap()
	dst := s.dst.Addr().Unmap()
	k := flowKey{src: src, dst: dst, dstPort: s.dst.Port(), transport: s.transport, protocol: s.protocol}
	if x.opts.Aggregate == AggregatePort {
		k.dst = netip.Addr{}
	}
	add := 0
	if x.flows[k] == nil {
		add += objectsPerFlow
	}
	if s.acts.count > 0 && x.actors[src] == nil {
		add += objectsPerActor
	}
	if x.pending > 0 && x.pending+add > x.opts.MaxBundleObjects {
		out = append(out, x.cut(now))
	}
	if x.pending == 0 {
		x.windowStart = now
	}
	f := x.flows[k]
	if f == nil {
		f = &flow{first: s.start, last: s.last, srcPort: s.src.Port()}
		x.flows[k] = f
		x.pending += objectsPerFlow
	}
	if s.start.Before(f.first) {
		f.first = s.start
	}
	if s.last.After(f.last) {
		f.last = s.last
	}
	if x.opts.Aggregate == AggregatePort {
		if f.hosts == nil {
			f.hosts = map[netip.Addr]struct{}{}
		}
		if _, ok := f.hosts[dst]; !ok {
			if len(f.hosts) < maxHostsCounted && x.hostsSeen < maxHostsWindow {
				f.hosts[dst] = struct{}{}
				x.hostsSeen++
			} else {
				f.hostsCapped = true
			}
		}
	}
	if f.sessions > 0 && f.srcPort != s.src.Port() {
		f.srcPort = 0
	}
	f.sessions++
	if s.haveRequests {
		f.requests += s.requests
	} else {
		f.requests += s.events
	}
	if s.haveBytes {
		f.bytesIn += s.bytesIn
		f.bytesOut += s.bytesOut
		f.haveBytes = true
	}
	if s.acts.count > 0 {
		a := x.actors[src]
		if a == nil {
			a = &actor{}
			x.actors[src] = a
			x.pending += objectsPerActor
		}
		a.acts.merge(&s.acts)
	}
	return out
}

// cut builds the window's bundle and starts a new window.
func (x *Exporter) cut(now time.Time) *Bundle {
	ts := Timestamp(now)
	b := &Bundle{ID: newID("bundle"), Objects: make([]json.RawMessage, 0, 1+x.pending)}
	b.Objects = append(b.Objects, x.identRaw)
	keys := make([]flowKey, 0, len(x.flows))
	for k := range x.flows {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, c flowKey) int {
		return cmp.Or(a.src.Compare(c.src), a.dst.Compare(c.dst), cmp.Compare(a.dstPort, c.dstPort),
			strings.Compare(a.protocol, c.protocol), strings.Compare(a.transport, c.transport))
	})
	addrs := map[netip.Addr]string{}
	addr := func(a netip.Addr) string {
		if id, ok := addrs[a]; ok {
			return id
		}
		o := NewAddr(a)
		addrs[a] = o.ID
		b.Objects = append(b.Objects, mustJSON(o))
		return o.ID
	}
	observed := map[netip.Addr][]string{}
	for _, k := range keys {
		f := x.flows[k]
		nt := NetworkTraffic{Type: "network-traffic", SpecVersion: SpecVersion, SrcRef: addr(k.src),
			DstPort: int(k.dstPort), Protocols: trafficProtocols(k), Start: Timestamp(f.first), End: Timestamp(f.last),
			Protocol: k.protocol, Sessions: f.sessions, Requests: f.requests}
		if k.dst.IsValid() {
			nt.DstRef = addr(k.dst)
		} else {
			nt.Hosts, nt.HostsAtLeast = len(f.hosts), f.hostsCapped
		}
		if f.sessions == 1 && f.srcPort != 0 {
			p := int(f.srcPort)
			nt.SrcPort = &p
		}
		if f.haveBytes {
			in, out := f.bytesIn, f.bytesOut
			nt.SrcBytes, nt.DstBytes = &in, &out
		}
		nt.setID()
		od := ObservedData{Type: "observed-data", SpecVersion: SpecVersion, ID: newID("observed-data"),
			CreatedByRef: x.identity.ID, Created: ts, Modified: ts, FirstObserved: Timestamp(f.first),
			LastObserved: Timestamp(f.last), NumberObserved: min(f.sessions, maxCount),
			ObjectRefs: []string{nt.ID, nt.SrcRef}}
		if nt.DstRef != "" && nt.DstRef != nt.SrcRef {
			od.ObjectRefs = append(od.ObjectRefs, nt.DstRef)
		}
		b.Objects = append(b.Objects, mustJSON(nt), mustJSON(od))
		observed[k.src] = append(observed[k.src], od.ID)
	}
	srcs := make([]netip.Addr, 0, len(x.actors))
	for a := range x.actors {
		srcs = append(srcs, a)
	}
	slices.SortFunc(srcs, netip.Addr.Compare)
	for _, src := range srcs {
		a := x.actors[src]
		ind := x.indicator(src, &a.acts)
		b.Objects = append(b.Objects, ind.raw)
		s := Sighting{Type: "sighting", SpecVersion: SpecVersion, ID: newID("sighting"), CreatedByRef: x.identity.ID,
			Created: ts, Modified: ts, FirstSeen: Timestamp(a.acts.first), LastSeen: Timestamp(a.acts.last),
			Count: min(a.acts.count, maxCount), SightingOfRef: ind.id, ObservedDataRefs: observed[src],
			WhereSightedRefs: []string{x.identity.ID},
			Description:      fmt.Sprintf("%s from %s: %s", verb(&a.acts), src, a.acts.summary())}
		b.Objects = append(b.Objects, mustJSON(s))
	}
	clear(x.flows)
	clear(x.actors)
	x.pending, x.hostsSeen = 0, 0
	return b
}

// indicator returns the indicator of source src, made from acts when the exporter does not
// remember one. An indicator never changes once made (it is one version of one object), so
// later bundles repeat it as it was.
func (x *Exporter) indicator(src netip.Addr, acts *actions) *indicatorRec {
	if el, ok := x.indicators[src]; ok {
		rec := el.Value.(*indicatorRec)
		if rec.validUntil.IsZero() || acts.last.Before(rec.validUntil) {
			x.indLRU.MoveToFront(el)
			return rec
		}
		// expired: the source acts again, so it gets a new indicator
		x.indLRU.Remove(el)
		delete(x.indicators, src)
	}
	if x.indLRU.Len() >= x.opts.MaxIndicators {
		old := x.indLRU.Remove(x.indLRU.Back()).(*indicatorRec)
		delete(x.indicators, old.addr)
	}
	created := Timestamp(acts.first)
	ind := Indicator{Type: "indicator", SpecVersion: SpecVersion, ID: newID("indicator"), CreatedByRef: x.identity.ID,
		Created: created, Modified: created,
		Name:           fmt.Sprintf("%s %s", src, verb(acts)),
		Description:    fmt.Sprintf("%s %s emulated by %s: %s", src, verb(acts), x.identity.Name, acts.summary()),
		IndicatorTypes: []string{"malicious-activity"},
		Pattern:        fmt.Sprintf("[%s:value = '%s']", addrType(src), src),
		PatternType:    "stix", PatternVersion: SpecVersion, ValidFrom: created,
		Labels: []string{"icsnare"}}
	var until time.Time
	if v := x.opts.IndicatorValidity.Duration; v > 0 {
		until = acts.first.Add(v)
		ind.ValidUntil = Timestamp(until)
	}
	if acts.kinds[KindWrite] {
		ind.KillChainPhases = append(ind.KillChainPhases, KillChainPhase{"mitre-ics-attack", "impair-process-control"})
	}
	if acts.kinds[KindState] {
		ind.KillChainPhases = append(ind.KillChainPhases, KillChainPhase{"mitre-ics-attack", "inhibit-response-function"})
	}
	rec := &indicatorRec{addr: src, id: ind.ID, raw: mustJSON(ind), validUntil: until}
	x.indicators[src] = x.indLRU.PushFront(rec)
	return rec
}

func verb(a *actions) string {
	switch {
	case a.kinds[KindWrite] && a.kinds[KindState]:
		return "wrote to and changed the state of a device"
	case a.kinds[KindState]:
		return "changed the state of a device"
	}
	return "wrote to a device"
}

// ianaServices maps icsnare's protocols to their IANA service names, the innermost entry
// of a network-traffic's protocols.
var ianaServices = map[string]string{"modbus": "mbap", "s7comm": "iso-tsap", "snmp": "snmp", "bacnet": "bacnet",
	"enip": "ethernet-ip-2", "iec104": "iec-104", "ipmi": "asf-rmcp", "http": "http", "ftp": "ftp", "tftp": "tftp"}

func trafficProtocols(k flowKey) []string {
	p := []string{"ipv4"}
	if k.src.Is6() {
		p[0] = "ipv6"
	}
	if t := strings.ToLower(k.transport); t == "tcp" || t == "udp" {
		p = append(p, t)
	}
	if s, ok := ianaServices[k.protocol]; ok {
		p = append(p, s)
	}
	return p
}
