// Package pipe carries encoded messages of a network sink to its peer: one connection at a
// time, dialled again with exponential back-off after a failure, and a bounded backlog of
// the messages that wait while there is none (the oldest go first when it is full, and are
// counted). The syslog and hpfeeds sinks use it.
package pipe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"
)

// Conn is one connection to the peer.
type Conn interface {
	// Send writes one message, bounded by the connection's write timeout.
	Send(msg []byte) error
	// Alive reports whether the connection still looks usable (the peer has not closed
	// it); it must not block.
	Alive() bool
	Close() error
}

// Dialer opens a connection; ctx bounds the dial (and any handshake).
type Dialer func(ctx context.Context) (Conn, error)

// Options configure a Pipe.
type Options struct {
	// Name names the pipe in log lines and errors ("syslog tcp 127.0.0.1:514").
	Name string
	// DialTimeout bounds one dial with its handshake.
	DialTimeout time.Duration
	// BackoffMin and BackoffMax bound the wait between failed dials (doubled after each
	// failure, with up to 20 % jitter).
	BackoffMin, BackoffMax time.Duration
	// MaxBacklog and MaxBacklogMessages bound the messages kept while disconnected.
	MaxBacklog         int
	MaxBacklogMessages int
	// CloseTimeout bounds the last delivery attempt of Close.
	CloseTimeout time.Duration
	Logger       *slog.Logger
}

// Stats are a pipe's counters.
type Stats struct {
	Sent        uint64    // messages the peer's connection took
	Dropped     uint64    // messages lost: the backlog was full, or Close could not deliver them
	Backlog     int       // messages waiting now
	BacklogSize int       // their bytes
	Dials       uint64    // successful dials
	DialFails   uint64    // failed dials
	LastSuccess time.Time // the last time a message was sent
	LastError   string    // the last send or dial error
}

// Pipe sends messages over a Conn it dials when needed. Its methods are safe for concurrent
// use; each returns within the dial and write timeouts.
type Pipe struct {
	opts Options
	dial Dialer

	mu      sync.Mutex
	conn    Conn
	q       queue
	next    time.Time // no dial before
	wait    time.Duration
	down    bool // the last dial or send failed: log the recovery
	stats   Stats
	lastLog time.Time
}

// New returns a Pipe; it dials on the first Send.
func New(dial Dialer, opts Options) *Pipe {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 5 * time.Second
	}
	if opts.BackoffMin <= 0 {
		opts.BackoffMin = 500 * time.Millisecond
	}
	if opts.BackoffMax < opts.BackoffMin {
		opts.BackoffMax = opts.BackoffMin
	}
	if opts.CloseTimeout <= 0 {
		opts.CloseTimeout = 5 * time.Second
	}
	if opts.MaxBacklogMessages <= 0 {
		opts.MaxBacklogMessages = 1 << 20
	}
	return &Pipe{opts: opts, dial: dial, q: queue{maxBytes: opts.MaxBacklog, maxMsgs: opts.MaxBacklogMessages}}
}

// ErrDropped is wrapped by the errors of Send and Close that report lost messages.
var ErrDropped = errors.New("messages dropped")

// Send delivers msg, or keeps a copy of it in the backlog when there is no connection (or
// messages wait before it). The error reports messages this call dropped (wrapping
// ErrDropped): the oldest of a full backlog, or msg itself when it alone exceeds the
// backlog. msg is not kept after Send returns.
func (p *Pipe) Send(msg []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.q.len() == 0 && p.connected() {
		err := p.conn.Send(msg)
		if err == nil {
			p.sentOne()
			return nil
		}
		p.fail(err)
	}
	dropped, fits := p.q.push(msg)
	p.stats.Dropped += uint64(dropped)
	p.drain(time.Now())
	switch {
	case !fits:
		p.stats.Dropped++
		return fmt.Errorf("%s: a message of %d bytes exceeds the backlog of %d bytes: %w", p.opts.Name, len(msg), p.opts.MaxBacklog, ErrDropped)
	case dropped > 0:
		return fmt.Errorf("%s: backlog full (%d messages, %d bytes) while the peer is unreachable: dropped the %d oldest (%d in all): %w",
			p.opts.Name, p.q.len(), p.q.bytes, dropped, p.stats.Dropped, ErrDropped)
	}
	return nil
}

// Flush sends what waits in the backlog, dialling when the back-off allows. With nothing
// waiting it looks at the connection, so a peer's close (or what it sent) is noticed
// between events too.
func (p *Pipe) Flush() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.q.len() == 0 {
		p.connected()
		return nil
	}
	p.drain(time.Now())
	return nil
}

// Close tries once more to deliver the backlog (within CloseTimeout, dialling even inside
// the back-off), closes the connection and reports what it could not deliver.
func (p *Pipe) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	deadline := time.Now().Add(p.opts.CloseTimeout)
	p.next = time.Time{}
	for p.q.len() > 0 && time.Now().Before(deadline) {
		before := p.q.len()
		p.drain(time.Time{})
		if p.q.len() == before {
			break // the peer is unreachable
		}
	}
	if p.conn != nil {
		p.conn.Close()
		p.conn = nil
	}
	if n := p.q.len(); n > 0 {
		p.stats.Dropped += uint64(n)
		p.q.reset()
		err := fmt.Errorf("%s: closed with %d undelivered messages (%s): %w", p.opts.Name, n, p.stats.LastError, ErrDropped)
		p.opts.Logger.Error("event sink lost its backlog at close", "sink", p.opts.Name, "lost", n, "last_error", p.stats.LastError)
		return err
	}
	return nil
}

// Stats returns the pipe's counters.
func (p *Pipe) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.Backlog, s.BacklogSize = p.q.len(), p.q.bytes
	return s
}

// Backlog returns how many messages wait.
func (p *Pipe) Backlog() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.q.len()
}

func (p *Pipe) connected() bool {
	if p.conn == nil {
		return false
	}
	if p.conn.Alive() {
		return true
	}
	p.fail(errors.New("the peer closed the connection"))
	return false
}

func (p *Pipe) sentOne() {
	p.stats.Sent++
	p.stats.LastSuccess = time.Now()
	if p.down {
		p.down = false
		p.opts.Logger.Info("event sink delivering again", "sink", p.opts.Name, "dropped_total", p.stats.Dropped)
	}
}

// fail drops the connection after err and starts the back-off.
func (p *Pipe) fail(err error) {
	if p.conn != nil {
		p.conn.Close()
		p.conn = nil
	}
	p.stats.LastError = err.Error()
	now := time.Now()
	if p.wait == 0 {
		p.wait = p.opts.BackoffMin
	} else {
		p.wait = min(2*p.wait, p.opts.BackoffMax)
	}
	p.next = now.Add(p.wait + time.Duration(rand.Int64N(int64(p.wait)/5+1)))
	// One warning when delivery stops, then one a minute while it stays down.
	if !p.down || now.Sub(p.lastLog) >= time.Minute {
		p.opts.Logger.Warn("event sink cannot deliver; keeping a bounded backlog and retrying with back-off",
			"sink", p.opts.Name, "err", err, "retry_in", p.wait.Round(time.Millisecond), "backlog", p.q.len(), "dropped_total", p.stats.Dropped)
		p.lastLog = now
	}
	p.down = true
}

// drain sends the backlog in order, dialling once when there is no connection and the
// back-off allows (a zero now ignores it).
func (p *Pipe) drain(now time.Time) {
	dialled := false
	for p.q.len() > 0 {
		if !p.connected() {
			if dialled || (!now.IsZero() && now.Before(p.next)) {
				return
			}
			dialled = true
			ctx, cancel := context.WithTimeout(context.Background(), p.opts.DialTimeout)
			c, err := p.dial(ctx)
			cancel()
			if err != nil {
				p.stats.DialFails++
				p.fail(fmt.Errorf("dial: %w", err))
				return
			}
			p.stats.Dials++
			p.conn, p.wait = c, 0
		}
		if err := p.conn.Send(p.q.front()); err != nil {
			p.fail(err)
			return
		}
		p.q.pop()
		p.sentOne()
	}
}

// queue is a FIFO of message copies bounded in bytes and count.
type queue struct {
	msgs     [][]byte
	head     int
	bytes    int
	maxBytes int
	maxMsgs  int
}

func (q *queue) len() int { return len(q.msgs) - q.head }

// push appends a copy of m, first dropping the oldest messages until it fits. fits is false
// (and nothing changes) when m alone is larger than the queue.
func (q *queue) push(m []byte) (dropped int, fits bool) {
	if len(m) > q.maxBytes {
		return 0, false
	}
	for q.len() > 0 && (q.bytes+len(m) > q.maxBytes || q.len() >= q.maxMsgs) {
		q.pop()
		dropped++
	}
	if q.head > 0 && q.head >= len(q.msgs)/2 {
		n := copy(q.msgs, q.msgs[q.head:])
		clear(q.msgs[n:])
		q.msgs, q.head = q.msgs[:n], 0
	}
	q.msgs = append(q.msgs, append([]byte(nil), m...))
	q.bytes += len(m)
	return dropped, true
}

func (q *queue) front() []byte { return q.msgs[q.head] }

func (q *queue) pop() {
	q.bytes -= len(q.msgs[q.head])
	q.msgs[q.head] = nil
	q.head++
	if q.head == len(q.msgs) {
		q.msgs, q.head = q.msgs[:0], 0
	}
}

func (q *queue) reset() { q.msgs, q.head, q.bytes = nil, 0, 0 }
