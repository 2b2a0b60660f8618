package nats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/icsnare/icsnare/events"
	"github.com/icsnare/icsnare/protocols"
)

// MsgIDField is the JSON field the sink adds to every event: the event's id, also its
// Nats-Msg-Id.
const MsgIDField = "event_id"

// Sink publishes events to JetStream. Write never waits for the network: events queue in
// memory (Buffer), then in the spool; a goroutine publishes them in order with at most
// MaxInFlight acks outstanding.
type Sink struct {
	o      Options
	sensor string
	log    *slog.Logger
	nc     *nats.Conn
	js     jetstream.JetStream
	seq    *seqFile
	lock   *os.File

	mu       sync.Mutex
	mem      []*record // older than everything in the spool
	sp       *spool
	scratch  []byte
	subjects map[string]string // event type → subject
	buf      []byte            // Write's encoding buffer

	inflight []flight // the sender's; Close's once the sender is done
	streamOK bool
	outage   bool // the sender's: it has logged that it cannot deliver
	// the sender's: Close asked it to stop; it delivers what it can until deadline
	stopping bool
	deadline time.Time

	wake, conn chan struct{}
	stop, done chan struct{}
	closeOnce  sync.Once

	sent, dups, dropped, failures atomic.Int64
	lastSuccess                   atomic.Int64 // unix nanoseconds
	dropLogged, rejectLogged      atomic.Bool
}

type flight struct {
	r    *record
	fut  jetstream.PubAckFuture
	sent time.Time
	// rejected: the server will never take this event (larger than its max_payload, or
	// than the stream's max_msg_size); it is dropped and counted when its turn comes, so
	// the spool's acknowledgements stay in order.
	rejected error
}

// permanent reports whether the server refused a message for good: retrying would stall
// every event behind it.
func permanent(err error) bool {
	var api *jetstream.APIError
	return errors.Is(err, nats.ErrMaxPayload) ||
		errors.As(err, &api) && api.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum
}

var _ events.Spooler = (*Sink)(nil)

// Open starts a sink. The server need not be up: the sink spools until it is.
func Open(ctx context.Context, o Options, env events.Env) (*Sink, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if env.StateDir == "" {
		return nil, errors.New("the nats sink keeps its spool and sequence in the state directory: set [state] dir")
	}
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dir := filepath.Join(env.StateDir, "nats", Token(env.SensorID))
	if err := os.MkdirAll(filepath.Join(dir, "spool"), 0o700); err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	s := &Sink{o: o, sensor: env.SensorID, log: log.With("sink", "nats"), subjects: map[string]string{},
		wake: make(chan struct{}, 1), conn: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	var err error
	if s.lock, err = lockDir(dir); err != nil {
		return nil, err
	}
	fail := func(err error) (*Sink, error) {
		if s.sp != nil {
			s.sp.close()
		}
		s.lock.Close()
		return nil, err
	}
	if s.seq, err = openSeq(filepath.Join(dir, "seq"), time.Now()); err != nil {
		return fail(fmt.Errorf("nats: %w", err))
	}
	var lost int64
	if s.sp, lost, err = openSpool(filepath.Join(dir, "spool"), o.SpoolMaxBytes, o.SpoolSegmentBytes); err != nil {
		return fail(fmt.Errorf("nats: %w", err))
	}
	if lost > 0 {
		s.dropped.Add(lost)
		s.log.Warn("nats: the spool ended in damaged records (a crash while writing); cut them off", "records", lost)
	}
	if err := chownLike(env.StateDir, dir); err != nil {
		return fail(fmt.Errorf("nats: %w", err))
	}
	if s.sp.count > 0 {
		s.log.Info("nats: events spooled by an earlier run wait for the server", "events", s.sp.count)
	}
	nopts, err := o.conn().Options("icsnare " + env.SensorID)
	if err != nil {
		return fail(fmt.Errorf("nats: %w", err))
	}
	nopts = append(nopts,
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { s.signal(s.conn) }),
		nats.ReconnectHandler(func(*nats.Conn) { s.signal(s.conn) }),
		nats.ConnectHandler(func(*nats.Conn) { s.signal(s.conn) }),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			s.log.Debug("nats: asynchronous error", "err", err)
		}))
	if s.nc, err = nats.Connect(o.conn().URL(), nopts...); err != nil {
		return fail(fmt.Errorf("nats: %w", err))
	}
	if s.js, err = jetstream.New(s.nc, jetstream.WithPublishAsyncMaxPending(2*o.MaxInFlight),
		jetstream.WithPublishAsyncTimeout(o.AckTimeout)); err != nil {
		s.nc.Close()
		return fail(fmt.Errorf("nats: %w", err))
	}
	go s.run(ctx)
	return s, nil
}

// lockDir keeps a second process from sharing the spool.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("nats: %s is in use by another icsnare: %w", dir, err)
	}
	return f, nil
}

// chownLike gives dir and what it holds to the owner of ref (the state directory, which the
// sensor gives to the user it drops privileges to), when running as root.
func chownLike(ref, dir string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	st, err := os.Stat(ref)
	if err != nil {
		return err
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok || sys.Uid == 0 {
		return nil
	}
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Lchown(d, int(sys.Uid), int(sys.Gid)); err != nil {
			return err
		}
	}
	return filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, int(sys.Uid), int(sys.Gid))
	})
}

func (s *Sink) signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Name implements events.Sink.
func (s *Sink) Name() string { return "nats" }

// Write implements events.Sink: it queues e (in memory, or in the spool when events already
// wait there or memory is full) and returns; an event neither place can take is dropped,
// counted and reported as an error.
func (s *Sink) Write(e *protocols.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := s.seq.take()
	if err != nil {
		s.dropped.Add(1)
		return fmt.Errorf("nats: event dropped: %w", err)
	}
	id := Token(s.sensor) + "-" + strconv.FormatUint(n, 10) // a header value: no CR, LF or spaces
	s.buf = appendEvent(s.buf[:0], e, id)
	subj, ok := s.subjects[e.Type]
	if !ok {
		subj = Subject(s.o.SubjectPrefix, s.sensor, e.Type)
		if len(s.subjects) < 4096 {
			s.subjects[e.Type] = subj
		}
	}
	r := &record{id: id, subject: subj}
	if s.sp.count == 0 && len(s.mem) < s.o.Buffer {
		r.data = append([]byte(nil), s.buf...)
		s.mem = append(s.mem, r)
		s.signal(s.wake)
		return nil
	}
	r.data = s.buf
	s.scratch, err = s.sp.append(r, s.scratch)
	if err != nil {
		s.dropped.Add(1)
		if s.dropLogged.CompareAndSwap(false, true) {
			s.log.Error("nats: dropping events: the server is away and the spool cannot take more",
				"err", err, "spool_max_bytes", s.o.SpoolMaxBytes)
		}
		return fmt.Errorf("nats: event dropped: %w", err)
	}
	s.dropLogged.Store(false)
	s.signal(s.wake)
	return nil
}

// appendEvent is the icsnare JSON of e with the event's id as its last field.
func appendEvent(b []byte, e *protocols.Event, id string) []byte {
	b = events.AppendJSON(b, e)
	b = b[:len(b)-1]
	b = append(b, `,"`+MsgIDField+`":`...)
	b = events.AppendString(b, id)
	return append(b, '}')
}

// Flush implements events.Sink: it makes the spool durable.
func (s *Sink) Flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sp.sync()
}

// Spooled implements events.Spooler: events waiting on disk.
func (s *Sink) Spooled() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sp.count
}

// Stats are the sink's counters.
type Stats struct {
	// Sent counts events the stream acknowledged (Duplicates of them as already stored).
	Sent, Duplicates int64
	// Dropped counts events lost: the spool was full, or damaged after a crash.
	Dropped int64
	// Failures counts publish attempts that failed (each sends the sink to the spool).
	Failures int64
	// Buffered and Spooled are the events waiting in memory and on disk.
	Buffered, Spooled int64
	// LastSuccess is when the last ack arrived.
	LastSuccess time.Time
}

// Stats returns the sink's counters.
func (s *Sink) Stats() Stats {
	s.mu.Lock()
	st := Stats{Buffered: int64(len(s.mem)), Spooled: s.sp.count}
	s.mu.Unlock()
	st.Sent, st.Duplicates, st.Dropped, st.Failures = s.sent.Load(), s.dups.Load(), s.dropped.Load(), s.failures.Load()
	if t := s.lastSuccess.Load(); t != 0 {
		st.LastSuccess = time.Unix(0, t)
	}
	return st
}

// Close implements events.Sink: it waits up to CloseTimeout for the events queued to be
// acknowledged, spools the rest for the next run and closes the connection.
func (s *Sink) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.stop)
		<-s.done
		s.mu.Lock()
		var keep []*record
		for _, f := range s.inflight {
			if !f.r.fromDisk {
				keep = append(keep, f.r)
			}
		}
		keep = append(keep, s.mem...)
		s.inflight, s.mem = nil, nil
		if perr := s.sp.prepend(keep); perr != nil {
			s.dropped.Add(int64(len(keep)))
			err = fmt.Errorf("nats: %d events lost: %w", len(keep), perr)
		} else if len(keep) > 0 || s.sp.count > 0 {
			s.log.Warn("nats: events left for the next run", "spooled", s.sp.count)
		}
		err = errors.Join(err, s.sp.close())
		s.mu.Unlock()
		s.nc.Close()
		s.lock.Close()
	})
	return err
}

var (
	errAckTimeout   = errors.New("no publish ack in time")
	errDisconnected = errors.New("disconnected")
)

// run is the sender: it publishes queued events in order while the server acknowledges
// them, and backs off while it does not.
func (s *Sink) run(ctx context.Context) {
	defer close(s.done)
	pause := 100 * time.Millisecond
	for {
		if !s.stopping {
			select {
			case <-s.stop:
				s.beginStop()
			default:
			}
		}
		err := s.ready(ctx)
		if err == nil {
			var progressed bool
			progressed, err = s.pump()
			if progressed {
				pause = 100 * time.Millisecond
			}
			if err == nil {
				return // stopping, and done or out of time
			}
			s.failures.Add(1)
			s.requeue()
		}
		if !s.outage {
			s.outage = true
			s.log.Warn("nats: cannot deliver; spooling until the server acknowledges again", "err", err,
				"connection_error", s.nc.LastError())
		}
		if s.stopping {
			return
		}
		t := time.NewTimer(pause)
		select {
		case <-t.C:
		case <-s.conn:
		case <-s.stop:
			s.beginStop()
		}
		t.Stop()
		pause = min(2*pause, s.o.RetryMax)
	}
}

// beginStop starts the sender's last CloseTimeout.
func (s *Sink) beginStop() {
	if !s.stopping {
		s.stopping, s.deadline = true, time.Now().Add(s.o.CloseTimeout)
	}
}

// ready reports why publishing cannot start now: not connected, or the stream to create
// could not be.
func (s *Sink) ready(ctx context.Context) error {
	if st := s.nc.Status(); st != nats.CONNECTED {
		return fmt.Errorf("%w (%s)", errDisconnected, st)
	}
	if !s.o.CreateStream || s.streamOK {
		return nil
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.o.AckTimeout)
	defer cancel()
	_, err := s.js.Stream(cctx, s.o.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		_, err = s.js.CreateStream(cctx, jetstream.StreamConfig{
			Name:       s.o.Stream,
			Subjects:   []string{s.o.SubjectPrefix + ".>"},
			Storage:    jetstream.FileStorage,
			Replicas:   s.o.Replicas,
			Duplicates: s.o.DuplicateWindow,
			MaxAge:     s.o.MaxAge,
		})
		if err == nil {
			s.log.Info("nats: created the stream", "stream", s.o.Stream, "subjects", s.o.SubjectPrefix+".>")
		}
	}
	if err != nil {
		return fmt.Errorf("stream %s: %w", s.o.Stream, err)
	}
	s.streamOK = true
	return nil
}

// take returns the next record to publish: memory first (older), then the spool.
func (s *Sink) take() (*record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.mem) > 0 {
		r := s.mem[0]
		s.mem[0] = nil
		s.mem = s.mem[1:]
		if len(s.mem) == 0 {
			s.mem = nil // let the backing array go
		}
		return r, nil
	}
	return s.sp.next()
}

// requeue puts the unacknowledged records back in front: those from memory into memory,
// those from the spool by rewinding it. The stream drops the copies it already has
// (Nats-Msg-Id).
func (s *Sink) requeue() {
	s.js.CleanupPublisher()
	s.mu.Lock()
	defer s.mu.Unlock()
	var back []*record
	for _, f := range s.inflight {
		if !f.r.fromDisk {
			back = append(back, f.r)
		}
	}
	s.mem = append(back, s.mem...)
	s.inflight = nil
	s.sp.rewind()
}

// retire takes the head of the window away: acknowledged, or dropped for good.
func (s *Sink) retire(head flight, cursorSaved *time.Time) {
	s.inflight[0] = flight{}
	s.inflight = s.inflight[1:]
	if len(s.inflight) == 0 {
		s.inflight = nil
	}
	if head.r.fromDisk {
		s.mu.Lock()
		s.sp.ack(head.r)
		if time.Since(*cursorSaved) > time.Second {
			s.sp.saveCursor()
			*cursorSaved = time.Now()
		}
		s.mu.Unlock()
	}
}

// pump publishes until an error (returned), or, stopping, until nothing is left or the
// deadline passes (nil). It starts with one message in flight and opens the window after
// the first ack, so a server that has just come back cannot store a later event before an
// earlier one it refused.
func (s *Sink) pump() (progressed bool, err error) {
	window := 1
	stopC := s.stop // nil once stopping: a closed channel is always ready
	if s.stopping {
		stopC = nil
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	cursorSaved := time.Now()
	for {
		for len(s.inflight) < window {
			r, err := s.take()
			if err != nil {
				s.log.Error("nats: reading the spool", "err", err)
				return progressed, err
			}
			if r == nil {
				break
			}
			m := nats.NewMsg(r.subject)
			m.Header.Set(jetstream.MsgIDHeader, r.id)
			m.Data = r.data
			fut, err := s.js.PublishMsgAsync(m)
			if err != nil && permanent(err) {
				s.inflight = append(s.inflight, flight{r: r, rejected: err})
				continue
			}
			if err != nil {
				s.inflight = append(s.inflight, flight{r: r})
				return progressed, err
			}
			s.inflight = append(s.inflight, flight{r: r, fut: fut, sent: time.Now()})
		}
		if s.stopping && (len(s.inflight) == 0 || time.Now().After(s.deadline)) {
			return progressed, nil
		}
		if len(s.inflight) == 0 {
			timer.Reset(time.Second)
			select {
			case <-s.wake:
			case <-s.conn:
				if s.nc.Status() != nats.CONNECTED {
					return progressed, errDisconnected
				}
			case <-stopC:
				s.beginStop()
				stopC = nil
			case <-timer.C:
			}
			timer.Stop()
			continue
		}
		head := s.inflight[0]
		if head.rejected != nil {
			s.retire(head, &cursorSaved)
			s.dropped.Add(1)
			if s.rejectLogged.CompareAndSwap(false, true) {
				s.log.Error("nats: the server refuses an event for good; dropped (logged once)", "id", head.r.id,
					"bytes", len(head.r.data), "err", head.rejected)
			}
			continue
		}
		wait := time.Until(head.sent.Add(s.o.AckTimeout))
		if s.stopping {
			wait = min(wait, time.Until(s.deadline))
		}
		timer.Reset(max(wait, 0))
		select {
		case ack := <-head.fut.Ok():
			if ack.Duplicate {
				s.dups.Add(1)
			}
			s.sent.Add(1)
			s.lastSuccess.Store(time.Now().UnixNano())
			s.retire(head, &cursorSaved)
			progressed = true
			window = s.o.MaxInFlight
			if s.outage {
				s.outage = false
				s.log.Info("nats: delivering again", "spooled", s.Spooled())
			}
		case err := <-head.fut.Err():
			if permanent(err) {
				s.inflight[0].rejected = err
				continue
			}
			return progressed, err
		case <-timer.C:
			if s.stopping && time.Now().After(s.deadline) {
				return progressed, nil
			}
			if time.Since(head.sent) >= s.o.AckTimeout {
				return progressed, errAckTimeout
			}
		case <-s.conn:
			if s.nc.Status() != nats.CONNECTED {
				return progressed, errDisconnected
			}
		case <-stopC:
			s.beginStop()
			stopC = nil
		case <-s.wake:
		}
		timer.Stop()
	}
}
