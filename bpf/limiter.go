package bpf

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
)

// Config configures Load.
type Config struct {
	// Rules are the initial limits; SetRule and DeleteRule change them at run time.
	Rules []Rule
	// MaxSources is the size of the per-source LRU table (default 65536; perf.md:
	// keep it at 64k-128k, inserts into a 1M table cost about 0.9 µs each).
	MaxSources int
	// PinPath, when set, is a directory on a mounted bpffs (e.g. /sys/fs/bpf/icsnare)
	// where the maps are pinned so that `icsnare xdp stats` in another process can read
	// them with OpenPinned. Close removes the pins.
	PinPath string
	// QuietPeriod: a source or port that has had no drops for this long is no longer
	// limited (a "stop" notification); the next drop starts a new episode. Default 10s.
	QuietPeriod time.Duration
	// NotifyRate and NotifyBurst bound the limit-state notifications delivered on
	// Events (per second; defaults 5 and 20). Excess ones are counted as suppressed.
	NotifyRate  float64
	NotifyBurst int
	// SweepInterval is how often stopped episodes are detected (default 1s).
	SweepInterval time.Duration
	// KnownRebuild is how often the bitmap of known sources is rebuilt from the
	// per-source table, dropping the bits of evicted sources (default 10s).
	KnownRebuild time.Duration
	Logger       *slog.Logger
}

// Limiter is the loaded XDP program with its maps. It is safe for concurrent use.
type Limiter struct {
	*Reader
	objs   ratelimitObjects
	cfg    Config
	log    *slog.Logger
	notify *notifier
	known  *knownBitmap

	closeOnce sync.Once
	closeErr  error

	mu    sync.Mutex
	slots map[ruleKey]uint32 // never freed while loaded
	rules map[ruleKey]Rule
	// pattern classes of each port, in the order they were first set (the order the
	// program tries them)
	order map[uint16][]uint8
	links map[string]attachment
}

type attachment struct {
	link link.Link
	mode string
}

// Load loads the XDP program and its maps into the kernel and applies cfg.Rules. It
// does not attach the program to any interface (see Attach).
func Load(cfg Config) (*Limiter, error) {
	if cfg.MaxSources <= 0 {
		cfg.MaxSources = 65536
	}
	if cfg.QuietPeriod <= 0 {
		cfg.QuietPeriod = 10 * time.Second
	}
	if cfg.NotifyRate <= 0 {
		cfg.NotifyRate = 5
	}
	if cfg.NotifyBurst <= 0 {
		cfg.NotifyBurst = 20
	}
	if cfg.SweepInterval <= 0 {
		cfg.SweepInterval = time.Second
	}
	if cfg.KnownRebuild <= 0 {
		cfg.KnownRebuild = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("xdp: memlock: %w", err)
	}
	spec, err := loadRatelimit()
	if err != nil {
		return nil, fmt.Errorf("xdp: load spec: %w", err)
	}
	spec.Maps["sources"].MaxEntries = uint32(cfg.MaxSources)
	if err := spec.Variables["quiet_ns"].Set(uint64(cfg.QuietPeriod)); err != nil {
		return nil, fmt.Errorf("xdp: quiet period: %w", err)
	}
	l := &Limiter{
		cfg:   cfg,
		log:   cfg.Logger,
		slots: map[ruleKey]uint32{},
		rules: map[ruleKey]Rule{},
		order: map[uint16][]uint8{},
		links: map[string]attachment{},
	}
	if err := spec.LoadAndAssign(&l.objs, nil); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("xdp: verifier: %+v", ve)
		}
		return nil, fmt.Errorf("xdp: load: %w", err)
	}
	l.Reader = &Reader{
		rules: l.objs.Rules, counters: l.objs.Counters, sources: l.objs.Sources,
		gstates: l.objs.Gstates, matchers: l.objs.Matchers, clock: l.objs.ClockNs, quiet: cfg.QuietPeriod,
	}
	if l.known, err = mapKnown(l.objs.Known.FD()); err != nil {
		l.objs.Close()
		return nil, err
	}
	for _, r := range cfg.Rules {
		if err := l.SetRule(r); err != nil {
			l.known.close()
			l.objs.Close()
			return nil, err
		}
	}
	if cfg.PinPath != "" {
		if err := l.pin(cfg.PinPath); err != nil {
			l.known.close()
			l.objs.Close()
			return nil, err
		}
	}
	n, err := newNotifier(l)
	if err != nil {
		l.unpin()
		l.known.close()
		l.objs.Close()
		return nil, err
	}
	l.notify = n
	return l, nil
}

// Attach attaches the program to the interface (in the calling thread's network
// namespace), trying native (driver) mode first and falling back to generic (skb)
// mode. It returns "native" or "generic". The attachment is a bpf_link owned by this
// process: if the process dies, the kernel detaches the program.
func (l *Limiter) Attach(ifname string) (mode string, err error) {
	return l.AttachMode(ifname, "")
}

// AttachMode is Attach with a forced mode: "native", "generic", or "" for native with
// a fallback to generic.
func (l *Limiter) AttachMode(ifname, mode string) (string, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return "", fmt.Errorf("xdp attach: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if a, ok := l.links[ifname]; ok {
		return a.mode, fmt.Errorf("xdp attach %s: already attached (%s)", ifname, a.mode)
	}
	try := []string{"native", "generic"}
	if mode != "" {
		try = []string{mode}
	}
	var errs []error
	for _, m := range try {
		flags := link.XDPDriverMode
		switch m {
		case "native":
		case "generic":
			flags = link.XDPGenericMode
		default:
			return "", fmt.Errorf("xdp attach %s: unknown mode %q", ifname, m)
		}
		lk, err := link.AttachXDP(link.XDPOptions{Program: l.objs.XdpRatelimit, Interface: ifi.Index, Flags: flags})
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", m, err))
			continue
		}
		l.links[ifname] = attachment{link: lk, mode: m}
		l.log.Info("xdp rate limiter attached", "interface", ifname, "mode", m)
		return m, nil
	}
	return "", fmt.Errorf("xdp attach %s: %w", ifname, errors.Join(errs...))
}

// Detach removes the program from one interface.
func (l *Limiter) Detach(ifname string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	a, ok := l.links[ifname]
	if !ok {
		return fmt.Errorf("xdp detach %s: not attached", ifname)
	}
	delete(l.links, ifname)
	return a.link.Close()
}

// Attachments returns interface name -> mode for the current attachments.
func (l *Limiter) Attachments() map[string]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := make(map[string]string, len(l.links))
	for k, a := range l.links {
		m[k] = a.mode
	}
	return m
}

// SetRule adds or replaces the limit for r.Port (and r.Class). It takes effect for
// the next packet; nothing is reloaded. Existing per-source and global buckets keep
// their tokens (clamped to the new bursts). A new pattern class is tried after the
// port's existing ones; replacing a class keeps its place. Errors wrapping
// ErrNotExpressible name rules the program cannot enforce.
func (l *Limiter) SetRule(r Rule) error {
	r, err := r.withDefaults()
	if err != nil {
		return fmt.Errorf("xdp: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	k, err := l.keyLocked(r)
	if err != nil {
		return err
	}
	var m *ratelimitMatcher
	if len(r.Match) > 0 {
		if m, err = l.matcherLocked(r, k.class); err != nil {
			return err
		}
	}
	if k.class != 0 {
		if _, ok := l.rules[ruleKey{port: k.port}]; !ok {
			// Unclassified requests to the port pass unlimited (but counted).
			if err := l.putLocked(ruleKey{port: r.Port}, Rule{Port: r.Port}); err != nil {
				return err
			}
		}
	}
	if err := l.putLocked(k, r); err != nil {
		return err
	}
	if m != nil {
		// After the class rule, so a packet that matches finds it; at the slot of
		// the port's rule, which exists by now.
		if err := l.objs.Matchers.Put(l.slots[ruleKey{port: r.Port}], m); err != nil {
			return fmt.Errorf("xdp: set patterns for port %d: %w", r.Port, err)
		}
		if !slices.Contains(l.order[r.Port], k.class) {
			l.order[r.Port] = append(l.order[r.Port], k.class)
		}
	}
	if k.class != 0 {
		pk := ruleKey{port: k.port}
		return l.putLocked(pk, l.rules[pk]) // now with the class flags
	}
	return nil
}

// keyLocked returns the rule's key, choosing a class id for a new pattern class; l.mu
// is held.
func (l *Limiter) keyLocked(r Rule) (ruleKey, error) {
	if len(r.Match) == 0 {
		k := ruleKey{port: r.Port, class: classIDs[r.Class]}
		if o, ok := l.rules[k]; ok && len(o.Match) > 0 {
			return k, fmt.Errorf("xdp: rule for port %d: class %q has patterns", r.Port, r.Class)
		}
		return k, nil
	}
	used := map[uint8]bool{}
	for k, o := range l.rules {
		if k.port != r.Port {
			continue
		}
		if o.Class == r.Class {
			if len(o.Match) == 0 {
				return k, fmt.Errorf("xdp: rule for port %d: class %q is an SNMP class without patterns", r.Port, r.Class)
			}
			return k, nil
		}
		used[k.class] = true
	}
	for id := firstMatchClass; id < 256; id++ {
		if !used[uint8(id)] {
			return ruleKey{port: r.Port, class: uint8(id)}, nil
		}
	}
	return ruleKey{}, fmt.Errorf("xdp: rule for port %d: no class id left: %w", r.Port, ErrNotExpressible)
}

// matcherLocked builds the port's pattern list with r's class (id) in it; l.mu is held.
func (l *Limiter) matcherLocked(r Rule, id uint8) (*ratelimitMatcher, error) {
	order := l.order[r.Port]
	if !slices.Contains(order, id) {
		order = append(slices.Clone(order), id)
	}
	var m ratelimitMatcher
	n := 0
	for _, c := range order {
		match := r.Match
		if c != id {
			match = l.rules[ruleKey{port: r.Port, class: c}].Match
		}
		for _, p := range match {
			if n == MaxPatterns {
				return nil, fmt.Errorf("xdp: rule for port %d class %q: the port's classes have more than %d patterns: %w", r.Port, r.Class, MaxPatterns, ErrNotExpressible)
			}
			kp, err := compilePattern(p)
			if err != nil {
				return nil, fmt.Errorf("xdp: rule for port %d class %q: %w", r.Port, r.Class, err)
			}
			kp.Class = c
			m.P[n] = kp
			n++
		}
	}
	return &m, nil
}

// putLocked writes one rule, allocating its slot; l.mu is held.
func (l *Limiter) putLocked(k ruleKey, r Rule) error {
	slot, ok := l.slots[k]
	if !ok {
		if len(l.slots) >= MaxRules {
			return fmt.Errorf("xdp: rule for port %d: at most %d rules: %w", r.Port, MaxRules, ErrNotExpressible)
		}
		slot = uint32(len(l.slots) + 1)
		// A fresh slot: zero its global bucket so the kernel starts it full.
		if err := l.objs.Gstates.Put(slot, ratelimitGstate{}); err != nil {
			return fmt.Errorf("xdp: reset global bucket for port %d: %w", r.Port, err)
		}
		l.slots[k] = slot
	}
	var flags uint32
	if k.class == 0 {
		for o, or := range l.rules {
			if o.port == k.port && o.class != 0 {
				if len(or.Match) > 0 {
					flags |= ruleFlagMatch
				} else {
					flags |= ruleFlagSNMPClasses
				}
			}
		}
	}
	kr := r.kernel(slot, flags)
	// The slot's rule before the port points to it (the program's fast path), and the
	// rules hash, which readers and class lookups use.
	if err := l.objs.SlotRules.Put(slot, kr); err != nil {
		return fmt.Errorf("xdp: set rule for port %d: %w", r.Port, err)
	}
	if err := l.objs.Rules.Put(k.kernel(), kr); err != nil {
		return fmt.Errorf("xdp: set rule for port %d: %w", r.Port, err)
	}
	if k.class == 0 {
		if err := l.objs.PortSlots.Put(uint32(k.port), slot); err != nil {
			return fmt.Errorf("xdp: set rule for port %d: %w", r.Port, err)
		}
	}
	l.rules[k] = r
	return nil
}

// className names class id of port (for notifications).
func (l *Limiter) className(port uint16, id uint8) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if r, ok := l.rules[ruleKey{port: port, class: id}]; ok {
		return r.Class
	}
	return fmt.Sprint(id)
}

// DeleteRule stops limiting the port (its class rules included); the counters keep
// their values.
func (l *Limiter) DeleteRule(port uint16) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	// The port's rule first, so that no packet looks up a class rule without it.
	if err := l.objs.PortSlots.Put(uint32(port), uint32(0)); err != nil {
		return fmt.Errorf("xdp: delete rule for port %d: %w", port, err)
	}
	keys := []ruleKey{{port: port}}
	for k := range l.rules {
		if k.port == port && k.class != 0 {
			keys = append(keys, k)
		}
	}
	for _, k := range keys {
		if err := l.objs.Rules.Delete(k.kernel()); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("xdp: delete rule for port %d: %w", port, err)
		}
		delete(l.rules, k)
	}
	if slot, ok := l.slots[ruleKey{port: port}]; ok {
		if err := l.objs.Matchers.Put(slot, ratelimitMatcher{}); err != nil {
			return fmt.Errorf("xdp: delete patterns for port %d: %w", port, err)
		}
	}
	delete(l.order, port)
	return nil
}

// Events delivers limit-state notifications: a source or a port's global bucket
// starts or stops being limited. Delivery is itself rate-limited (Config.NotifyRate);
// the channel is closed by Close.
func (l *Limiter) Events() <-chan LimitEvent { return l.notify.ch }

// Close detaches the program from every interface, removes the pins and frees the
// program and maps. Calling it again does nothing.
func (l *Limiter) Close() error {
	l.closeOnce.Do(func() { l.closeErr = l.close() })
	return l.closeErr
}

func (l *Limiter) close() error {
	l.mu.Lock()
	var errs []error
	for name, a := range l.links {
		if err := a.link.Close(); err != nil {
			errs = append(errs, fmt.Errorf("detach %s: %w", name, err))
		}
		delete(l.links, name)
	}
	l.mu.Unlock()
	if l.notify != nil {
		l.notify.close()
	}
	l.unpin()
	l.known.close()
	if err := l.objs.Close(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
