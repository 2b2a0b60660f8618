// Package collect is the central side of a NATS JetStream fleet (icsnare collect): a
// durable pull consumer that writes the events the sensors publish into JSON-lines files,
// one per sensor and day (<out>/<sensor>/<YYYY-MM-DD>.jsonl), the files a SIEM or T-Pot's
// Logstash reads. A message is acknowledged only after its line is on disk (fsync per
// batch); a redelivered message is recognised by its Nats-Msg-Id within a bounded window
// and written once.
package collect

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	natssink "github.com/icsnare/icsnare/sinks/nats"
)

// Options configure a collector.
type Options struct {
	// Conn is how to reach the cluster.
	Conn natssink.Conn
	// Stream is the stream to read; Durable the consumer's name (kept by the server, so a
	// restarted collector goes on where it stopped); Filter an optional subject filter.
	Stream, Durable, Filter string
	// Prefix is the sensors' subject_prefix: the token after it names the sensor.
	Prefix string
	// Out is the directory of the files.
	Out string
	// Batch is how many messages one fetch asks for; MaxWait how long it waits for them.
	Batch   int
	MaxWait time.Duration
	// AckWait is how long the server waits for an ack before it delivers again.
	AckWait time.Duration
	// DedupWindow is how many recent message ids are remembered.
	DedupWindow int
	// MaxOpenFiles bounds the files kept open.
	MaxOpenFiles int
	// Logger receives progress and problems.
	Logger *slog.Logger
}

// Defaults.
const (
	DefaultDurable      = "icsnare-collect"
	DefaultBatch        = 256
	DefaultMaxWait      = time.Second
	DefaultAckWait      = 30 * time.Second
	DefaultDedupWindow  = 100000
	DefaultMaxOpenFiles = 64
	// seedBytes is how much of each sensor's newest file a starting collector reads to
	// remember the ids it already wrote.
	seedBytes = 8 << 20
	lockFile  = ".icsnare-collect.lock"
)

// Stats count what a collector did.
type Stats struct {
	// Written counts lines written; Duplicates messages seen before (not written again);
	// Invalid messages whose body is not one JSON value (acknowledged and not written).
	Written, Duplicates, Invalid int64
}

// Run collects until ctx ends (it then finishes the batch at hand: writes, syncs and
// acknowledges it) or the files cannot be written (an error; what was not acknowledged is
// delivered again to the next run).
func Run(ctx context.Context, o Options) (Stats, error) {
	o.defaults()
	if err := o.check(); err != nil {
		return Stats{}, err
	}
	c := &collector{o: o, log: o.Logger, files: map[string]*outFile{}, seen: newWindow(o.DedupWindow)}
	if err := os.MkdirAll(o.Out, 0o750); err != nil {
		return c.st, fmt.Errorf("collect: %w", err)
	}
	// two collectors appending to the same files would interleave their buffers
	lock, err := os.OpenFile(filepath.Join(o.Out, lockFile), os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return c.st, fmt.Errorf("collect: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return c.st, fmt.Errorf("collect: %s is in use by another collector: %w", o.Out, err)
	}
	if n, err := c.seed(); err != nil {
		return c.st, err
	} else if n > 0 {
		c.log.Info("collect: remembered the ids already written", "ids", n)
	}
	nopts, err := o.Conn.Options("icsnare collect")
	if err != nil {
		return c.st, fmt.Errorf("collect: %w", err)
	}
	nc, err := nats.Connect(o.Conn.URL(), nopts...)
	if err != nil {
		return c.st, fmt.Errorf("collect: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return c.st, fmt.Errorf("collect: %w", err)
	}
	defer c.closeAll()
	pause := 100 * time.Millisecond
	var lastErr string
	for ctx.Err() == nil {
		err := c.consume(ctx, js)
		if err == nil {
			break
		}
		var fe fileError
		if errors.As(err, &fe) {
			return c.st, err
		}
		if err.Error() != lastErr {
			c.log.Warn("collect: waiting for the stream", "stream", o.Stream, "err", err)
			lastErr = err.Error()
		}
		select {
		case <-ctx.Done():
		case <-time.After(pause):
		}
		pause = min(2*pause, 5*time.Second)
	}
	if err := c.syncAll(); err != nil {
		return c.st, err
	}
	return c.st, nil
}

func (o *Options) defaults() {
	if o.Durable == "" {
		o.Durable = DefaultDurable
	}
	if o.Prefix == "" {
		o.Prefix = "icsnare"
	}
	if o.Batch <= 0 {
		o.Batch = DefaultBatch
	}
	if o.MaxWait <= 0 {
		o.MaxWait = DefaultMaxWait
	}
	if o.AckWait <= 0 {
		o.AckWait = DefaultAckWait
	}
	if o.DedupWindow <= 0 {
		o.DedupWindow = DefaultDedupWindow
	}
	if o.MaxOpenFiles <= 0 {
		o.MaxOpenFiles = DefaultMaxOpenFiles
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

func (o *Options) check() error {
	var errs []error
	if len(o.Conn.Servers) == 0 {
		errs = append(errs, errors.New("collect: no NATS URL"))
	}
	if err := natssink.CheckStreamName(o.Stream); err != nil {
		errs = append(errs, fmt.Errorf("collect: stream: %w", err))
	}
	if err := natssink.CheckStreamName(o.Durable); err != nil {
		errs = append(errs, fmt.Errorf("collect: durable: %w", err))
	}
	if o.Out == "" {
		errs = append(errs, errors.New("collect: no output directory"))
	}
	if o.Batch > 4096 {
		errs = append(errs, fmt.Errorf("collect: batch %d: at most 4096", o.Batch))
	}
	return errors.Join(errs...)
}

type collector struct {
	o     Options
	log   *slog.Logger
	st    Stats
	files map[string]*outFile // "<sensor>/<day>"
	clock uint64              // for least-recently-used eviction
	seen  *window
	dirs  map[string]bool // directories created since the last sync
	bad   time.Time       // last time an invalid message was logged
	// reported is when progress was last logged
	reported time.Time
}

type outFile struct {
	f     *os.File
	w     *bufio.Writer
	used  uint64
	dirty bool
}

// fileError is a failure to write the files: Run stops on it.
type fileError struct{ error }

func (e fileError) Unwrap() error { return e.error }

// consume reads batches until ctx ends (nil) or the consumer fails (an error).
func (c *collector) consume(ctx context.Context, js jetstream.JetStream) error {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	cons, err := js.CreateOrUpdateConsumer(cctx, c.o.Stream, jetstream.ConsumerConfig{
		Durable:       c.o.Durable,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.o.AckWait,
		MaxAckPending: 4 * c.o.Batch,
		FilterSubject: c.o.Filter,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	cancel()
	if err != nil {
		return err
	}
	c.log.Info("collect: consuming", "stream", c.o.Stream, "durable", c.o.Durable, "out", c.o.Out)
	for ctx.Err() == nil {
		batch, err := cons.Fetch(c.o.Batch, jetstream.FetchMaxWait(c.o.MaxWait))
		if err != nil {
			return err
		}
		var got []jetstream.Msg
		for m := range batch.Messages() {
			if err := c.handle(m); err != nil {
				return err
			}
			got = append(got, m)
		}
		if err := c.syncAll(); err != nil {
			return err
		}
		for _, m := range got {
			m.Ack() // lost acks mean a redelivery, which the window absorbs
		}
		if len(got) > 0 && time.Since(c.reported) >= time.Minute {
			c.reported = time.Now()
			c.log.Info("collect: progress", "written", c.st.Written, "duplicates", c.st.Duplicates, "invalid", c.st.Invalid)
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return err
		}
	}
	return nil
}

// handle writes one message (into the file's buffer).
func (c *collector) handle(m jetstream.Msg) error {
	meta, _ := m.Metadata()
	id := m.Headers().Get(jetstream.MsgIDHeader)
	if id == "" && meta != nil {
		id = fmt.Sprintf("%s#%d", meta.Stream, meta.Sequence.Stream)
	}
	if id != "" && c.seen.has(id) {
		c.st.Duplicates++
		return nil
	}
	line, ok := Line(m.Data())
	if !ok {
		c.st.Invalid++
		if time.Since(c.bad) > time.Minute {
			c.bad = time.Now()
			c.log.Warn("collect: a message is not one JSON value; acknowledged, not written", "subject", m.Subject(), "id", id, "invalid_total", c.st.Invalid)
		}
		return nil
	}
	var fallback time.Time
	if meta != nil {
		fallback = meta.Timestamp
	}
	f, err := c.file(SensorOf(m.Subject(), c.o.Prefix), Day(line, fallback))
	if err != nil {
		return err
	}
	f.w.Write(line)
	if err := f.w.WriteByte('\n'); err != nil {
		return fileError{fmt.Errorf("collect: %w", err)}
	}
	f.dirty = true
	c.st.Written++
	if id != "" {
		c.seen.add(id)
	}
	return nil
}

// Line returns body as one line of JSON: compacted when it holds line breaks; ok is false
// when body is not one JSON value.
func Line(body []byte) (line []byte, ok bool) {
	if !json.Valid(body) {
		return nil, false
	}
	if bytes.ContainsAny(body, "\r\n") {
		var b bytes.Buffer
		if json.Compact(&b, body) != nil {
			return nil, false
		}
		return b.Bytes(), true
	}
	return body, true
}

// SensorOf returns the sensor token of subject <prefix>.<sensor>.<type…>: a valid subject
// token, so a safe file name ("_unknown" when the subject is not of that form).
func SensorOf(subject, prefix string) string {
	rest, ok := strings.CutPrefix(subject, prefix+".")
	if !ok {
		return "_unknown"
	}
	sensor, _, ok := strings.Cut(rest, ".")
	if !ok || sensor == "" {
		return "_unknown"
	}
	return natssink.Token(sensor)
}

// Day returns the UTC day (YYYY-MM-DD) of the event's "timestamp", or of fallback when the
// event has none that parses (the current day when fallback is zero too).
func Day(line []byte, fallback time.Time) string {
	const key = `"timestamp":"`
	if i := bytes.Index(line, []byte(key)); i >= 0 {
		rest := line[i+len(key):]
		if j := bytes.IndexByte(rest, '"'); j > 0 && j < 64 {
			if t, err := time.Parse(time.RFC3339Nano, string(rest[:j])); err == nil {
				return t.UTC().Format(time.DateOnly)
			}
		}
	}
	if fallback.IsZero() {
		fallback = time.Now()
	}
	return fallback.UTC().Format(time.DateOnly)
}

// file returns the open file of a sensor and day, opening it (and closing the least
// recently used one past MaxOpenFiles).
func (c *collector) file(sensor, day string) (*outFile, error) {
	key := sensor + "/" + day
	c.clock++
	if f, ok := c.files[key]; ok {
		f.used = c.clock
		return f, nil
	}
	if len(c.files) >= c.o.MaxOpenFiles {
		var oldest string
		for k, f := range c.files {
			if oldest == "" || f.used < c.files[oldest].used {
				oldest = k
			}
		}
		if err := c.files[oldest].close(); err != nil {
			return nil, err
		}
		delete(c.files, oldest)
	}
	dir := filepath.Join(c.o.Out, sensor)
	if _, err := os.Stat(dir); os.IsNotExist(err) {
		if err := os.Mkdir(dir, 0o750); err != nil {
			return nil, fileError{fmt.Errorf("collect: %w", err)}
		}
		if c.dirs == nil {
			c.dirs = map[string]bool{}
		}
		c.dirs[c.o.Out] = true
	}
	path := filepath.Join(dir, day+".jsonl")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fileError{fmt.Errorf("collect: %w", err)}
	}
	if err := cutPartialLine(f); err != nil {
		f.Close()
		return nil, fileError{fmt.Errorf("collect: %s: %w", path, err)}
	}
	if c.dirs == nil {
		c.dirs = map[string]bool{}
	}
	c.dirs[dir] = true
	of := &outFile{f: f, w: bufio.NewWriterSize(f, 64<<10), used: c.clock}
	c.files[key] = of
	return of, nil
}

// cutPartialLine truncates a file after its last newline (a line cut short by a crash: its
// message was never acknowledged and comes again) and leaves the offset at the end.
func cutPartialLine(f *os.File) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	end := size
	buf := make([]byte, 64<<10)
	for end > 0 {
		n := int64(len(buf))
		if n > end {
			n = end
		}
		if _, err := f.ReadAt(buf[:n], end-n); err != nil && err != io.EOF {
			return err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			end = end - n + int64(i) + 1
			break
		}
		end -= n
	}
	if end != size {
		if err := f.Truncate(end); err != nil {
			return err
		}
	}
	_, err = f.Seek(end, io.SeekStart)
	return err
}

func (f *outFile) sync() error {
	if !f.dirty {
		return nil
	}
	if err := f.w.Flush(); err != nil {
		return fileError{fmt.Errorf("collect: %s: %w", f.f.Name(), err)}
	}
	if err := f.f.Sync(); err != nil {
		return fileError{fmt.Errorf("collect: %s: %w", f.f.Name(), err)}
	}
	f.dirty = false
	return nil
}

func (f *outFile) close() error {
	err := f.sync()
	if cerr := f.f.Close(); err == nil && cerr != nil {
		err = fileError{fmt.Errorf("collect: %w", cerr)}
	}
	return err
}

// syncAll flushes and fsyncs every file written since the last call, and the directories
// that gained entries.
func (c *collector) syncAll() error {
	for _, f := range c.files {
		if err := f.sync(); err != nil {
			return err
		}
	}
	for dir := range c.dirs {
		d, err := os.Open(dir)
		if err != nil {
			return fileError{fmt.Errorf("collect: %w", err)}
		}
		err = d.Sync()
		d.Close()
		if err != nil {
			return fileError{fmt.Errorf("collect: %w", err)}
		}
	}
	c.dirs = nil
	return nil
}

func (c *collector) closeAll() {
	for k, f := range c.files {
		if err := f.close(); err != nil {
			c.log.Error("collect: closing", "file", k, "err", err)
		}
		delete(c.files, k)
	}
}

// seed remembers the event ids in the last seedBytes of each sensor's files (the newest
// days), so a message written just before a crash and delivered again is not written twice.
func (c *collector) seed() (int, error) {
	ents, err := os.ReadDir(c.o.Out)
	if err != nil {
		return 0, fmt.Errorf("collect: %w", err)
	}
	n := 0
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		names, _ := filepath.Glob(filepath.Join(c.o.Out, e.Name(), "*.jsonl"))
		slices.Sort(names)
		budget := int64(seedBytes)
		for i := len(names) - 1; i >= 0 && budget > 0; i-- {
			got, used, err := c.seedFile(names[i], budget)
			if err != nil {
				return n, err
			}
			n += got
			budget -= used
		}
	}
	return n, nil
}

// seedFile remembers the ids in the last budget bytes of a file.
func (c *collector) seedFile(path string, budget int64) (ids int, used int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, fmt.Errorf("collect: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, 0, fmt.Errorf("collect: %w", err)
	}
	off := max(st.Size()-budget, 0)
	b := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(b, off); err != nil && err != io.EOF {
		return 0, 0, fmt.Errorf("collect: %w", err)
	}
	key := []byte(`,"` + natssink.MsgIDField + `":"`)
	for line := range bytes.SplitSeq(b, []byte{'\n'}) {
		i := bytes.LastIndex(line, key)
		if i < 0 {
			continue
		}
		// the id is the last field: a JSON string, then the closing brace
		var id string
		if len(line) > i+len(key) && line[len(line)-1] == '}' &&
			json.Unmarshal(line[i+len(key)-1:len(line)-1], &id) == nil && id != "" {
			c.seen.add(id)
			ids++
		}
	}
	return ids, int64(len(b)), nil
}

// window remembers the last n ids added.
type window struct {
	ring []string
	next int
	set  map[string]struct{}
}

func newWindow(n int) *window {
	return &window{ring: make([]string, n), set: make(map[string]struct{}, n)}
}

func (w *window) has(id string) bool { _, ok := w.set[id]; return ok }

func (w *window) add(id string) {
	if w.has(id) {
		return
	}
	if old := w.ring[w.next]; old != "" {
		delete(w.set, old)
	}
	w.ring[w.next] = id
	w.set[id] = struct{}{}
	w.next = (w.next + 1) % len(w.ring)
}
