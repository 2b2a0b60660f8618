package protocols

import (
	"context"
	"errors"
	"math"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// MaxRepliesPerRequest bounds the datagrams a PacketService may send in answer to one
// request; further replies are dropped and counted.
const MaxRepliesPerRequest = 64

// MaxUnsolicited bounds the datagrams Session.Send may send between two requests of a flow,
// so a spoofed source cannot turn a session into a stream of packets towards a victim.
const MaxUnsolicited = 64

// maxCloseHooks bounds the functions one session runs when it closes.
const maxCloseHooks = 64

// ErrSessionClosed is returned by Send and the endpoint openers once the session has ended.
var ErrSessionClosed = errors.New("session closed")

// ErrNoEndpoints is returned when the sensor offers no ephemeral endpoints.
var ErrNoEndpoints = errors.New("no ephemeral endpoints here")

// ErrSendBudget is returned by Send when the session has sent MaxUnsolicited datagrams since
// its last request.
var ErrSendBudget = errors.New("unsolicited datagram budget spent until the next request")

// lifetime is the part of a session the sensor drives: its context, its per-flow state,
// the hooks run when it ends and, for UDP flows, how to send a datagram.
type lifetime struct {
	last   atomic.Int64 // unix nanoseconds of the last activity
	heard  atomic.Int64 // unix nanoseconds the transport last received data (Received, TimeoutConn.Session); 0: not marked
	mu     sync.Mutex
	ctx    context.Context
	cancel context.CancelFunc
	hooks  []*CloseHook
	closed bool

	state     sync.Map
	send      func([]byte) error
	unsoli    atomic.Int32 // Send calls since the last request
	verified  atomic.Bool
	replyLeft atomic.Int64 // answer bytes the last request may still cause (amplification bound)
}

// Open starts the session's lifetime under parent; send (nil for TCP) sends one datagram to
// the session's remote address from its local address. The sensor calls Open once, before
// the first request, and Close when the connection or flow ends.
func (s *Session) Open(parent context.Context, send func([]byte) error) {
	l := &s.life
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ctx, l.cancel = context.WithCancel(parent)
	l.send = send
	l.last.Store(time.Now().UnixNano())
}

// Context is done when the session ends: its connection closed, its UDP flow went idle or
// was evicted, or the sensor shut down. A session never opened has a background context.
func (s *Session) Context() context.Context {
	l := &s.life
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ctx == nil {
		l.ctx, l.cancel = context.WithCancel(context.Background())
	}
	return l.ctx
}

// Closed reports whether the session has ended.
func (s *Session) Closed() bool {
	l := &s.life
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// OnClose runs fn when the session ends (at once if it has ended already). It is bounded:
// past maxCloseHooks hooks it returns false and does not register fn.
func (s *Session) OnClose(fn func()) bool { return s.NewCloseHook(fn).Add() }

// CloseHook is a function a session runs when it ends, which its owner may take back
// first (an ephemeral endpoint, one transfer of a long-lived flow): a session that opens
// and closes endpoints all its life then holds hooks for its open ones only. The owner
// keeps the hook before adding it, so its own Close can remove it whichever ends first.
type CloseHook struct {
	l  *lifetime
	fn func()
}

// NewCloseHook returns a hook that runs fn; Add registers it.
func (s *Session) NewCloseHook(fn func()) *CloseHook { return &CloseHook{l: &s.life, fn: fn} }

// Add registers the hook, or runs it at once if the session has ended. It is bounded:
// past maxCloseHooks registered hooks it returns false and does not register it.
func (h *CloseHook) Add() bool {
	l := h.l
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		h.fn()
		return true
	}
	if len(l.hooks) >= maxCloseHooks {
		l.mu.Unlock()
		return false
	}
	l.hooks = append(l.hooks, h)
	l.mu.Unlock()
	return true
}

// Remove takes the hook back. It does nothing when the hook is not registered, or once the
// session has closed (the hook has run or runs).
func (h *CloseHook) Remove() {
	l := h.l
	l.mu.Lock()
	if i := slices.Index(l.hooks, h); i >= 0 {
		l.hooks = slices.Delete(l.hooks, i, i+1)
	}
	l.mu.Unlock()
}

// Close ends the session: its context is cancelled and its close hooks run, latest first.
// Only the sensor (or a test) calls it; later calls do nothing.
func (s *Session) Close() {
	l := &s.life
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	hooks := l.hooks
	l.hooks = nil
	if l.cancel != nil {
		l.cancel()
	}
	l.mu.Unlock()
	for i := len(hooks) - 1; i >= 0; i-- {
		hooks[i].fn()
	}
}

// State returns the session's state stored under key, creating it with init on first use.
// UDP services keep per-flow state here (an RMCP+ session, a BACnet segmented transfer);
// it lives as long as the flow.
func (s *Session) State(key string, init func() any) any {
	if v, ok := s.life.state.Load(key); ok {
		return v
	}
	v, _ := s.life.state.LoadOrStore(key, init())
	return v
}

// Touch marks the session active now, so an idle timeout does not end it while an
// ephemeral endpoint of it is busy.
func (s *Session) Touch() { s.life.last.Store(time.Now().UnixNano()) }

// heardAt records that the transport received data at unixNano (the clock it read for its
// deadlines). It is not activity (a client trickling bytes does not renew its standing);
// Request makes it so when the data completes a request, with no clock reading of its own.
func (s *Session) heardAt(unixNano int64) { s.life.heard.Store(unixNano) }

// LastActive returns when the session last saw traffic (or Touch).
func (s *Session) LastActive() time.Time { return time.Unix(0, s.life.last.Load()) }

// Received records that a request of n bytes arrived: it marks the session active and
// renews the budgets of unsolicited datagrams and of answer bytes (MaxReply(n)). The sensor
// calls it for every datagram of the flow.
func (s *Session) Received(n int) { s.ReceivedAt(n, time.Now()) }

// ReceivedAt is Received for a request that arrived at at (the clock the sensor read for
// it anyway).
func (s *Session) ReceivedAt(n int, at time.Time) {
	t := at.UnixNano()
	s.life.last.Store(t) // a datagram is a whole request
	s.heardAt(t)
	s.life.unsoli.Store(0)
	s.life.replyLeft.Store(int64(s.MaxReply(n)))
}

// TakeReply takes n bytes from the answer budget of the last request; false means the
// answer would pass the amplification bound. The sensor calls it for every datagram it sends
// for the session; a verified session always has room.
func (s *Session) TakeReply(n int) bool {
	if s.Amplification <= 0 || s.Verified() {
		return true
	}
	if s.life.replyLeft.Add(-int64(n)) < 0 {
		s.life.replyLeft.Add(int64(n))
		return false
	}
	return true
}

// Verify records that the remote has completed an exchange a spoofed source cannot (it
// echoed a value the host chose: an RMCP+ session id, a TFTP transfer port), so its answers
// are no longer bound by the amplification factor.
func (s *Session) Verify() { s.life.verified.Store(true) }

// Verified reports whether Verify was called.
func (s *Session) Verified() bool { return s.life.verified.Load() }

// MaxReply returns how many bytes the answers to one request of reqLen bytes may hold
// together: the amplification bound for a session not yet verified, else no bound. The
// sensor drops answers beyond it; a service that can shrink its answer (a bulk read) should.
func (s *Session) MaxReply(reqLen int) int {
	if s.Amplification <= 0 || s.Verified() {
		return math.MaxInt
	}
	return int(s.Amplification * float64(max(reqLen, 1)))
}

// Send sends one datagram to the session's remote address outside a request (a
// retransmission, the next window of a segmented answer). It is bounded by MaxUnsolicited
// between two requests and fails once the session has ended.
func (s *Session) Send(b []byte) error {
	l := &s.life
	l.mu.Lock()
	send, closed := l.send, l.closed
	l.mu.Unlock()
	switch {
	case closed:
		return ErrSessionClosed
	case send == nil:
		return errors.New("session has no datagram path")
	case l.unsoli.Add(1) > MaxUnsolicited:
		return ErrSendBudget
	}
	return send(b)
}

// OpenUDP opens an ephemeral UDP endpoint on the session host's address (a TFTP transfer
// port). It counts against the host's and the sensor's connection caps, closes when idle
// for the sensor's idle timeout, and closes with the session at the latest.
func (s *Session) OpenUDP() (PacketEndpoint, error) {
	if s.Endpoints == nil {
		return nil, ErrNoEndpoints
	}
	if s.Closed() {
		return nil, ErrSessionClosed
	}
	return s.Endpoints.OpenUDP(s)
}

// OpenTCP opens an ephemeral TCP listener on the session host's address (an FTP passive
// data port) that accepts one connection from the session's remote address. It counts
// against the caps like OpenUDP and closes with the session at the latest.
func (s *Session) OpenTCP() (StreamEndpoint, error) {
	if s.Endpoints == nil {
		return nil, ErrNoEndpoints
	}
	if s.Closed() {
		return nil, ErrSessionClosed
	}
	return s.Endpoints.OpenTCP(s)
}

// EndpointOpener opens sensor-owned endpoints on a session host's own address. The sensor
// implements it; protocols reach it through Session.OpenUDP and Session.OpenTCP.
type EndpointOpener interface {
	OpenUDP(s *Session) (PacketEndpoint, error)
	OpenTCP(s *Session) (StreamEndpoint, error)
}

// PacketEndpoint is an ephemeral UDP socket on the host's address. ReadFrom fails with a
// timeout once the endpoint has been idle for the sensor's idle timeout (or the deadline
// set with SetReadDeadline passes), and with net.ErrClosed after Close or the session's end.
type PacketEndpoint interface {
	// Port is the endpoint's port on the host's address.
	Port() int
	ReadFrom(b []byte) (int, netip.AddrPort, error)
	WriteTo(b []byte, to netip.AddrPort) (int, error)
	// SetReadDeadline sets an earlier deadline for the next reads (a retransmission timer).
	SetReadDeadline(t time.Time) error
	Close() error
}

// StreamEndpoint is an ephemeral TCP listener on the host's address.
type StreamEndpoint interface {
	// Port is the listener's port on the host's address.
	Port() int
	// Accept waits for the one connection the endpoint takes, from the session's remote
	// address (others are refused), until ctx is done, the idle timeout passes or the
	// session ends; the listener closes then. The connection has the sensor's read and write
	// timeouts and closes with the session at the latest.
	Accept(ctx context.Context) (net.Conn, error)
	Close() error
}

// BroadcastService is a PacketService that also answers datagrams sent to a broadcast
// address (a BACnet Who-Is, an EtherNet/IP ListIdentity). The sensor fans such a datagram
// out to every host of the addressed prefix that runs the service, each in its own session
// and answering from its own address, bounded in hosts and answer bytes per request. to is
// the broadcast address the datagram was sent to. Services that do not implement it never
// see broadcasts.
type BroadcastService interface {
	PacketService
	ServeBroadcast(ctx context.Context, s *Session, to netip.Addr, req []byte, reply func(resp []byte))
}
