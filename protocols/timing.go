package protocols

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/icsnare/icsnare/profiles"
)

// Timing is a device's answer latency (a persona's timing model): a base per host drawn
// from its seed, jitter, the wait for the end of the PLC's scan cycle, and a slow-down per
// request the host is already working on. A real PLC answers in milliseconds, its
// answers spread, and it slows down under load; a honeypot answering in 30 µs, the same on
// every host, is a tell (issue 20).
//
// The delay runs on the connection's own goroutine with a timer (Wait), so it costs no
// goroutine per request; SetTiming(false) turns every model off (benchmarks).
type Timing struct {
	BaseMin, BaseMax time.Duration // the host's base latency is drawn from this range
	Jitter           time.Duration // mean of an exponential addition per answer
	// CycleMin..CycleMax is the range of the host's scan cycle: an answer waits for the end
	// of the cycle it arrived in. Every protocol of a host draws the same cycle and phase
	// (one CPU, one cycle).
	CycleMin, CycleMax time.Duration
	Load               time.Duration // added per request the host is already answering
}

// maxTimingDelay bounds one answer's delay whatever the model and the load.
const maxTimingDelay = 2 * time.Second

var timingOff atomic.Bool

// SetTiming turns the timing models of every protocol on (the default) or off.
func SetTiming(on bool) { timingOff.Store(!on) }

// TimingOn reports whether timing models apply.
func TimingOn() bool { return !timingOff.Load() }

// ParseTiming reads a <timing> element: attributes base="1.5ms-4ms", jitter="0.4ms",
// cycle="8ms-20ms", load="0.8ms" (Go durations; base and cycle may be one value). nil n:
// no model.
func ParseTiming(n *profiles.Node) (*Timing, error) {
	if n == nil {
		return nil, nil
	}
	t := &Timing{}
	dur := func(name, s string) (time.Duration, error) {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil || d < 0 || d > time.Second {
			return 0, n.Errorf("timing %s %q: want a duration from 0 to 1s (\"2.5ms\")", name, s)
		}
		return d, nil
	}
	rng := func(name string, lo, hi *time.Duration) error {
		s, ok := n.Attr(name)
		if !ok {
			return nil
		}
		a, b, two := strings.Cut(s, "-")
		var err error
		if *lo, err = dur(name, a); err != nil {
			return err
		}
		*hi = *lo
		if two {
			if *hi, err = dur(name, b); err != nil {
				return err
			}
		}
		if *hi < *lo {
			return n.Errorf("timing %s %q: the upper bound is below the lower", name, s)
		}
		return nil
	}
	if err := rng("base", &t.BaseMin, &t.BaseMax); err != nil {
		return nil, err
	}
	if err := rng("cycle", &t.CycleMin, &t.CycleMax); err != nil {
		return nil, err
	}
	var err error
	for _, a := range []struct {
		name string
		dst  *time.Duration
	}{{"jitter", &t.Jitter}, {"load", &t.Load}} {
		if s, ok := n.Attr(a.name); ok {
			if *a.dst, err = dur(a.name, s); err != nil {
				return nil, err
			}
		}
	}
	return t, nil
}

// String renders the model the way ParseTiming reads it.
func (t *Timing) String() string {
	if t == nil {
		return "none"
	}
	f := func(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', -1, 64) + "ms" }
	return fmt.Sprintf("base=%s-%s jitter=%s cycle=%s-%s load=%s", f(t.BaseMin), f(t.BaseMax), f(t.Jitter), f(t.CycleMin), f(t.CycleMax), f(t.Load))
}

// hostTiming is one host's draw of a model and its requests in progress.
type hostTiming struct {
	base     time.Duration
	cycle    time.Duration
	phase    time.Duration // where in its scan cycle the host was at the epoch
	inflight atomic.Int32
	rnd      atomic.Uint64
}

// host returns host h's draw of model t, kept in the host's state under key (one per
// protocol: "modbus.timing").
func (t *Timing) host(h *Host, key string) *hostTiming {
	return h.State(key, func() any {
		env := h.Databus.Env()
		r := env.Rand(key)
		ht := &hostTiming{base: t.BaseMin + time.Duration(r.Float64()*float64(t.BaseMax-t.BaseMin))}
		if t.CycleMax > 0 {
			c := env.Rand("timing.cycle") // shared by the host's protocols
			ht.cycle = t.CycleMin + time.Duration(c.Float64()*float64(t.CycleMax-t.CycleMin))
			ht.phase = time.Duration(c.Int64N(int64(max(ht.cycle, 1))))
		}
		ht.rnd.Store(r.Uint64() | 1)
		return ht
	}).(*hostTiming)
}

// Delay is the time host h takes to answer one request arriving now, and a func to call
// once the answer is sent (the host's load). It is 0 with no model or timing off.
func (t *Timing) Delay(h *Host, key string, now time.Time) (time.Duration, func()) {
	if t == nil || h == nil || h.Databus == nil || timingOff.Load() {
		return 0, noop
	}
	ht := t.host(h, key)
	busy := ht.inflight.Add(1) - 1
	// a cheap per-host random stream (xorshift), no lock on the hot path
	x := ht.rnd.Add(0x9e3779b97f4a7c15)
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	u := (float64(x>>11) + 0.5) / (1 << 53)
	d := ht.base
	if t.Jitter > 0 {
		d += time.Duration(-math.Log(u) * float64(t.Jitter))
	}
	if ht.cycle > 0 {
		// the answer leaves at the end of the scan cycle the request arrived in
		pos := (time.Duration(now.UnixNano()) + ht.phase) % ht.cycle
		d += ht.cycle - pos
	}
	d += time.Duration(busy) * t.Load
	return min(d, maxTimingDelay), func() { ht.inflight.Add(-1) }
}

func noop() {}

// Wait sleeps the delay of one answer (see Delay) on the caller's goroutine and reports
// whether ctx stayed alive. done must be called after the answer is written.
func (t *Timing) Wait(ctx context.Context, h *Host, key string) (ok bool, done func()) {
	if t == nil || timingOff.Load() {
		return true, noop // nothing on the answer's path: no clock, no timer
	}
	d, done := t.Delay(h, key, time.Now())
	return Sleep(ctx, d), done
}
