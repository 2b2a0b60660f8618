// Package protocols defines what a protocol implementation gives the sensor and what the
// sensor gives it back, and holds the registry of protocols. Protocol packages never import
// the sensor: they see a Host, a Session and the Event they emit.
package protocols

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/icsnare/icsnare/profiles"
)

// Transport names.
const (
	TCP = "tcp"
	UDP = "udp"
)

// Endpoint is a port a service wants, on every address of every host that runs it.
type Endpoint struct {
	Transport string // TCP or UDP
	Port      int    // the standard port (the sensor applies its overrides and offset)
}

func (e Endpoint) String() string { return fmt.Sprintf("%s/%d", e.Transport, e.Port) }

// Protocol is a registered protocol implementation.
type Protocol interface {
	// Name is the template directory name of the protocol ("modbus", "s7comm", "snmp" …).
	Name() string
	// Configure parses the protocol's profile section and returns the service that serves
	// every host of that profile. Errors are *profiles.Error values naming file, line and
	// element; unknown elements are reported with sec.Warnf and ignored. opts is the value
	// NewOptions returned, decoded from this sensor's [protocols.<name>] table, for a
	// protocol that is Configurable; nil otherwise.
	Configure(sec *profiles.Section, opts any) (Service, error)
}

// Service is a protocol configured for one profile.
type Service interface {
	Endpoints() []Endpoint
}

// StreamService serves TCP connections. ServeConn returns when the connection is done; the
// sensor closes conn afterwards. conn applies the sensor's idle timeout to every Read and a
// write timeout to every Write, so a handler can simply loop reading until an error.
// A panic is caught by the sensor: it closes that connection only.
type StreamService interface {
	Service
	ServeConn(ctx context.Context, s *Session, conn net.Conn)
}

// RequestTimeouter is implemented by stream services whose requests may legitimately take
// longer than the sensor's request timeout to arrive (a person typing at a telnet-style
// console). RequestTimeout gets the sensor's value and returns the one to apply (0: none).
type RequestTimeouter interface {
	RequestTimeout(sensorDefault time.Duration) time.Duration
}

// PacketService answers datagrams. req is valid only during the call. reply sends one
// datagram from the host's address to the request's source; it may be called several times
// per request (up to MaxRepliesPerRequest: RMCP+ handshakes, segmented answers), at once or
// later from another goroutine (a tarpit), and does nothing once ctx is done or the session
// has closed; it does not keep resp after it returns, so a service may reuse the buffer. s lives as long as the UDP flow (source, host, protocol): keep per-flow state
// with s.State and send unsolicited datagrams (retransmissions) with s.Send.
type PacketService interface {
	Service
	ServePacket(ctx context.Context, s *Session, req []byte, reply func(resp []byte))
}

// PromptReplier is a PacketService that may say its ServePacket calls reply only before it
// returns, never later (answers after that, retransmissions say, go through Session.Send).
// The sensor then gives it, for each datagram, a reply function it reuses for the next one
// instead of allocating one per datagram; a reply kept and called later would answer
// another request's source, so a service answering late (a tarpit) must say false. The
// protocol test harnesses fail a test that calls a prompt reply late.
type PromptReplier interface {
	RepliesPromptly() bool
}

// RepliesPromptly reports whether svc is a PromptReplier that replies promptly.
func RepliesPromptly(svc Service) bool {
	p, ok := svc.(PromptReplier)
	return ok && p.RepliesPromptly()
}

var (
	regMu    sync.RWMutex
	registry = map[string]Protocol{}
)

// Register adds a protocol. Each protocol package calls it from init; the sensor imports
// the protocol packages it ships (protocols/all).
func Register(p Protocol) {
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := registry[p.Name()]; dup {
		panic("protocols: registered twice: " + p.Name())
	}
	checkFlags(p)
	registry[p.Name()] = p
}

// Lookup returns the protocol registered under name.
func Lookup(name string) (Protocol, bool) {
	regMu.RLock()
	defer regMu.RUnlock()
	p, ok := registry[name]
	return p, ok
}

// Names lists the registered protocols, sorted.
func Names() []string {
	regMu.RLock()
	defer regMu.RUnlock()
	out := make([]string, 0, len(registry))
	for n := range registry {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Host is one emulated device as protocols see it.
type Host struct {
	Addr    netip.Addr
	Profile *profiles.Profile
	Seed    uint64 // stable per host; derive identity values from it, never from the machine
	Databus *profiles.Databus
	// Boots counts the reboots the sensor simulated for this host (0 until a restart is
	// configured to look like one); SNMP adds it to snmpEngineBoots.
	Boots int64

	store HostStore
	state atomic.Pointer[[]stateEntry] // copy on write: a host holds a few, read on every request
}

// stateEntry is one protocol's state on a host (Host.State).
type stateEntry struct {
	key string
	v   any
}

// HostStore keeps what attackers changed on one host (databus writes, an S7 CPU's mode …)
// across eviction and sensor restarts. The sensor provides it; protocols reach it through
// Host.Persist and Host.Persisted and never see the disk.
type HostStore interface {
	// Save queues value under key and returns at once; it never waits on the disk. It
	// reports false when the write is refused (a bound of the host or of the store, a full
	// queue); the sensor counts and logs refusals.
	Save(key string, value []byte) bool
	// Saved returns the value kept under key when the host was created.
	Saved(key string) ([]byte, bool)
	// SavedKeys lists the keys kept for the host when it was created.
	SavedKeys() []string
}

// databusPrefix namespaces databus keys among a host's stored keys.
const databusPrefix = "db/"

// NewHost creates a host of profile p at addr with the given seed, keeping nothing.
func NewHost(addr netip.Addr, p *profiles.Profile, seed uint64, start time.Time) *Host {
	return NewStoredHost(addr, p, seed, start, 0, nil)
}

// NewStoredHost creates a host whose writes go to store (nil: kept in memory only). The
// databus values store kept are put back first, so a regenerated host shows what attackers
// wrote; later Set and Update calls are saved.
func NewStoredHost(addr netip.Addr, p *profiles.Profile, seed uint64, start time.Time, boots int64, store HostStore) *Host {
	return NewSubnetHost(netip.PrefixFrom(addr, addr.BitLen()), p, seed, start, boots, store)
}

// NewSubnetHost is NewStoredHost for a host whose address at carries the prefix length of
// the host rule it belongs to (its subnet, which SNMP's ipAddrTable shows).
func NewSubnetHost(at netip.Prefix, p *profiles.Profile, seed uint64, start time.Time, boots int64, store HostStore) *Host {
	addr := at.Addr()
	h := &Host{Addr: addr, Profile: p, Seed: seed, Boots: boots, store: store,
		Databus: p.Schema.NewDatabus(profiles.EngineEnv{Seed: seed, Addr: addr, Bits: at.Bits(), Start: start})}
	if store == nil {
		return h
	}
	for _, k := range store.SavedKeys() {
		key, ok := strings.CutPrefix(k, databusPrefix)
		if !ok {
			continue
		}
		b, _ := store.Saved(k)
		if v, err := profiles.DecodeValue(b); err == nil {
			h.Databus.Restore(key, v)
		}
	}
	h.Databus.SetWriteHook(func(key string, v any) {
		if b, err := profiles.AppendValue(nil, v); err == nil {
			store.Save(databusPrefix+key, b)
		}
	})
	return h
}

// Persist keeps value under key for this host across eviction and restarts (a protocol's
// state outside the databus, e.g. "s7comm.mode"); keys are prefixed with the protocol's
// name. It never blocks and reports false when the value was not kept.
func (h *Host) Persist(key string, value []byte) bool {
	if h.store == nil {
		return false
	}
	return h.store.Save(key, value)
}

// Persisted returns what Persist kept under key, from before the host was last created.
func (h *Host) Persisted(key string) ([]byte, bool) {
	if h.store == nil {
		return nil, false
	}
	return h.store.Saved(key)
}

// State returns the host's state stored under key, creating it with init on first use.
// Protocols keep per-host state here (an S7 CPU's operating mode, SNMP counters …) under
// keys prefixed with their name.
func (h *Host) State(key string, init func() any) any {
	cur := h.state.Load()
	if v, ok := findState(cur, key); ok {
		return v
	}
	v := init()
	for {
		var next []stateEntry
		if cur != nil {
			next = make([]stateEntry, len(*cur), len(*cur)+1)
			copy(next, *cur)
		}
		next = append(next, stateEntry{key, v})
		if h.state.CompareAndSwap(cur, &next) {
			return v
		}
		cur = h.state.Load()
		if old, ok := findState(cur, key); ok { // another request stored it first
			return old
		}
	}
}

func findState(l *[]stateEntry, key string) (any, bool) {
	if l == nil {
		return nil, false
	}
	for _, e := range *l {
		if e.key == key {
			return e.v, true
		}
	}
	return nil, false
}

// Field is one protocol-specific event field.
type Field struct {
	Key   string
	Value any // string, bool, integers, float64, []string, []byte (hex), a JSONAppender, or anything JSON can encode
}

// JSONAppender is a field value that writes itself as JSON: an object or list a protocol
// builds on the request path without maps or reflection. The event encoder appends it as
// it is; a value should also implement json.Marshaler for other consumers.
type JSONAppender interface {
	AppendJSON(b []byte) []byte
}

// F makes a Field.
func F(key string, value any) Field { return Field{Key: key, Value: value} }

// Event is one thing that happened in a session. The sensor fills the session fields.
type Event struct {
	Time      time.Time
	Type      string // dotted, "<protocol>.<what>", e.g. "modbus.request"
	SessionID string
	Protocol  string
	Transport string
	Src, Dst  netip.AddrPort
	Sensor    string
	Profile   string
	Request   []byte // raw bytes, written as hex unless Text is set
	Response  []byte
	Text      bool // Request and Response are text (HTTP, FTP …)
	Fields    []Field
	// Start is when the session began (Conpot's logs stamp every event with it).
	Start time.Time
	// Phase is PhaseStart or PhaseEnd for the sensor's own session start and end events
	// ("connect", "disconnect"), "" for every other event.
	Phase string

	payload []byte  // storage of Request and Response when the event came from NewEvent
	fields  []Field // storage of Fields likewise
	refs    int32   // consumers still holding the event (ShareEvent)
}

// typeNames caches "<protocol>.<type>" strings, so emitting costs no string concatenation.
// Event types are constants of each protocol; the cache stops growing at maxTypeNames all
// the same.
var (
	typeNames     sync.Map // [2]string → string
	typeNameCount atomic.Int32
)

const maxTypeNames = 4096

// qualify is qualifiedType(s.Protocol, typ) with the last answer kept on the session: a
// connection's events are mostly of one type, and this spares a shared map lookup per event.
func (s *Session) qualify(typ string) string {
	if q := s.lastType.Load(); q != nil && q[0] == typ {
		return q[1]
	}
	name := qualifiedType(s.Protocol, typ)
	s.lastType.Store(&[2]string{typ, name})
	return name
}

// qualified returns typ prefixed with "<protocol>." unless it already starts with it.
func (s *Session) qualified(typ string) string {
	if len(typ) <= len(s.Protocol) || typ[:len(s.Protocol)] != s.Protocol || typ[len(s.Protocol)] != '.' {
		return s.qualify(typ)
	}
	return typ
}

func qualifiedType(protocol, typ string) string {
	k := [2]string{protocol, typ}
	if v, ok := typeNames.Load(k); ok {
		return v.(string)
	}
	name := protocol + "." + typ
	if typeNameCount.Add(1) > maxTypeNames {
		typeNameCount.Add(-1)
		return name
	}
	if v, loaded := typeNames.LoadOrStore(k, name); loaded {
		typeNameCount.Add(-1)
		return v.(string)
	}
	return name
}

// eventPool recycles events between Session.Emit and the sensor's bus, so an event costs
// no allocation on the request path once the pool is warm.
var eventPool = sync.Pool{New: func() any { return new(Event) }}

// maxPooledPayload bounds the payload storage an event keeps when it goes back to the pool.
const maxPooledPayload = 16 << 10

// NewEvent returns an empty event from the pool; whoever consumes it last hands it back
// with ReleaseEvent (the sensor's bus does, after its sinks wrote it).
func NewEvent() *Event { return eventPool.Get().(*Event) }

// ReleaseEvent resets e and returns it to the pool. e must not be used afterwards. Events
// not made by NewEvent may be released too.
func ReleaseEvent(e *Event) {
	p, f := e.payload[:0], e.fields[:0]
	if cap(p) > maxPooledPayload {
		p = nil
	}
	if cap(f) > 64 {
		f = nil
	}
	clear(f[:cap(f)]) // drop references the fields held
	*e = Event{payload: p, fields: f}
	eventPool.Put(e)
}

// ShareEvent hands e to n consumers (the sensor's sinks); each gives its hold back with
// UnshareEvent, and the last one returns e to the pool.
func ShareEvent(e *Event, n int) { atomic.StoreInt32(&e.refs, int32(n)) }

// UnshareEvent gives back one consumer's hold on e (see ShareEvent); e must not be used
// after it by that consumer.
func UnshareEvent(e *Event) {
	if atomic.AddInt32(&e.refs, -1) <= 0 {
		ReleaseEvent(e)
	}
}

// Event phases of the sensor's session events.
const (
	PhaseStart = "start"
	PhaseEnd   = "end"
)

// Emitter takes events; it never blocks.
type Emitter interface {
	Emit(e *Event)
}

// Metrics is what a session counts. Kinds must come from a small fixed set per protocol
// (a function code, a PDU type), never from attacker-controlled text.
type Metrics interface {
	Request(protocol, kind string, failed bool)
}

// KindMetrics is a Metrics that hands out the counter of one (protocol, kind): a session
// keeps the last one it used and counts a run of requests of one kind without a lookup.
type KindMetrics interface {
	Metrics
	// Counter returns the counter of (protocol, kind) that adds in the given stripe (see
	// Session.Stripe).
	Counter(protocol, kind string, stripe uint32) RequestCounter
}

// RequestCounter counts the requests of one (protocol, kind).
type RequestCounter interface {
	Count(failed bool)
}

// kindCounter is a session's last (kind, counter).
type kindCounter struct {
	kind string
	c    RequestCounter
}

// Session is one TCP connection or one UDP flow (source, host, protocol).
type Session struct {
	// The fields every request reads or writes come first, together, so that a request
	// touches few of the session's cache lines (the rest is read at its start and end).
	Events  Emitter
	Metrics Metrics
	// KeepEvents, when positive, is the volume control (volume.go): the session's first
	// KeepEvents events are emitted, then only notable ones (Notable, failed requests);
	// the others are summarised (Summary) and reported to OnSummarised.
	KeepEvents   int
	OnSummarised func(s *Session, reqBytes, respBytes int)
	requests     atomic.Int64
	lastType     atomic.Pointer[[2]string]   // the last event type qualified, and its qualified name
	lastKind     atomic.Pointer[kindCounter] // with a KindMetrics: the last kind counted
	vol          volume
	life         lifetime

	ID        string
	Protocol  string
	Transport string
	Local     netip.AddrPort // the emulated host's address and port
	Remote    netip.AddrPort
	// Endpoint is the endpoint, as the service's Endpoints listed it (before the sensor's
	// port overrides and offset), that a TCP session came in on: a service with several
	// endpoints of one transport (the proxy) tells them apart by it. Zero for UDP flows.
	Endpoint Endpoint
	Host     *Host
	Log      *slog.Logger
	Sensor   string
	// MaxPayload bounds the request/response bytes kept in an event.
	MaxPayload int
	// Endpoints opens ephemeral endpoints on the host's address; nil where the sensor
	// offers none (unit tests).
	Endpoints EndpointOpener
	// Amplification bounds, for a UDP session not yet verified (see Verify), the answer
	// bytes to one request as a multiple of its size; 0 for no bound.
	Amplification float64
	// Start is when the session began (zero: the time of each event).
	Start time.Time
	// Stripe spreads what sessions count in shared tables (request counters, latency,
	// flood aggregates): sessions with different stripes write different cache lines, so
	// sessions served on different CPUs do not contend on each request. The sensor gives
	// consecutive sessions consecutive stripes.
	Stripe uint32
}

// Emit sends an event of type typ, prefixed with "<protocol>." unless it already starts
// with it, with the session's fields filled in. req and resp are copied (up to MaxPayload
// bytes each), so callers may reuse their buffers.
func (s *Session) Emit(typ string, req, resp []byte, fields ...Field) {
	s.emit(typ, req, resp, false, fields)
}

// EmitText is Emit for text protocols: request and response are written as text.
func (s *Session) EmitText(typ string, req, resp []byte, fields ...Field) {
	s.emit(typ, req, resp, true, fields)
}

// EmitPhase sends the sensor's session start (PhaseStart) or end (PhaseEnd) event of type
// typ. Only the sensor calls it.
func (s *Session) EmitPhase(phase, typ string, fields ...Field) {
	s.emitPhase(phase, typ, nil, nil, false, fields)
}

func (s *Session) emit(typ string, req, resp []byte, text bool, fields []Field) {
	s.emitPhase("", typ, req, resp, text, fields)
}

func (s *Session) emitPhase(phase, typ string, req, resp []byte, text bool, fields []Field) {
	if s.Events == nil {
		return
	}
	typ = s.qualified(typ)
	if phase == "" && s.KeepEvents > 0 && s.summarise(typ, req, resp, fields) {
		return
	}
	e := NewEvent()
	e.Time, e.Type, e.SessionID, e.Protocol = time.Now().UTC(), typ, s.ID, s.Protocol
	e.Transport, e.Src, e.Dst, e.Sensor, e.Text = s.Transport, s.Remote, s.Local, s.Sensor, text
	e.Start, e.Phase = s.Start, phase
	if e.Start.IsZero() {
		e.Start = e.Time
	}
	if len(fields) > 0 {
		e.fields = append(e.fields[:0], fields...)
		e.Fields = e.fields
	}
	// One buffer, kept with the pooled event, holds both payloads.
	nreq, nresp := s.clipLen(req), s.clipLen(resp)
	if req != nil || resp != nil {
		if e.payload == nil || cap(e.payload) < nreq+nresp {
			e.payload = make([]byte, nreq+nresp)
		}
		buf := e.payload[:nreq+nresp]
		if req != nil {
			e.Request = buf[:nreq:nreq]
			copy(e.Request, req)
		}
		if resp != nil {
			e.Response = buf[nreq : nreq+nresp : nreq+nresp]
			copy(e.Response, resp)
		}
	}
	if s.Host != nil && s.Host.Profile != nil {
		e.Profile = s.Host.Profile.Name
	}
	s.Events.Emit(e)
}

func (s *Session) clipLen(b []byte) int {
	if s.MaxPayload > 0 && len(b) > s.MaxPayload {
		return s.MaxPayload
	}
	return len(b)
}

// Request counts one complete request of the given kind (see Metrics) and marks the
// session active: it stops the request deadline and renews the connection's standing
// against eviction when the sensor's slots run out.
func (s *Session) Request(kind string, failed bool) {
	s.countRequest(kind, failed)
	s.noteRequest(kind, failed)
}

// countRequest is Request but for volume control's note of the request.
func (s *Session) countRequest(kind string, failed bool) {
	if t := s.life.heard.Load(); t != 0 { // the transport read the clock when the request's last bytes came
		s.life.last.Store(t)
	} else {
		s.Touch()
	}
	s.requests.Add(1)
	if s.Metrics == nil {
		return
	}
	if kc := s.lastKind.Load(); kc != nil && kc.kind == kind {
		kc.c.Count(failed)
		return
	}
	km, ok := s.Metrics.(KindMetrics)
	if !ok {
		s.Metrics.Request(s.Protocol, kind, failed)
		return
	}
	c := km.Counter(s.Protocol, kind, s.Stripe)
	s.lastKind.Store(&kindCounter{kind: kind, c: c})
	c.Count(failed)
}

// Requests returns how many requests the session counted.
func (s *Session) Requests() int64 { return s.requests.Load() }

// RateLimit is a request limit a profile sets for a UDP service (Conpot's SNMP "evasion":
// "per-IP;overall" requests per minute). The sensor enforces it in the XDP program when it
// can, else in userspace (protocols/ratelimit), with the same classification and the same
// token buckets either way.
type RateLimit struct {
	Port int // the endpoint's standard port
	// Class is "" for the port's default class (every request no other class takes), or a
	// class name: one of SNMP's built-in, BER-parsed classes ("get", "next", "set", "bulk",
	// SNMP v1/v2c only) when Match is empty, else any name of up to 15 characters
	// [a-z0-9_-] defined by Match.
	Class string
	// Match defines a class by the datagram's payload: a request is in the class when any
	// of the patterns matches. Classes are tried in the order they are declared; the first
	// match wins, and an unmatched request falls in the port's default class.
	Match     []Pattern
	PerSource int // requests per minute from one source address; 0 means unlimited
	Global    int // requests per minute from all sources together; 0 means unlimited
}

// Pattern is one alternative of a class: every ByteMatch in it must hold. Several patterns
// express formats whose fields move (BACnet's NPDU optional fields shift the APDU).
type Pattern []ByteMatch

// ByteMatch holds when the UDP payload is at least Offset+len(Value) bytes long and
// payload[Offset+i] & Mask[i] == Value[i] for every i. A nil Mask means 0xff for every
// byte; otherwise Mask has the length of Value, and Value has no bits outside it. The XDP
// program can test masked bytes within the first 32 bytes of the payload; matches beyond
// them are enforced in userspace.
type ByteMatch struct {
	Offset int
	Value  []byte
	Mask   []byte
}

// RateLimited is implemented by UDP services that declare request limits and leave their
// enforcement to the sensor: in the kernel when the XDP program covers them, else in
// userspace before ServePacket, so a new protocol needs no limiter of its own.
type RateLimited interface {
	RateLimits() []RateLimit
}

// RateLimiter is a RateLimited service that enforces its limits itself in userspace (SNMP,
// to report evaded requests). The sensor hands the limits to the XDP program when it
// loads, and tells the service which ones it need not count.
type RateLimiter interface {
	RateLimited
	// KernelEnforced tells the service which of its limits the sensor now enforces
	// elsewhere (in the kernel, or a [[xdp.rules]] entry overriding it), so it stops
	// counting those itself (nil: none, enforce all in userspace).
	KernelEnforced(limits []RateLimit)
}
