package sensor

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/netip"
	"os"
	"strconv"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/icsnare/icsnare/protocols"
)

// Sink writes events somewhere. Write is called from one goroutine only.
type Sink interface {
	Name() string
	Write(e *protocols.Event) error
	Flush() error
	Close() error
}

// Bus is the bounded queue between protocol goroutines and the sinks. Emit never blocks:
// when the queue is full the event is dropped and counted.
type Bus struct {
	ch      chan *protocols.Event
	sinks   []Sink
	dropped atomic.Int64
	written atomic.Int64
	failed  atomic.Int64
	onWrite func(sink string)
	onDrop  func()
	onFail  func(sink string)
	done    chan struct{}
}

// NewBus returns a bus with room for size queued events.
func NewBus(size int, sinks ...Sink) *Bus {
	return &Bus{ch: make(chan *protocols.Event, size), sinks: sinks, done: make(chan struct{})}
}

// Emit implements protocols.Emitter.
func (b *Bus) Emit(e *protocols.Event) {
	select {
	case b.ch <- e:
	default:
		b.dropped.Add(1)
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
	dirty := false
	for {
		select {
		case e := <-b.ch:
			b.deliver(e)
			dirty = true
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

// Wait blocks until Run has returned.
func (b *Bus) Wait() { <-b.done }

func (b *Bus) deliver(e *protocols.Event) {
	for _, s := range b.sinks {
		if err := s.Write(e); err != nil {
			b.failed.Add(1)
			if b.onFail != nil {
				b.onFail(s.Name())
			}
			continue
		}
		b.written.Add(1)
		if b.onWrite != nil {
			b.onWrite(s.Name())
		}
	}
}

func (b *Bus) flush() {
	for _, s := range b.sinks {
		s.Flush()
	}
}

// JSONSink writes one JSON object per line.
type JSONSink struct {
	name   string
	w      *bufio.Writer
	c      io.Closer
	conpot bool
	buf    []byte
}

// OpenJSONSink opens path ("-" is stdout) for appending JSON lines. conpot selects Conpot's
// field names (timestamp, sensorid, id, src_ip … data_type, event_type).
func OpenJSONSink(path string, conpot bool) (*JSONSink, error) {
	if path == "-" {
		return NewJSONSink("stdout", os.Stdout, nil, conpot), nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("events file: %w", err)
	}
	return NewJSONSink("file", f, f, conpot), nil
}

// NewJSONSink writes JSON lines to w; c (may be nil) is closed on Close.
func NewJSONSink(name string, w io.Writer, c io.Closer, conpot bool) *JSONSink {
	return &JSONSink{name: name, w: bufio.NewWriterSize(w, 64<<10), c: c, conpot: conpot}
}

// Name implements Sink.
func (s *JSONSink) Name() string { return "json_" + s.name }

// Write implements Sink.
func (s *JSONSink) Write(e *protocols.Event) error {
	if s.conpot {
		s.buf = AppendConpotJSON(s.buf[:0], e)
	} else {
		s.buf = AppendJSON(s.buf[:0], e)
	}
	s.buf = append(s.buf, '\n')
	_, err := s.w.Write(s.buf)
	return err
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

// AppendJSON appends the icsnare JSON form of e (one flat object, DESIGN.md's schema).
func AppendJSON(b []byte, e *protocols.Event) []byte {
	b = append(b, `{"timestamp":"`...)
	b = e.Time.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","event_type":`...)
	b = appendString(b, e.Type)
	b = appendKV(b, "session_id", e.SessionID)
	b = appendKV(b, "protocol", e.Protocol)
	b = appendKV(b, "transport", e.Transport)
	b = appendAddrPort(b, "src", e.Src)
	b = appendAddrPort(b, "dst", e.Dst)
	b = appendKV(b, "sensor", e.Sensor)
	b = appendKV(b, "profile", e.Profile)
	if e.Request != nil {
		b = appendPayload(b, "request", e.Request, e.Text)
	}
	if e.Response != nil {
		b = appendPayload(b, "response", e.Response, e.Text)
	}
	for _, f := range e.Fields {
		b = append(b, ',')
		b = appendString(b, f.Key)
		b = append(b, ':')
		b = appendValue(b, f.Value)
	}
	return append(b, '}')
}

// AppendConpotJSON appends e with Conpot's JSON logger field names, so pipelines built for
// Conpot (T-Pot and others) keep working. Protocol fields go into "data".
func AppendConpotJSON(b []byte, e *protocols.Event) []byte {
	b = append(b, `{"timestamp":"`...)
	b = e.Time.UTC().AppendFormat(b, "2006-01-02T15:04:05.000000")
	b = append(b, '"')
	b = appendKV(b, "sensorid", e.Sensor)
	b = appendKV(b, "id", e.SessionID)
	b = appendAddrPort(b, "src", e.Src)
	b = appendAddrPort(b, "dst", e.Dst)
	b = append(b, `,"public_ip":null`...)
	b = appendKV(b, "data_type", e.Protocol)
	for _, p := range []struct {
		k string
		v []byte
	}{{"request", e.Request}, {"response", e.Response}} {
		if p.v == nil {
			b = append(b, `,"`+p.k+`":null`...)
		} else {
			b = appendPayload(b, p.k, p.v, e.Text)
		}
	}
	b = appendKV(b, "event_type", e.Type)
	if len(e.Fields) > 0 {
		b = append(b, `,"data":{`...)
		for i, f := range e.Fields {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, f.Key)
			b = append(b, ':')
			b = appendValue(b, f.Value)
		}
		b = append(b, '}')
	}
	return append(b, '}')
}

func appendKV(b []byte, k, v string) []byte {
	b = append(b, ',', '"')
	b = append(b, k...)
	b = append(b, '"', ':')
	return appendString(b, v)
}

func appendAddrPort(b []byte, prefix string, ap netip.AddrPort) []byte {
	if !ap.IsValid() {
		return append(b, `,"`+prefix+`_ip":null,"`+prefix+`_port":null`...)
	}
	b = append(b, `,"`+prefix+`_ip":"`...)
	b = ap.Addr().Unmap().AppendTo(b)
	b = append(b, `","`+prefix+`_port":`...)
	return strconv.AppendUint(b, uint64(ap.Port()), 10)
}

func appendPayload(b []byte, k string, v []byte, text bool) []byte {
	b = append(b, ',', '"')
	b = append(b, k...)
	b = append(b, '"', ':')
	if text {
		return appendString(b, string(v))
	}
	b = append(b, '"')
	b = hex.AppendEncode(b, v)
	return append(b, '"')
}

func appendValue(b []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...)
	case string:
		return appendString(b, x)
	case bool:
		return strconv.AppendBool(b, x)
	case int:
		return strconv.AppendInt(b, int64(x), 10)
	case int64:
		return strconv.AppendInt(b, x, 10)
	case int32:
		return strconv.AppendInt(b, int64(x), 10)
	case uint8:
		return strconv.AppendUint(b, uint64(x), 10)
	case uint16:
		return strconv.AppendUint(b, uint64(x), 10)
	case uint32:
		return strconv.AppendUint(b, uint64(x), 10)
	case uint64:
		return strconv.AppendUint(b, x, 10)
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return append(b, "null"...)
		}
		return strconv.AppendFloat(b, x, 'g', -1, 64)
	case []byte:
		b = append(b, '"')
		b = hex.AppendEncode(b, x)
		return append(b, '"')
	case []string:
		b = append(b, '[')
		for i, s := range x {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, s)
		}
		return append(b, ']')
	case time.Duration:
		return strconv.AppendFloat(b, x.Seconds(), 'f', -1, 64)
	case fmt.Stringer:
		return appendString(b, x.String())
	}
	j, err := json.Marshal(v)
	if err != nil {
		return appendString(b, fmt.Sprint(v))
	}
	return append(b, j...)
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string; invalid UTF-8 becomes U+FFFD.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
