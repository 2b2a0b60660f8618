package hpfeeds

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/icsnare/icsnare/events"
	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/sinks/internal/pipe"
)

// maxBrokerMessage bounds what the sink reads from the broker (OP_INFO, OP_ERROR, and
// publications of channels it never subscribed to, which it discards).
const maxBrokerMessage = 64 << 10

// Sink publishes events to an hpfeeds broker.
type Sink struct {
	name     string
	o        *Options
	log      *slog.Logger
	pipe     *pipe.Pipe
	channels []string
	perEvent bool // a channel names {type} or {protocol}
	payload  []byte
	msg      []byte
	conpot   events.ConpotSessions // the conpot format's documents, with the sessions they ended
	oversize atomic.Uint64

	mu            sync.Mutex
	brokerErrors  uint64
	lastBrokerErr string
	lastErrLog    time.Time
	lastAuthLog   time.Time
}

var (
	_ events.Sink    = (*Sink)(nil)
	_ events.Spooler = (*Sink)(nil)
)

// Open starts a sink with validated options; it connects on the first event.
func Open(o *Options, env events.Env) (*Sink, error) {
	if o.secret == "" {
		if err := o.Validate(); err != nil {
			return nil, err
		}
	}
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Sink{name: "hpfeeds " + o.Address, o: o, log: log, channels: o.Channels}
	for _, c := range o.Channels {
		s.perEvent = s.perEvent || strings.Contains(c, "{")
	}
	s.pipe = pipe.New(s.dial, pipe.Options{
		Name: s.name, DialTimeout: o.DialTimeout, BackoffMin: o.ReconnectMin, BackoffMax: o.ReconnectMax,
		MaxBacklog: o.Backlog, MaxBacklogMessages: o.BacklogMessages, CloseTimeout: o.CloseTimeout,
		Logger: log,
	})
	return s, nil
}

// Name implements events.Sink.
func (s *Sink) Name() string { return s.name }

// Write implements events.Sink: it publishes e on every channel (nothing when the conpot
// format has no document for it), or keeps the messages in the backlog while the broker is
// unreachable. An error reports messages dropped: by a full backlog, or too large to publish.
func (s *Sink) Write(e *protocols.Event) error {
	var errs []error
	publish := func(payload []byte) {
		for _, tmpl := range s.channels {
			ch := tmpl
			if s.perEvent {
				ch = Channel(tmpl, e)
			}
			var err error
			s.msg, err = AppendPublish(s.msg[:0], s.o.Ident, ch, payload)
			if err != nil {
				s.oversize.Add(1)
				errs = append(errs, fmt.Errorf("%s: event %s not published on %s: %w", s.name, e.Type, ch, err))
				continue
			}
			if err := s.pipe.Send(s.msg); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if s.o.Format == FormatIcsnare {
		s.payload = events.AppendJSON(s.payload[:0], e)
		publish(s.payload)
		return errors.Join(errs...)
	}
	for _, d := range s.conpot.Documents(e) {
		s.payload = AppendConpotRecord(s.payload[:0], e, d, s.o.PublicIP)
		publish(s.payload)
	}
	return errors.Join(errs...)
}

// Channel expands a channel name: {type} is the event type, {protocol} its protocol; the
// result is cut to 255 bytes.
func Channel(tmpl string, e *protocols.Event) string {
	ch := strings.NewReplacer("{type}", e.Type, "{protocol}", e.Protocol).Replace(tmpl)
	if len(ch) > 255 {
		ch = ch[:255]
	}
	return ch
}

// Flush implements events.Sink: it publishes the backlog when the broker is back.
func (s *Sink) Flush() error { return s.pipe.Flush() }

// Close implements events.Sink: it publishes the backlog within close_timeout and reports
// what it could not.
func (s *Sink) Close() error { return s.pipe.Close() }

// Spooled implements events.Spooler: the messages waiting in the backlog.
func (s *Sink) Spooled() int64 { return int64(s.pipe.Backlog()) }

// Stats are the sink's counters.
type Stats struct {
	pipe.Stats
	Oversize     uint64 // events too large for one hpfeeds message
	BrokerErrors uint64 // OP_ERROR messages the broker sent after authentication (each lost a publish)
	BrokerError  string // the last one
}

// Stats returns the sink's counters.
func (s *Sink) Stats() Stats {
	ps := s.pipe.Stats()
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Stats: ps, Oversize: s.oversize.Load(), BrokerErrors: s.brokerErrors, BrokerError: s.lastBrokerErr}
}

// brokerError records an OP_ERROR the broker sent on an authenticated connection (a
// publish it refused: "Authkey not allowed to pub here …"); logged once a minute at most.
func (s *Sink) brokerError(msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.brokerErrors++
	s.lastBrokerErr = msg
	if now := time.Now(); now.Sub(s.lastErrLog) >= time.Minute {
		s.lastErrLog = now
		s.log.Error("hpfeeds broker refused a publish; those events are lost", "sink", s.name, "ident", s.o.Ident,
			"error", msg, "broker_errors", s.brokerErrors)
	}
}

// authFailed logs a refusal of the credentials (once a minute at most: the sink keeps
// dialling with back-off) and returns it.
func (s *Sink) authFailed(ae *AuthError) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now := time.Now(); now.Sub(s.lastAuthLog) >= time.Minute {
		s.lastAuthLog = now
		s.log.Error("hpfeeds authentication failed", "sink", s.name, "err", ae)
	}
	return ae
}

// AuthError is a broker's refusal of the sink's credentials.
type AuthError struct {
	Broker, Ident, Msg string
}

func (e *AuthError) Error() string {
	if e.Msg == "" {
		return fmt.Sprintf("hpfeeds broker %q closed the connection after OP_AUTH: ident %q or its secret is wrong", e.Broker, e.Ident)
	}
	return fmt.Sprintf("hpfeeds broker %q refused ident %q: %s (check ident and secret)", e.Broker, e.Ident, e.Msg)
}

// dial connects and authenticates: OP_INFO from the broker, OP_AUTH, then auth_wait for an
// OP_ERROR (brokers answer a bad secret with one and close; a good one gets no answer).
func (s *Sink) dial(ctx context.Context) (pipe.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", s.o.Address)
	if err != nil {
		return nil, err
	}
	hc, err := s.handshake(ctx, c)
	if err != nil {
		c.Close()
		return nil, err
	}
	return hc, nil
}

func (s *Sink) handshake(ctx context.Context, c net.Conn) (*conn, error) {
	deadline, _ := ctx.Deadline()
	c.SetDeadline(deadline)
	op, p, buf, err := ReadMessage(c, nil, maxBrokerMessage)
	if err != nil {
		return nil, fmt.Errorf("reading OP_INFO: %w", err)
	}
	switch op {
	case OpInfo:
	case OpError:
		return nil, fmt.Errorf("the broker sent OP_ERROR instead of OP_INFO: %q", p)
	default:
		return nil, fmt.Errorf("the broker sent opcode %d instead of OP_INFO", op)
	}
	broker, nonce, err := ParseInfo(p)
	if err != nil {
		return nil, err
	}
	auth, err := AppendAuth(nil, s.o.Ident, nonce, s.o.secret)
	if err != nil {
		return nil, err
	}
	if _, err := c.Write(auth); err != nil {
		return nil, fmt.Errorf("writing OP_AUTH: %w", err)
	}
	c.SetReadDeadline(time.Now().Add(s.o.AuthWait))
	for {
		op, p, buf, err = ReadMessage(c, buf, maxBrokerMessage)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			break // no refusal: authenticated
		}
		if err != nil {
			return nil, s.authFailed(&AuthError{Broker: broker, Ident: s.o.Ident})
		}
		if op == OpError {
			return nil, s.authFailed(&AuthError{Broker: broker, Ident: s.o.Ident, Msg: string(p)})
		}
	}
	c.SetDeadline(time.Time{})
	return &conn{c: c, wt: s.o.WriteTimeout, s: s}, nil
}

// conn is one authenticated connection.
type conn struct {
	c    net.Conn
	wt   time.Duration
	s    *Sink
	in   []byte // a partial message from the broker
	dead bool
}

// Alive peeks at the socket before each publish: a broker's close ends the connection, and
// what the broker sent (OP_ERROR after a refused publish) is read and reported. The sink
// subscribes to nothing, so nothing else arrives; anything else is discarded.
func (c *conn) Alive() bool {
	if c.dead {
		return false
	}
	closed, pending := pipe.Peek(c.c)
	if closed {
		return false
	}
	if !pending {
		return true
	}
	var tmp [4096]byte
	c.c.SetReadDeadline(time.Now().Add(5 * time.Millisecond))
	n, err := c.c.Read(tmp[:])
	c.in = append(c.in, tmp[:n]...)
	for {
		op, p, l, perr := ParseMessage(c.in, maxBrokerMessage)
		if perr != nil {
			c.s.brokerError("unreadable message from the broker: " + perr.Error())
			c.dead = true
			return false
		}
		if l == 0 {
			break
		}
		if op == OpError {
			// The broker refused something (a publish on a channel the ident may not
			// use) and closes the connection: write nothing more into it.
			c.s.brokerError(string(p))
			c.dead = true
		}
		c.in = c.in[:copy(c.in, c.in[l:])]
	}
	var ne net.Error
	if err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
		c.dead = true
	}
	return !c.dead
}

func (c *conn) Send(msg []byte) error {
	c.c.SetWriteDeadline(time.Now().Add(c.wt))
	_, err := c.c.Write(msg)
	return err
}

func (c *conn) Close() error { return c.c.Close() }
