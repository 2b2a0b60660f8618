package sensor

import (
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
)

// outBuf is how many bytes of events a JSON sink holds before it writes them: one write
// system call per outBuf bytes (or per flush). While writes fail (disk full), it is also
// all the sink keeps: events past it are dropped and counted as write errors.
const outBuf = 256 << 10

// Back-off between write attempts after a failure: first, then doubling up to the last.
const (
	retryFirst = 50 * time.Millisecond
	retryMax   = time.Second
)

// Fsync policies of the events file (events.fsync).
const (
	FsyncNever    = "never"    // leave it to the kernel
	FsyncInterval = "interval" // at most every events.fsync_interval, at a flush
	FsyncAlways   = "always"   // after every event
)

// output is where a JSON sink's lines go: a buffer in front of the events file (or
// stdout), which survives write errors, rotates the file and compresses what it rotated.
type output struct {
	w     io.Writer
	f     *os.File  // the events file; nil when w is a writer the sink did not open
	c     io.Closer // closed on close (the file, or the caller's closer)
	path  string
	opts  *JSONOptions
	log   *slog.Logger
	buf   []byte
	size  int64     // bytes in the current file
	start time.Time // when the current file was opened

	failing  bool // the last write failed; retrying with back-off
	err      error
	retryAt  time.Time
	backoff  time.Duration
	lostFail int64 // events refused since writes began to fail

	lastSync time.Time
	rot      *rotator
}

func newOutput(w io.Writer, f *os.File, c io.Closer, path string, opts *JSONOptions) *output {
	o := &output{w: w, f: f, c: c, path: path, opts: opts, log: opts.Log, buf: make([]byte, 0, outBuf),
		start: time.Now(), lastSync: time.Now()}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	if f != nil {
		if st, err := f.Stat(); err == nil {
			o.size = st.Size()
		}
		if opts.RotateSize > 0 || opts.RotateAge > 0 {
			o.rot = newRotator(path, opts, o.log)
		}
	}
	return o
}

// write adds one line (or several) to the buffer, writing the buffer out first when it is
// full. It fails, and the line is lost, only when the buffer is full and cannot be written.
func (o *output) write(line []byte) error {
	if len(o.buf)+len(line) > outBuf && len(o.buf) > 0 {
		if err := o.flush(); err != nil && len(o.buf)+len(line) > outBuf {
			o.lostFail++
			return err
		}
	}
	if len(line) > outBuf { // larger than the whole buffer: write it through
		if err := o.writeOut(line); err != nil {
			o.lostFail++
			return err
		}
		return nil
	}
	o.buf = append(o.buf, line...)
	if o.opts.Fsync == FsyncAlways {
		if err := o.flush(); err == nil && o.f != nil {
			o.f.Sync()
			o.lastSync = time.Now()
		}
	}
	return nil
}

// writeOut writes b through, keeping nothing of it on failure.
func (o *output) writeOut(b []byte) error {
	if err := o.flush(); err != nil {
		return err
	}
	n, err := o.w.Write(b)
	o.size += int64(n)
	if err != nil {
		o.fail(time.Now(), err)
	}
	return err
}

// flush writes the buffer out, unless writes are failing and the next attempt is not due
// yet; what a failing write did not take stays buffered for the next attempt, so a line
// cut short by a full disk is completed when it has room again. A successful flush also
// syncs (events.fsync = "interval") and rotates when due.
func (o *output) flush() error {
	now := time.Now()
	if len(o.buf) > 0 {
		if o.failing && now.Before(o.retryAt) {
			return o.err
		}
		n, err := o.w.Write(o.buf)
		o.size += int64(n)
		o.buf = o.buf[:copy(o.buf, o.buf[n:])]
		if err != nil {
			o.fail(now, err)
			return err
		}
		if o.failing {
			o.failing = false
			o.log.Warn("events: writing again", "file", o.name(), "lost", o.lostFail)
			o.lostFail = 0
		}
	}
	if o.f != nil && o.opts.Fsync == FsyncInterval && now.Sub(o.lastSync) >= o.opts.FsyncInterval {
		o.f.Sync()
		o.lastSync = now
	}
	if o.rot != nil && o.size > 0 &&
		(o.opts.RotateSize > 0 && o.size >= o.opts.RotateSize || o.opts.RotateAge > 0 && now.Sub(o.start) >= o.opts.RotateAge) {
		o.rotate(now)
	}
	return nil
}

// fail notes a failed write: the first of a run is logged, the next attempt is put off.
func (o *output) fail(now time.Time, err error) {
	if !o.failing {
		o.failing, o.backoff = true, retryFirst
		o.log.Error("events: write failed; keeping what fits in the buffer, retrying with back-off, counting what is lost",
			"file", o.name(), "err", err)
	} else {
		o.backoff = min(2*o.backoff, retryMax)
	}
	o.err, o.retryAt = err, now.Add(o.backoff)
}

func (o *output) name() string {
	if o.path == "" {
		return "stdout"
	}
	return o.path
}

// rotate moves the events file aside under its name and the time, opens a new one and
// hands the old one to the rotator (compression, pruning). The buffer is empty here.
func (o *output) rotate(now time.Time) {
	aside := o.path + "." + now.UTC().Format(rotatedLayout)
	if err := os.Rename(o.path, aside); err != nil {
		o.log.Error("events: rotate: rename", "file", o.path, "err", err)
		o.start = now // try again after another rotate_age, or at the next flush past rotate_size
		return
	}
	f, err := openEventsFile(o.path, *o.opts)
	if err != nil {
		// Keep writing to the renamed file rather than lose events.
		o.log.Error("events: rotate: open a new file; still writing the rotated one", "file", o.path, "err", err)
		o.start = now
		return
	}
	if o.f != nil && o.opts.Fsync != FsyncNever {
		o.f.Sync()
	}
	o.c.Close()
	o.f, o.w, o.c, o.size, o.start = f, f, f, 0, now
	o.rot.add(aside)
}

// reopen opens the events file again (after logrotate moved it): what is buffered goes to
// the old file first.
func (o *output) reopen() error {
	if o.f == nil {
		return o.flush()
	}
	ferr := o.flush()
	f, err := openEventsFile(o.path, *o.opts)
	if err != nil {
		return err // keep writing to the old file rather than lose events
	}
	o.c.Close()
	o.f, o.w, o.c, o.size, o.start = f, f, f, 0, time.Now()
	if st, err := f.Stat(); err == nil {
		o.size = st.Size()
	}
	return ferr
}

// close flushes (one attempt, whatever the back-off), syncs and closes.
func (o *output) close() error {
	o.retryAt = time.Time{}
	err := o.flush()
	if o.f != nil && o.opts.Fsync != FsyncNever {
		o.f.Sync()
	}
	if o.c != nil {
		if cerr := o.c.Close(); err == nil {
			err = cerr
		}
	}
	if o.rot != nil {
		o.rot.stop()
	}
	return err
}

// rotatedLayout stamps rotated files: sortable, and unique at any rotation rate.
const rotatedLayout = "20060102T150405.000000Z"

// rotatedRe matches the stamp (and compression suffix) of a rotated file's name.
var rotatedRe = regexp.MustCompile(`^\.\d{8}T\d{6}\.\d{6}Z(\.gz|\.zst)?$`)

// rotator compresses rotated files and keeps events.keep of them, off the sink's path: a
// goroutine of its own works through a bounded list of files.
type rotator struct {
	path string
	opts *JSONOptions
	log  *slog.Logger
	ch   chan string
	ctx  context.Context
	end  context.CancelFunc
	idle sync.WaitGroup // files added and not done yet (tests wait on it)
}

func newRotator(path string, opts *JSONOptions, log *slog.Logger) *rotator {
	ctx, cancel := context.WithCancel(context.Background())
	r := &rotator{path: path, opts: opts, log: log, ch: make(chan string, 64), ctx: ctx, end: cancel}
	go r.run()
	// Files an earlier run rotated and did not get to compress, and its leftovers.
	for _, name := range r.rotated() {
		if strings.HasSuffix(name, ".tmp") {
			os.Remove(name)
		} else if r.opts.Compress != "" && !strings.HasSuffix(name, ".gz") && !strings.HasSuffix(name, ".zst") {
			r.add(name)
		}
	}
	return r
}

// add queues a rotated file; with the queue full it is left uncompressed (the next start
// compresses it) but still pruned.
func (r *rotator) add(name string) {
	r.idle.Add(1)
	select {
	case r.ch <- name:
	default:
		r.idle.Done()
		r.log.Warn("events: rotate: compression falling behind; left uncompressed", "file", name)
	}
}

func (r *rotator) stop() { r.end() }

func (r *rotator) run() {
	for {
		select {
		case <-r.ctx.Done():
			return
		case name := <-r.ch:
			if r.opts.Compress != "" {
				if err := r.compress(name); err != nil {
					r.log.Error("events: rotate: compress", "file", name, "err", err)
				}
			}
			r.prune()
			r.idle.Done()
		}
	}
}

// compress writes name.gz (or .zst) next to name through a temporary file, then removes
// name. Stopping the rotator abandons it half-way (the next start does it again).
func (r *rotator) compress(name string) error {
	in, err := os.Open(name)
	if err != nil {
		return err
	}
	defer in.Close()
	ext := ".gz"
	if r.opts.Compress == "zstd" {
		ext = ".zst"
	}
	tmp := name + ext + ".tmp"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer os.Remove(tmp) // nothing left once renamed
	if st, err := in.Stat(); err == nil {
		out.Chmod(st.Mode().Perm())
		if r.opts.GID >= 0 {
			out.Chown(-1, r.opts.GID)
		}
	}
	var zw io.WriteCloser
	if ext == ".zst" {
		if zw, err = zstd.NewWriter(out, zstd.WithEncoderConcurrency(1)); err != nil {
			out.Close()
			return err
		}
	} else {
		zw = gzip.NewWriter(out)
	}
	_, err = io.Copy(zw, ctxReader{r.ctx, in})
	if cerr := zw.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, name+ext); err != nil {
		return err
	}
	return os.Remove(name)
}

// prune removes the oldest rotated files past events.keep (0 keeps them all).
func (r *rotator) prune() {
	if r.opts.Keep <= 0 {
		return
	}
	var names []string
	for _, n := range r.rotated() {
		if !strings.HasSuffix(n, ".tmp") {
			names = append(names, n)
		}
	}
	for len(names) > r.opts.Keep {
		if err := os.Remove(names[0]); err != nil && !os.IsNotExist(err) {
			r.log.Error("events: rotate: remove an old file", "file", names[0], "err", err)
		}
		names = names[1:]
	}
}

// rotated lists the rotated files of the events file (and .tmp leftovers), oldest first.
func (r *rotator) rotated() []string {
	dir, base := filepath.Split(r.path)
	if dir == "" {
		dir = "."
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), base)
		if !ok {
			continue
		}
		if rotatedRe.MatchString(strings.TrimSuffix(rest, ".tmp")) {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	sort.Strings(out)
	return out
}

// ctxReader stops reading when ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, fmt.Errorf("stopped: %w", err)
	}
	return c.r.Read(p)
}
