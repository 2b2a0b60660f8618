package bpf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
)

// LimitEvent says that a source (Scope "source") or a port's global bucket (Scope
// "global") started or stopped being limited.
type LimitEvent struct {
	Time   time.Time
	Kind   string // "start" or "stop"
	Scope  string // "source" or "global"
	Port   uint16
	Class  string     // the class when a class rule applied, or ""
	Source netip.Addr // Scope "source" only
	// Dropped is, for "stop", how many packets the episode dropped (for a source
	// evicted from the table: the drops seen until its last sweep).
	Dropped uint64
	// Suppressed is how many notifications were not delivered since the previous one
	// (notification rate limit, full channel, or the episode table being full).
	Suppressed uint64
}

const (
	evSource = 1
	evGlobal = 2
	// maxEpisodes bounds the sources tracked for "stop" notifications.
	maxEpisodes = 4096
)

type episode struct {
	startDropped uint64
	lastDropped  uint64
}

// notifier turns kernel ring buffer records into rate-limited LimitEvents and
// detects the end of episodes by sweeping the maps.
type notifier struct {
	l          *Limiter
	rd         *ringbuf.Reader
	ch         chan LimitEvent
	done       chan struct{}
	wg         sync.WaitGroup
	suppressed atomic.Uint64 // since the last delivered event
	total      atomic.Uint64 // ever

	mu      sync.Mutex
	sources map[ratelimitSrcKey]*episode
	globals map[ruleKey]*episode
	tokens  float64
	last    time.Time
	closed  bool
}

func newNotifier(l *Limiter) (*notifier, error) {
	rd, err := ringbuf.NewReader(l.objs.Events)
	if err != nil {
		return nil, fmt.Errorf("xdp: ring buffer: %w", err)
	}
	n := &notifier{
		l: l, rd: rd, ch: make(chan LimitEvent, 64), done: make(chan struct{}),
		sources: map[ratelimitSrcKey]*episode{}, globals: map[ruleKey]*episode{},
		tokens: float64(l.cfg.NotifyBurst), last: time.Now(),
	}
	n.wg.Add(2)
	go n.readLoop()
	go n.sweepLoop()
	return n, nil
}

func (n *notifier) close() {
	close(n.done)
	n.rd.Close()
	n.wg.Wait()
	n.mu.Lock()
	n.closed = true
	close(n.ch)
	n.mu.Unlock()
}

func (n *notifier) readLoop() {
	defer n.wg.Done()
	var rec ringbuf.Record
	for {
		if err := n.rd.ReadInto(&rec); err != nil {
			if errors.Is(err, ringbuf.ErrClosed) || errors.Is(err, os.ErrClosed) {
				return
			}
			n.l.log.Warn("xdp: ring buffer read", "err", err)
			continue
		}
		var ev ratelimitEvent
		if err := binary.Read(bytes.NewReader(rec.RawSample), binary.NativeEndian, &ev); err != nil {
			continue
		}
		n.start(&ev)
	}
}

func (n *notifier) sweepLoop() {
	defer n.wg.Done()
	t := time.NewTicker(n.l.cfg.SweepInterval)
	defer t.Stop()
	k := time.NewTicker(n.l.cfg.KnownRebuild)
	defer k.Stop()
	for {
		select {
		case <-n.done:
			return
		case <-t.C:
			n.sweep()
		case <-k.C:
			if err := n.l.rebuildKnown(); err != nil {
				n.l.log.Warn("xdp: rebuild known-source bitmap", "err", err)
			}
		}
	}
}

// wall converts a kernel timestamp into wall-clock time.
func (n *notifier) wall(ts uint64) time.Time {
	now := n.l.now()
	if ts >= now {
		return time.Now()
	}
	return time.Now().Add(-time.Duration(now - ts))
}

func (n *notifier) start(ev *ratelimitEvent) {
	n.mu.Lock()
	defer n.mu.Unlock()
	t := n.wall(ev.TsNs)
	switch ev.Kind {
	case evSource:
		k := ratelimitSrcKey{Port: ev.Port, Family: ev.Family, Class: ev.Class, Addr: ev.Addr}
		if old, ok := n.sources[k]; ok { // a new episode before the sweep saw the old end
			n.deliver(LimitEvent{Time: t, Kind: "stop", Scope: "source", Port: k.Port, Class: n.l.className(k.Port, k.Class), Source: keyAddr(k.Family, k.Addr), Dropped: old.lastDropped - old.startDropped})
			delete(n.sources, k)
		}
		if len(n.sources) < maxEpisodes {
			n.sources[k] = &episode{startDropped: ev.Dropped - 1, lastDropped: ev.Dropped}
		} else {
			n.suppress(1) // its stop cannot be reported
		}
		n.deliver(LimitEvent{Time: t, Kind: "start", Scope: "source", Port: ev.Port, Class: n.l.className(ev.Port, ev.Class), Source: keyAddr(ev.Family, ev.Addr)})
	case evGlobal:
		rk := ruleKey{port: ev.Port, class: ev.Class}
		d := n.globalDrops(rk)
		if old, ok := n.globals[rk]; ok {
			n.deliver(LimitEvent{Time: t, Kind: "stop", Scope: "global", Port: ev.Port, Class: n.l.className(ev.Port, ev.Class), Dropped: d - old.startDropped})
		}
		n.globals[rk] = &episode{startDropped: d}
		n.deliver(LimitEvent{Time: t, Kind: "start", Scope: "global", Port: ev.Port, Class: n.l.className(ev.Port, ev.Class)})
	}
}

// globalDrops sums the port's global drop counters (approximately the value at the
// episode start, which is close enough for a notification).
func (n *notifier) globalDrops(rk ruleKey) uint64 {
	n.l.mu.Lock()
	slot, ok := n.l.slots[rk]
	n.l.mu.Unlock()
	if !ok {
		return 0
	}
	var sum uint64
	for _, reason := range []uint32{2, 3} {
		if c, err := n.l.counter(slot, reason); err == nil {
			sum += c.Packets
		}
	}
	return sum
}

// sweep reports the end of episodes whose last drop is older than the quiet period.
func (n *notifier) sweep() {
	n.mu.Lock()
	defer n.mu.Unlock()
	now := n.l.now()
	quiet := uint64(n.l.cfg.QuietPeriod)
	for k, ep := range n.sources {
		var v ratelimitSrcState
		err := n.l.objs.Sources.Lookup(&k, &v)
		if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			continue
		}
		if err == nil {
			ep.lastDropped = v.Dropped
			if now <= v.LastDropNs || now-v.LastDropNs <= quiet {
				continue
			}
		}
		delete(n.sources, k)
		n.deliver(LimitEvent{Time: time.Now(), Kind: "stop", Scope: "source", Port: k.Port, Class: n.l.className(k.Port, k.Class), Source: keyAddr(k.Family, k.Addr), Dropped: ep.lastDropped - ep.startDropped})
	}
	for rk, ep := range n.globals {
		n.l.mu.Lock()
		slot, ok := n.l.slots[rk]
		n.l.mu.Unlock()
		var g ratelimitGstate
		if ok {
			if err := n.l.objs.Gstates.Lookup(slot, &g); err != nil {
				continue
			}
			if now <= g.LastDropNs || now-g.LastDropNs <= quiet {
				continue
			}
		}
		delete(n.globals, rk)
		n.deliver(LimitEvent{Time: time.Now(), Kind: "stop", Scope: "global", Port: rk.port, Class: n.l.className(rk.port, rk.class), Dropped: n.globalDrops(rk) - ep.startDropped})
	}
}

// deliver sends ev if the notification budget allows; n.mu is held.
func (n *notifier) deliver(ev LimitEvent) {
	if n.closed {
		return
	}
	now := time.Now()
	n.tokens += now.Sub(n.last).Seconds() * n.l.cfg.NotifyRate
	if max := float64(n.l.cfg.NotifyBurst); n.tokens > max {
		n.tokens = max
	}
	n.last = now
	if n.tokens < 1 {
		n.suppress(1)
		return
	}
	ev.Suppressed = n.suppressed.Swap(0)
	select {
	case n.ch <- ev:
		n.tokens--
	default:
		n.suppressed.Add(ev.Suppressed)
		n.suppress(1)
	}
}

func (n *notifier) suppress(k uint64) {
	n.suppressed.Add(k)
	n.total.Add(k)
}

// Suppressed is how many limit-state notifications were not delivered since Load.
func (l *Limiter) Suppressed() uint64 { return l.notify.total.Load() }
