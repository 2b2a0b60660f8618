// Package ratelimit is the userspace twin of the XDP rate limiter (bpf/): the same request
// classes (SNMP's BER-parsed ones and payload byte patterns, first match wins) and the same
// token buckets (per source and global per class, requests per minute, exact integer
// arithmetic, a reserve of the global bucket for known sources). The sensor applies it to
// every UDP service whose limits the kernel does not enforce, so a protocol declares its
// limits (protocols.RateLimited) and writes no limiter of its own.
package ratelimit

import (
	"fmt"
	"math/bits"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/icsnare/icsnare/protocols"
)

const (
	nsPerMin = 60_000_000_000
	// maxPerMinute bounds rates and bursts, as in the kernel (one request = 6e10 units).
	maxPerMinute = 100_000_000
	// DefaultMaxSources bounds the per-source table of one Limiter.
	DefaultMaxSources = 65536
)

// Rule is one limit: a port's default class ("") or one class on it. It has the fields of
// bpf.Rule; see there (and protocols.RateLimit) for their meaning.
type Rule struct {
	Port  uint16
	Class string
	// Match defines a class by payload patterns (any alternative); empty for the default
	// class and for SNMP's built-in classes.
	Match       []protocols.Pattern
	PerSource   int // requests per minute per source address, 0 = unlimited
	Global      int // requests per minute from all sources, 0 = unlimited
	Burst       int // per-source bucket depth, 0 = PerSource
	GlobalBurst int // global bucket depth, 0 = Global
	Reserve     int // global tokens only known sources (answered twice) take; 0 = GlobalBurst/4, < 0 = none
}

// where names the rule in errors; Port 0 is a rule whose port is not known yet.
func (r Rule) where() string {
	if r.Port == 0 {
		return "rule"
	}
	return fmt.Sprintf("rule for port %d", r.Port)
}

// Validate checks the rule as New would, except for its port (0 is accepted: not known
// yet).
func (r Rule) Validate() error {
	_, err := r.withDefaults()
	return err
}

// withDefaults validates r and fills its zero fields, as bpf.Rule does.
func (r Rule) withDefaults() (Rule, error) {
	if err := checkClassName(r.Class); err != nil {
		return r, fmt.Errorf("%s: %w", r.where(), err)
	}
	switch {
	case r.Class == "" && len(r.Match) > 0:
		return r, fmt.Errorf("%s: the default class has no match", r.where())
	case r.Class != "" && len(r.Match) == 0 && !IsBuiltinClass(r.Class):
		return r, fmt.Errorf("%s: class %q has no match and is not a built-in SNMP class (get, next, set, bulk)", r.where(), r.Class)
	}
	if err := CheckPatterns(r.Match); err != nil {
		return r, fmt.Errorf("%s class %q: %w", r.where(), r.Class, err)
	}
	if r.PerSource < 0 || r.Global < 0 || r.Burst < 0 || r.GlobalBurst < 0 {
		return r, fmt.Errorf("%s: negative rate or burst", r.where())
	}
	if r.Burst == 0 {
		r.Burst = r.PerSource
	}
	if r.GlobalBurst == 0 {
		r.GlobalBurst = r.Global
	}
	for _, v := range []int{r.PerSource, r.Global, r.Burst, r.GlobalBurst} {
		if v > maxPerMinute {
			return r, fmt.Errorf("%s: %d is above the maximum %d", r.where(), v, maxPerMinute)
		}
	}
	switch {
	case r.Reserve == 0:
		r.Reserve = r.GlobalBurst / 4
	case r.Reserve < 0:
		r.Reserve = 0
	}
	if r.Global > 0 && r.Reserve >= r.GlobalBurst {
		return r, fmt.Errorf("%s: reserve %d must be below the global burst %d", r.where(), r.Reserve, r.GlobalBurst)
	}
	if r.Global == 0 {
		r.GlobalBurst, r.Reserve = 0, 0
	}
	if r.PerSource == 0 {
		r.Burst = 0
	}
	return r, nil
}

// Reason is why a request passed or was dropped; the names are the kernel counters'.
type Reason uint8

// Reasons, as in the XDP program.
const (
	Pass          Reason = iota // within the limits (or not limited)
	DropPerSource               // the source's bucket is empty
	DropGlobal                  // known source, the global bucket is empty
	DropGlobalNew               // source not known, the global bucket is at or below the reserve
)

var reasonNames = [...]string{"ok", "per_source", "global", "global_new"}

func (r Reason) String() string { return reasonNames[r] }

// Decision is the verdict on one request.
type Decision struct {
	Class  string // the class whose rule applied ("" the port's default class)
	Reason Reason
}

// Allowed reports whether the request passes.
func (d Decision) Allowed() bool { return d.Reason == Pass }

// Config tunes a Limiter.
type Config struct {
	// MaxSources bounds the per-source table (default DefaultMaxSources). When it is full
	// a random entry is forgotten (the kernel's table is an LRU; both only ever forget).
	MaxSources int
	// Now returns monotonic nanoseconds (non-zero); tests inject a clock. Default: time
	// elapsed since New, plus one second.
	Now func() int64
	// QuietPeriod: a class's global bucket counts as limiting for this long after its
	// last drop (default 10s, the kernel limiter's default). While it is limiting, only
	// one in AdmitEvery sources not in the table that pass is inserted.
	QuietPeriod time.Duration
}

// AdmitEvery is the share of new sources inserted into the table while a class's global
// bucket is limiting: the first, then every AdmitEvery-th (the kernel's ADMIT_EVERY). A
// spoofed flood's sources are seen once each, and inserting each would churn the table
// and evict the state of the sources that come back; the others pass untracked, bounded
// by the global bucket above its reserve.
const AdmitEvery = 16

// Limiter enforces rules for any number of ports. It is safe for concurrent use.
type Limiter struct {
	now   func() int64
	quiet uint64
	max   int
	ports map[uint16]*port // fixed after New

	mu      sync.Mutex
	sources map[srcKey]*srcState
}

type port struct {
	def     *class
	snmp    bool     // some class is a built-in SNMP one
	classes []*class // pattern classes in order
	byName  map[string]*class
	kernel  atomic.Bool
}

type class struct {
	id    uint8 // 0 default; index+1 otherwise
	name  string
	match []protocols.Pattern
	r     Rule
	// global bucket, guarded by Limiter.mu
	gTokens, gLast uint64
	gLastDrop      uint64 // the global bucket's last drop (0: none)
	unadmitted     uint64 // passes of sources not in the table while limiting
}

type srcKey struct {
	port  uint16
	class uint8
	addr  netip.Addr
}

type srcState struct {
	tokens, last uint64
	passed       uint64 // answered requests; two make the source known
}

// New validates rules and builds a Limiter. Classes are tried in the order of rules; a
// class rule on a port without a default-class rule adds an unlimited default class.
func New(rules []Rule, cfg Config) (*Limiter, error) {
	if cfg.MaxSources <= 0 {
		cfg.MaxSources = DefaultMaxSources
	}
	if cfg.Now == nil {
		start := time.Now()
		cfg.Now = func() int64 { return int64(time.Since(start)) + int64(time.Second) }
	}
	if cfg.QuietPeriod <= 0 {
		cfg.QuietPeriod = 10 * time.Second
	}
	l := &Limiter{now: cfg.Now, quiet: uint64(cfg.QuietPeriod), max: cfg.MaxSources, ports: map[uint16]*port{}, sources: map[srcKey]*srcState{}}
	for _, r := range rules {
		if r.Port == 0 {
			return nil, fmt.Errorf("rule: port 0")
		}
		r, err := r.withDefaults()
		if err != nil {
			return nil, err
		}
		p := l.ports[r.Port]
		if p == nil {
			p = &port{byName: map[string]*class{}}
			l.ports[r.Port] = p
		}
		if _, dup := p.byName[r.Class]; dup || (r.Class == "" && p.def != nil) {
			return nil, fmt.Errorf("%s: class %q given twice", r.where(), r.Class)
		}
		c := &class{name: r.Class, match: r.Match, r: r}
		if r.Class == "" {
			p.def = c
			continue
		}
		if len(p.classes) >= MaxClasses {
			return nil, fmt.Errorf("%s: more than %d classes", r.where(), MaxClasses)
		}
		p.classes = append(p.classes, c)
		c.id = uint8(len(p.classes))
		p.byName[r.Class] = c
		if len(r.Match) == 0 {
			p.snmp = true
		}
	}
	for pn, p := range l.ports {
		if p.def == nil {
			p.def = &class{r: Rule{Port: pn}}
		}
	}
	return l, nil
}

// SetKernel says whether the kernel enforces the port's rules (then Allow passes its
// requests without counting them).
func (l *Limiter) SetKernel(portNum uint16, on bool) {
	if p := l.ports[portNum]; p != nil {
		p.kernel.Store(on)
	}
}

// Classify returns the class of a request to the port: SNMP's built-in classes first
// (when the port has any), then the pattern classes in order; "" when none matches.
func (l *Limiter) Classify(portNum uint16, payload []byte) string {
	p := l.ports[portNum]
	if p == nil {
		return ""
	}
	return p.classify(payload).name
}

func (p *port) classify(payload []byte) *class {
	if p.snmp {
		if n := snmpClass(payload); n != "" {
			if c := p.byName[n]; c != nil && len(c.match) == 0 {
				return c
			}
		}
	}
	for _, c := range p.classes {
		for _, pat := range c.match {
			if Matches(pat, payload) {
				return c
			}
		}
	}
	return p.def
}

// Allow classifies one request (the UDP payload) from src to the port and spends a token
// of its class's buckets. Ports without rules, and ports the kernel enforces, always pass.
func (l *Limiter) Allow(portNum uint16, src netip.Addr, payload []byte) Decision {
	p := l.ports[portNum]
	if p == nil || p.kernel.Load() {
		return Decision{}
	}
	return l.limit(p.classify(payload), portNum, src)
}

// AllowClass is Allow for a caller that classified the request itself (SNMP's agent): an
// unknown class uses the port's default class.
func (l *Limiter) AllowClass(portNum uint16, className string, src netip.Addr) Decision {
	p := l.ports[portNum]
	if p == nil || p.kernel.Load() {
		return Decision{}
	}
	c := p.byName[className]
	if c == nil {
		c = p.def
	}
	return l.limit(c, portNum, src)
}

// refill is the kernel's refill(): tokens after the elapsed time, capped at burst.
func refill(tokens, last, now, rate, burst, fill uint64) uint64 {
	if now > last {
		el := now - last
		if el >= fill {
			return burst
		}
		tokens += el * rate
	}
	return min(tokens, burst)
}

// fillNs is ceil(burst/rate).
func fillNs(burst, rate uint64) uint64 {
	q, rem := bits.Div64(0, burst, rate)
	if rem != 0 {
		q++
	}
	return q
}

// limit is the kernel's limit() (bpf/ratelimit.c) step by step, under one lock.
func (l *Limiter) limit(c *class, portNum uint16, src netip.Addr) Decision {
	r := &c.r
	d := Decision{Class: c.name}
	if r.PerSource == 0 && r.Global == 0 {
		return d
	}
	now := uint64(l.now())
	const unit = nsPerMin
	srcRate, srcBurst := uint64(r.PerSource), uint64(r.Burst)*unit
	gRate, gBurst, gReserve := uint64(r.Global), uint64(r.GlobalBurst)*unit, uint64(r.Reserve)*unit
	key := srcKey{port: portNum, class: c.id, addr: src.Unmap()}

	l.mu.Lock()
	defer l.mu.Unlock()
	var peek uint64
	if gRate > 0 {
		if c.gLast == 0 {
			peek = gBurst
		} else {
			peek = refill(c.gTokens, c.gLast, now, gRate, gBurst, fillNs(gBurst, gRate))
		}
		if peek < unit {
			d.Reason = DropGlobal
			c.gLastDrop = now
			return d
		}
	}
	var s *srcState
	var st uint64
	unknown := false // not in the table
	fresh := false   // not known (answered once at most): may not take the reserve
	if srcRate > 0 {
		s = l.sources[key]
		unknown = s == nil
		fresh = unknown || s.passed < 2
		if gRate > 0 && peek < unit+gReserve && fresh {
			d.Reason = DropGlobalNew
			c.gLastDrop = now
			return d
		}
		if s != nil {
			st = refill(s.tokens, s.last, now, srcRate, srcBurst, fillNs(srcBurst, srcRate))
			if now > s.last {
				s.last = now
			}
			if st < unit {
				s.tokens = st
				d.Reason = DropPerSource
				return d
			}
		}
	}
	admit := true // a source not in the table that passes is inserted
	if gRate > 0 {
		limiting := unknown && c.gLastDrop != 0 && now-c.gLastDrop <= l.quiet
		floor := uint64(unit)
		if fresh {
			floor += gReserve // peek >= floor was checked above
		}
		gt := gBurst
		if c.gLast != 0 {
			gt = refill(c.gTokens, c.gLast, now, gRate, gBurst, fillNs(gBurst, gRate))
		}
		if now > c.gLast {
			c.gLast = now
		}
		ok := gt >= floor
		if ok {
			gt -= unit
			if limiting {
				admit = c.unadmitted%AdmitEvery == 0
				c.unadmitted++
			}
		}
		c.gTokens = gt
		if !ok {
			d.Reason = DropGlobal
			if fresh {
				d.Reason = DropGlobalNew
			}
			if s != nil {
				s.tokens = st // refilled, not spent
			}
			c.gLastDrop = now
			return d
		}
	}
	switch {
	case s != nil:
		s.tokens = st - unit
		s.passed++
	case unknown && admit:
		if len(l.sources) >= l.max {
			for k := range l.sources { // a random victim
				delete(l.sources, k)
				break
			}
		}
		l.sources[key] = &srcState{tokens: srcBurst - unit, last: now, passed: 1}
	}
	return d
}
