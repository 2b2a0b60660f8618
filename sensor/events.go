package sensor

import (
	"bufio"
	"context"
	"crypto/sha1"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync/atomic"
	"time"

	"github.com/icsnare/icsnare/events"
	"github.com/icsnare/icsnare/protocols"
)

// Sink writes events somewhere (events.Sink).
type Sink = events.Sink

// Bus is the bounded queue between protocol goroutines and the sinks. Emit never blocks:
// when the queue is full the event is dropped and counted.
type Bus struct {
	ch      chan *protocols.Event
	sinks   []Sink
	dropped atomic.Int64
	written atomic.Int64
	failed  atomic.Int64
	onWrite func(sink int) // the sink's index in sinks
	onDrop  func()
	onFail  func(sink int)
	// OnReopenError is called (from Run) when a sink fails to reopen its file.
	OnReopenError func(sink string, err error)
	done          chan struct{}
	reopen        chan struct{}
}

// Reopener is a Sink that can reopen its file after log rotation (events.Reopener).
type Reopener = events.Reopener

// NewBus returns a bus with room for size queued events.
func NewBus(size int, sinks ...Sink) *Bus {
	return &Bus{ch: make(chan *protocols.Event, size), sinks: sinks, done: make(chan struct{}), reopen: make(chan struct{}, 1)}
}

// Reopen asks Run to reopen every sink's file (SIGHUP after logrotate); it never blocks.
// OnReopenError, when set, hears of a sink that could not reopen (it keeps its old file).
func (b *Bus) Reopen() {
	select {
	case b.reopen <- struct{}{}:
	default:
	}
}

// Emit implements protocols.Emitter.
func (b *Bus) Emit(e *protocols.Event) {
	select {
	case b.ch <- e:
	default:
		b.dropped.Add(1)
		protocols.ReleaseEvent(e)
		if b.onDrop != nil {
			b.onDrop()
		}
	}
}

// Dropped returns how many events were dropped because the queue was full.
func (b *Bus) Dropped() int64 { return b.dropped.Load() }

// Written returns how many events the sinks wrote.
func (b *Bus) Written() int64 { return b.written.Load() }

// Run delivers events to the sinks until ctx is done, then drains what is queued (for at
// most drainFor), flushes and closes the sinks.
func (b *Bus) Run(ctx context.Context, drainFor time.Duration) {
	defer close(b.done)
	// Sinks flush on a timer, not per event: at high rates a flush per event would cost a
	// write system call per request.
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	// After a batch the bus waits batchWait before it looks again, so that under load the
	// protocol goroutines queue events without waking it: one wake-up per batch, not per
	// event. An idle bus blocks on the queue and costs nothing.
	pause := time.NewTimer(time.Hour)
	pause.Stop()
	defer pause.Stop()
	dirty := false
	for {
		select {
		case e := <-b.ch:
			b.deliver(e)
			for n := len(b.ch); n > 0; n-- {
				b.deliver(<-b.ch)
			}
			dirty = true
			pause.Reset(batchWait)
			select {
			case <-pause.C:
			case <-ctx.Done():
				pause.Stop()
			}
		case <-b.reopen:
			for _, s := range b.sinks {
				if r, ok := s.(Reopener); ok {
					if err := r.Reopen(); err != nil && b.OnReopenError != nil {
						b.OnReopenError(s.Name(), err)
					}
				}
			}
		case <-tick.C:
			if dirty {
				b.flush()
				dirty = false
			}
		case <-ctx.Done():
			deadline := time.Now().Add(drainFor)
			for len(b.ch) > 0 && time.Now().Before(deadline) {
				b.deliver(<-b.ch)
			}
			b.flush()
			for _, s := range b.sinks {
				s.Close()
			}
			return
		}
	}
}

// batchWait is how long the bus lets events queue after delivering a batch.
const batchWait = time.Millisecond

// Wait blocks until Run has returned.
func (b *Bus) Wait() { <-b.done }

// deliver writes e to every sink, then gives it back to the event pool: sinks must not
// keep it.
func (b *Bus) deliver(e *protocols.Event) {
	for i, s := range b.sinks {
		if err := s.Write(e); err != nil {
			b.failed.Add(1)
			if b.onFail != nil {
				b.onFail(i)
			}
			continue
		}
		b.written.Add(1)
		if b.onWrite != nil {
			b.onWrite(i)
		}
	}
	protocols.ReleaseEvent(e)
}

func (b *Bus) flush() {
	for _, s := range b.sinks {
		s.Flush()
	}
}

// JSONSink writes one JSON object per line.
type JSONSink struct {
	name string
	w    *bufio.Writer
	c    io.Closer
	opts JSONOptions
	buf  []byte

	// path is the file a Reopen opens again ("" for a writer the sink did not open).
	path string
	// ended holds, for the conpot format, the TCP sessions a protocol's own document has
	// ended (CONNECTION_TERMINATED …), so the sensor's end writes no second one.
	ended map[string]struct{}
}

// JSONOptions shape a JSON sink.
type JSONOptions struct {
	// Conpot selects the documents Conpot's JSON logger writes instead of icsnare's events.
	Conpot bool
	// PublicIP is written as Conpot's public_ip ("" is null). It is never looked up.
	PublicIP string
	// Mode is the events file's permission bits and GID its group, applied whenever the
	// file is opened, created or not; 0 creates it 0640 (under the umask) and leaves an
	// existing file's mode, -1 leaves the group.
	Mode fs.FileMode
	GID  int
}

// maxEndedSessions bounds the sessions a conpot sink remembers as ended.
const maxEndedSessions = 1 << 16

// OpenJSONSink opens path ("-" is stdout) for appending JSON lines. conpot selects Conpot's
// documents (timestamp, sensorid, id, src_ip … data_type, event_type).
func OpenJSONSink(path string, conpot bool) (*JSONSink, error) {
	return OpenJSONSinkWith(path, JSONOptions{Conpot: conpot, GID: -1})
}

// OpenJSONSinkWith opens path ("-" is stdout) for appending JSON lines with the given
// options; a file gets opts.Mode and opts.GID.
func OpenJSONSinkWith(path string, opts JSONOptions) (*JSONSink, error) {
	if path == "-" {
		return NewJSONSinkWith("stdout", os.Stdout, nil, opts), nil
	}
	f, err := openEventsFile(path, opts)
	if err != nil {
		return nil, err
	}
	s := NewJSONSinkWith("file", f, f, opts)
	s.path = path
	return s, nil
}

// openEventsFile opens path for appending, creating it, and applies the mode and group.
func openEventsFile(path string, opts JSONOptions) (*os.File, error) {
	mode := opts.Mode
	if mode == 0 {
		mode = 0o640
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, mode)
	if err != nil {
		return nil, fmt.Errorf("events file: %w", err)
	}
	// The umask may have taken bits away at creation, and an existing file has its own.
	if opts.Mode != 0 {
		if err := f.Chmod(opts.Mode); err != nil {
			f.Close()
			return nil, fmt.Errorf("events file %s: chmod %#o: %w", path, opts.Mode, err)
		}
	}
	if opts.GID >= 0 {
		if err := f.Chown(-1, opts.GID); err != nil {
			f.Close()
			return nil, fmt.Errorf("events file %s: chgrp %d: %w", path, opts.GID, err)
		}
	}
	return f, nil
}

// NewJSONSink writes JSON lines to w; c (may be nil) is closed on Close.
func NewJSONSink(name string, w io.Writer, c io.Closer, conpot bool) *JSONSink {
	return NewJSONSinkWith(name, w, c, JSONOptions{Conpot: conpot, GID: -1})
}

// NewJSONSinkWith writes JSON lines to w with the given options; c (may be nil) is closed
// on Close.
func NewJSONSinkWith(name string, w io.Writer, c io.Closer, opts JSONOptions) *JSONSink {
	return &JSONSink{name: name, w: bufio.NewWriterSize(w, 256<<10), c: c, opts: opts}
}

// Name implements Sink.
func (s *JSONSink) Name() string { return "json_" + s.name }

// Write implements Sink.
func (s *JSONSink) Write(e *protocols.Event) error {
	if s.opts.Conpot {
		s.buf = s.appendConpot(s.buf[:0], e)
		if len(s.buf) == 0 {
			return nil
		}
	} else {
		s.buf = events.AppendJSON(s.buf[:0], e)
		s.buf = append(s.buf, '\n')
	}
	_, err := s.w.Write(s.buf)
	return err
}

// appendConpot appends the Conpot documents for e, one per line, and keeps track of the
// TCP sessions they ended.
func (s *JSONSink) appendConpot(b []byte, e *protocols.Event) []byte {
	p, ok := protocols.Lookup(e.Protocol)
	if !ok {
		return b // not a protocol's event (the XDP limiter's …): Conpot has no counterpart
	}
	docs := protocols.ConpotDocuments(p, e)
	if e.Phase == protocols.PhaseEnd {
		if _, done := s.ended[e.SessionID]; done {
			docs = nil
		}
		delete(s.ended, e.SessionID)
	}
	for _, d := range docs {
		if e.Phase == "" && e.Transport == protocols.TCP && protocols.ConpotEndsSession(d.EventType) {
			if s.ended == nil || len(s.ended) >= maxEndedSessions {
				s.ended = map[string]struct{}{} // lost end events must not grow it for ever
			}
			s.ended[e.SessionID] = struct{}{}
		}
		b = AppendConpotDocument(b, e, d, s.opts.PublicIP)
		b = append(b, '\n')
	}
	return b
}

// Reopen closes the events file and opens it again (after logrotate moved it away),
// applying the mode and group again. A sink writing to stdout does nothing.
func (s *JSONSink) Reopen() error {
	if s.path == "" {
		return s.w.Flush()
	}
	ferr := s.w.Flush()
	f, err := openEventsFile(s.path, s.opts)
	if err != nil {
		return err // keep writing to the old file rather than lose events
	}
	if s.c != nil {
		s.c.Close()
	}
	s.c = f
	s.w.Reset(f)
	return ferr
}

// Flush implements Sink.
func (s *JSONSink) Flush() error { return s.w.Flush() }

// Close implements Sink.
func (s *JSONSink) Close() error {
	err := s.w.Flush()
	if s.c != nil {
		if cerr := s.c.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// AppendJSON appends the icsnare JSON form of e (events.AppendJSON).
func AppendJSON(b []byte, e *protocols.Event) []byte { return events.AppendJSON(b, e) }

// AppendConpotJSON appends the documents Conpot's JSON logger would write for e, one per
// line, each ending in a newline (nothing when Conpot would log nothing). public_ip is null.
func AppendConpotJSON(b []byte, e *protocols.Event) []byte {
	p, ok := protocols.Lookup(e.Protocol)
	if !ok {
		return b
	}
	for _, d := range protocols.ConpotDocuments(p, e) {
		b = AppendConpotDocument(b, e, d, "")
		b = append(b, '\n')
	}
	return b
}

// conpotTimeLayout is Python's datetime.isoformat() of a naive datetime with microseconds;
// without them it drops the fraction (see appendConpotTime).
const conpotTimeLayout = "2006-01-02T15:04:05.000000"

// appendConpotTime writes start (or, when zero, at) as Python's isoformat() of a naive UTC
// datetime: microseconds, and no fraction at all when they are zero.
func appendConpotTime(b []byte, start, at time.Time) []byte {
	t := start
	if t.IsZero() {
		t = at
	}
	t = t.UTC().Truncate(time.Microsecond)
	if t.Nanosecond() == 0 {
		return t.AppendFormat(b, "2006-01-02T15:04:05")
	}
	return t.AppendFormat(b, conpotTimeLayout)
}

// sessionUUIDSpace is the name space of session UUIDs (RFC 9562 §5.5, name-based with
// SHA-1): fa52f727-79da-5bfc-92e5-a1dc68c2f715, the UUIDv5 of "icsnare-session" in the
// URL name space.
var sessionUUIDSpace = [16]byte{0xfa, 0x52, 0xf7, 0x27, 0x79, 0xda, 0x5b, 0xfc, 0x92, 0xe5, 0xa1, 0xdc, 0x68, 0xc2, 0xf7, 0x15}

// SessionUUID returns the UUID that stands for an icsnare session id in Conpot's "id": a
// name-based (version 5) UUID of the id, so every document of a session carries the same
// one and different sessions different ones.
func SessionUUID(sessionID string) string {
	return string(appendSessionUUID(nil, sessionID))
}

func appendSessionUUID(b []byte, sessionID string) []byte {
	h := sha1.New()
	h.Write(sessionUUIDSpace[:])
	h.Write([]byte(sessionID))
	var sum [sha1.Size]byte
	u := h.Sum(sum[:0])[:16]
	u[6] = u[6]&0x0f | 0x50 // version 5
	u[8] = u[8]&0x3f | 0x80 // RFC 9562 variant
	for i, x := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		b = append(b, hexDigits[x>>4], hexDigits[x&15])
	}
	return b
}

const hexDigits = "0123456789abcdef"
