package sensor

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/icsnare/icsnare/events"
	"github.com/icsnare/icsnare/protocols"
)

// Sink writes events somewhere (events.Sink).
type Sink = events.Sink

// Bus carries events from protocol goroutines to the sinks. Every sink has its own bounded
// queue and goroutine, so a slow or dead sink costs drops counted against that sink and
// nothing else: Emit never blocks, and shutdown waits for the sinks at most a budget.
// An event is shared by the sinks by reference count (protocols.ShareEvent), never copied.
type Bus struct {
	queues  []*sinkQueue
	stopped atomic.Bool // Run is shutting down: later events are dropped (shutdown)

	// OnReopenError is called (from a sink's goroutine) when a sink fails to reopen its file.
	OnReopenError func(sink string, err error)
	// Log hears what each sink lost at shutdown; nil is quiet.
	Log *slog.Logger

	done chan struct{}
}

// Reasons an event was dropped by a sink (icsnare_events_dropped_total{reason}).
const (
	DropQueueFull  = iota // the sink's queue was full
	DropWriteError        // the sink's Write failed
	DropShutdown          // still queued (or emitted) when the shutdown budget ran out
	numDropReasons
)

// DropReasons names the drop reasons, indexed by the Drop constants.
var DropReasons = [numDropReasons]string{"queue_full", "write_error", "shutdown"}

// sinkQueue is one sink, its queue and its counters.
type sinkQueue struct {
	sink    Sink
	ch      chan *protocols.Event
	reopen  chan struct{}
	done    chan struct{}
	sent    atomic.Int64
	dropped [numDropReasons]atomic.Int64
	lastOK  atomic.Int64 // unix nanoseconds of the last batch written without error
	// abandoned is set when the shutdown budget ran out with the sink still busy: its
	// goroutine counts whatever it still holds as lost.
	abandoned atomic.Bool
	// writing is 1 while the sink's Write runs; abandoning the sink swaps it to 2 and
	// counts the event that Write holds as lost.
	writing atomic.Int32
}

// Reopener is a Sink that can reopen its file after log rotation (events.Reopener).
type Reopener = events.Reopener

// NewBus returns a bus whose sinks each have room for size queued events.
func NewBus(size int, sinks ...Sink) *Bus {
	if size < 1 {
		size = 1
	}
	b := &Bus{done: make(chan struct{})}
	for _, s := range sinks {
		b.queues = append(b.queues, &sinkQueue{sink: s, ch: make(chan *protocols.Event, size),
			reopen: make(chan struct{}, 1), done: make(chan struct{})})
	}
	return b
}

// Reopen asks every sink that can to reopen its file (SIGHUP after logrotate); it never
// blocks. OnReopenError, when set, hears of a sink that could not reopen (it keeps its old
// file).
func (b *Bus) Reopen() {
	for _, q := range b.queues {
		select {
		case q.reopen <- struct{}{}:
		default:
		}
	}
}

// Emit implements protocols.Emitter. It never blocks: a sink whose queue is full loses
// the event, counted as queue_full against it.
func (b *Bus) Emit(e *protocols.Event) {
	if len(b.queues) == 0 {
		protocols.ReleaseEvent(e)
		return
	}
	if b.stopped.Load() {
		for _, q := range b.queues {
			q.dropped[DropShutdown].Add(1)
		}
		protocols.ReleaseEvent(e)
		return
	}
	protocols.ShareEvent(e, len(b.queues))
	for _, q := range b.queues {
		select {
		case q.ch <- e:
		default:
			q.dropped[DropQueueFull].Add(1)
			protocols.UnshareEvent(e)
		}
	}
}

// Dropped returns how many events the sinks dropped, for every reason, summed over sinks.
func (b *Bus) Dropped() int64 {
	var n int64
	for _, q := range b.queues {
		for i := range q.dropped {
			n += q.dropped[i].Load()
		}
	}
	return n
}

// Written returns how many events the sinks wrote, summed over sinks.
func (b *Bus) Written() int64 {
	var n int64
	for _, q := range b.queues {
		n += q.sent.Load()
	}
	return n
}

// SinkStats is what the bus counted for one sink.
type SinkStats struct {
	Name      string
	Sent      int64
	Dropped   [numDropReasons]int64 // by reason, indexed like DropReasons
	Queued    int                   // events waiting in the queue now
	QueueCap  int
	LastOK    time.Time // last batch written without error (zero: none yet)
	Spooled   int64     // events the sink holds in its spool (events.Spooler); -1 when it has none
	Abandoned bool      // the shutdown budget ran out with the sink still writing
}

// Stats returns the counters of every sink, in the order of the sinks.
func (b *Bus) Stats() []SinkStats {
	out := make([]SinkStats, len(b.queues))
	for i, q := range b.queues {
		st := SinkStats{Name: q.sink.Name(), Sent: q.sent.Load(), Queued: len(q.ch), QueueCap: cap(q.ch),
			Spooled: -1, Abandoned: q.abandoned.Load()}
		for r := range q.dropped {
			st.Dropped[r] = q.dropped[r].Load()
		}
		if t := q.lastOK.Load(); t != 0 {
			st.LastOK = time.Unix(0, t)
		}
		if sp, ok := q.sink.(events.Spooler); ok {
			st.Spooled = sp.Spooled()
		}
		out[i] = st
	}
	return out
}

// Run runs every sink's goroutine until ctx is done. Then each sink writes what is queued,
// flushes and closes, all within budget; a sink still busy when the budget runs out is
// abandoned (its queued events count as dropped, shutdown) and Log hears what each sink
// lost.
func (b *Bus) Run(ctx context.Context, budget time.Duration) {
	defer close(b.done)
	stop := make(chan struct{})
	var deadline atomic.Int64
	for _, q := range b.queues {
		go q.run(stop, &deadline, b.OnReopenError)
	}
	<-ctx.Done()
	end := time.Now().Add(budget)
	deadline.Store(end.UnixNano())
	b.stopped.Store(true)
	close(stop)
	all := make(chan struct{})
	go func() { // leaks only with a sink blocked for ever, which the process outlives
		for _, q := range b.queues {
			<-q.done
		}
		close(all)
	}()
	timer := time.NewTimer(budget)
	defer timer.Stop()
	select {
	case <-all:
	case <-timer.C:
		for _, q := range b.queues {
			select {
			case <-q.done:
			default:
				q.abandoned.Store(true)
				if q.writing.CompareAndSwap(1, 2) {
					q.dropped[DropShutdown].Add(1)
				}
				q.drain()
			}
		}
	}
	b.report()
}

// report logs, per sink, what it lost; quiet when nothing was lost.
func (b *Bus) report() {
	if b.Log == nil {
		return
	}
	for _, st := range b.Stats() {
		var lost int64
		for _, n := range st.Dropped {
			lost += n
		}
		if lost == 0 && !st.Abandoned {
			continue
		}
		args := []any{"sink", st.Name, "sent", st.Sent}
		for r, n := range st.Dropped {
			args = append(args, "dropped_"+DropReasons[r], n)
		}
		if st.Abandoned {
			b.Log.Error("events: sink still blocked when the shutdown budget ran out; abandoned it (what it buffered is lost too)", args...)
			continue
		}
		b.Log.Warn("events: sink lost events", args...)
	}
}

// Wait blocks until Run has returned.
func (b *Bus) Wait() { <-b.done }

// batchWait is how long a sink's goroutine lets events queue after writing a batch: under
// load protocol goroutines queue events without waking it, one wake-up per batch.
const batchWait = time.Millisecond

// flushEvery is how often a sink that wrote since its last flush is flushed.
const flushEvery = 200 * time.Millisecond

// run is a sink's goroutine: it writes batches, flushes on a timer, reopens on request and,
// once stop is closed, writes what is queued until the deadline, then flushes and closes.
func (q *sinkQueue) run(stop <-chan struct{}, deadline *atomic.Int64, onReopenErr func(string, error)) {
	defer close(q.done)
	tick := time.NewTicker(flushEvery)
	defer tick.Stop()
	pause := time.NewTimer(time.Hour)
	pause.Stop()
	defer pause.Stop()
	dirty := false
	for {
		select {
		case e := <-q.ch:
			ok := q.deliver(e)
			for n := len(q.ch); n > 0; n-- {
				ok = q.deliver(<-q.ch) || ok
			}
			if ok {
				q.lastOK.Store(time.Now().UnixNano())
			}
			dirty = true
			pause.Reset(batchWait)
			select {
			case <-pause.C:
			case <-stop:
				pause.Stop()
			}
		case <-q.reopen:
			if r, ok := q.sink.(Reopener); ok {
				if err := r.Reopen(); err != nil && onReopenErr != nil {
					onReopenErr(q.sink.Name(), err)
				}
			}
		case <-tick.C:
			if dirty {
				dirty = q.sink.Flush() != nil // a failed flush is retried at the next tick
			}
		case <-stop:
			end := time.Unix(0, deadline.Load())
			for len(q.ch) > 0 && time.Now().Before(end) && !q.abandoned.Load() {
				q.deliver(<-q.ch)
			}
			if q.abandoned.Load() {
				return
			}
			q.drain()
			q.sink.Flush()
			q.sink.Close()
			return
		}
	}
}

// deliver writes e to the sink and gives back its hold on e (sinks must not keep it); it
// reports whether the sink wrote it.
func (q *sinkQueue) deliver(e *protocols.Event) bool {
	defer protocols.UnshareEvent(e)
	if q.abandoned.Load() {
		q.dropped[DropShutdown].Add(1)
		return false
	}
	q.writing.Store(1)
	err := q.sink.Write(e)
	if !q.writing.CompareAndSwap(1, 0) {
		return false // abandoned meanwhile, and counted as lost
	}
	if err != nil {
		q.dropped[DropWriteError].Add(1)
		return false
	}
	q.sent.Add(1)
	return true
}

// drain drops what is queued, counted as shutdown losses.
func (q *sinkQueue) drain() {
	for {
		select {
		case e := <-q.ch:
			q.dropped[DropShutdown].Add(1)
			protocols.UnshareEvent(e)
		default:
			return
		}
	}
}

// JSONSink writes one JSON object per line.
type JSONSink struct {
	name string
	out  *output
	opts JSONOptions
	buf  []byte
	// conpot gives the conpot format's documents, with the sessions they ended.
	conpot events.ConpotSessions
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
	// RotateSize and RotateAge rotate the file (0: never): it is renamed to
	// <file>.<UTC time stamp>, compressed when Compress is "gzip" or "zstd", and the newest
	// Keep rotated files are kept (0: all).
	RotateSize int64
	RotateAge  time.Duration
	Keep       int
	Compress   string
	// Fsync is FsyncNever (""), FsyncInterval (every FsyncInterval at most) or FsyncAlways.
	Fsync         string
	FsyncInterval time.Duration
	// Log hears of write errors (once per run of them), recovery and rotation trouble.
	Log *slog.Logger
}

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
	s := &JSONSink{name: "file", opts: opts}
	s.out = newOutput(f, f, f, path, &s.opts)
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
	s := &JSONSink{name: name, opts: opts}
	s.out = newOutput(w, nil, c, "", &s.opts)
	return s
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
	return s.out.write(s.buf)
}

// appendConpot appends the Conpot documents for e, one per line.
func (s *JSONSink) appendConpot(b []byte, e *protocols.Event) []byte {
	if isSummary(e) {
		return b // volume control's: Conpot has no counterpart
	}
	for _, d := range s.conpot.Documents(e) {
		b = events.AppendConpotDocument(b, e, d, s.opts.PublicIP)
		b = append(b, '\n')
	}
	return b
}

func isSummary(e *protocols.Event) bool {
	return e.Type == FloodSummaryEvent || strings.HasSuffix(e.Type, "."+SessionSummaryEvent)
}

// Reopen closes the events file and opens it again (after logrotate moved it away),
// applying the mode and group again; what was buffered goes to the old file first. A sink
// writing to stdout only flushes.
func (s *JSONSink) Reopen() error { return s.out.reopen() }

// Flush implements Sink.
func (s *JSONSink) Flush() error { return s.out.flush() }

// Close implements Sink.
func (s *JSONSink) Close() error { return s.out.close() }

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
		b = events.AppendConpotDocument(b, e, d, "")
		b = append(b, '\n')
	}
	return b
}
