package bpf

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// Reasons, indexed like enum reason in ratelimit.c.
var reasons = [nrReasons]struct{ action, name string }{
	{"pass", "ok"},
	{"drop", "per_source"},
	{"drop", "global"},
	{"drop", "global_new"},
	{"pass", "fragment"},
	{"pass", "truncated"},
	{"pass", "untracked"},
	{"", "event_lost"},
	{"pass", "unadmitted"},
}

const reasonEventLost = 7

// Counter is one packet counter, summed over CPUs. Port is 0 for packets that belong
// to no rule (fragments, truncated headers).
type Counter struct {
	Port    uint16
	Class   string // the class of a class rule, or ""
	Action  string // "pass" or "drop"
	Reason  string // ok, per_source, global, global_new, fragment, truncated, untracked, unadmitted
	Packets uint64
	Bytes   uint64
}

// Source is one entry of the per-source table.
type Source struct {
	Addr     netip.Addr
	Port     uint16
	Class    string // the class when a class rule applied, or ""
	Passed   uint64
	Dropped  uint64
	LastDrop time.Duration // how long ago the last drop was; -1 if never
	Limited  bool          // dropped within the quiet period
}

// Reader reads the limiter's maps: from the Limiter itself, or from pinned maps in
// another process (OpenPinned).
type Reader struct {
	rules, counters, sources, gstates *ebpf.Map
	matchers                          *ebpf.Map
	clock                             *ebpf.Variable // test clock; nil in other processes
	ident                             *identityMaps  // pinned identity maps (OpenPinned), when the sensor loaded it
	quiet                             time.Duration
	owned                             bool // Close closes the maps
}

// Close releases maps opened by OpenPinned (no-op for a Limiter's own Reader).
func (r *Reader) Close() error {
	if !r.owned {
		return nil
	}
	var errs []error
	if r.ident != nil {
		r.ident.close()
	}
	for _, m := range []*ebpf.Map{r.rules, r.counters, r.sources, r.gstates, r.matchers} {
		if m != nil {
			errs = append(errs, m.Close())
		}
	}
	return errors.Join(errs...)
}

// now returns the kernel's view of time: CLOCK_MONOTONIC (bpf_ktime_get_ns), or the
// test clock when set.
func (r *Reader) now() uint64 {
	if r.clock != nil {
		var t uint64
		if err := r.clock.Get(&t); err == nil && t != 0 {
			return t
		}
	}
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint64(ts.Nano())
}

// Rules returns the rules currently in the kernel, sorted by port and class id (SNMP
// classes, then pattern classes in the order the program tries them). Patterns come
// back in a normal form: one byte match over the tested window.
func (r *Reader) Rules() ([]Rule, error) {
	out, _, err := r.readRules()
	return out, err
}

// readRules returns the rules and the rule key of every slot.
func (r *Reader) readRules() ([]Rule, map[uint32]ruleKey, error) {
	type keyed struct {
		k ruleKey
		r Rule
	}
	var rules []keyed
	slots := map[uint32]ruleKey{}
	var key uint32
	var kr ratelimitRule
	it := r.rules.Iterate()
	for it.Next(&key, &kr) {
		rk := ruleKeyFrom(key)
		rules = append(rules, keyed{rk, ruleFromKernel(rk, kr)})
		slots[kr.Slot] = rk
	}
	if err := it.Err(); err != nil {
		return nil, nil, fmt.Errorf("xdp: read rules: %w", err)
	}
	for slot, pk := range slots {
		if pk.class != 0 {
			continue
		}
		var m ratelimitMatcher
		if err := r.matchers.Lookup(slot, &m); err != nil {
			return nil, nil, fmt.Errorf("xdp: read patterns: %w", err)
		}
		for _, p := range m.P {
			if p.Class == 0 {
				break
			}
			for i := range rules {
				if rules[i].k.port == pk.port && rules[i].k.class == p.Class {
					rules[i].r.Match = append(rules[i].r.Match, decodePattern(p))
				}
			}
		}
	}
	sort.Slice(rules, func(i, j int) bool {
		if rules[i].k.port != rules[j].k.port {
			return rules[i].k.port < rules[j].k.port
		}
		return rules[i].k.class < rules[j].k.class
	})
	out := make([]Rule, len(rules))
	for i, k := range rules {
		out[i] = k.r
	}
	return out, slots, nil
}

// classNames maps the rule keys to class names.
func (r *Reader) classNames() (map[ruleKey]string, error) {
	names := map[ruleKey]string{}
	var key uint32
	var kr ratelimitRule
	it := r.rules.Iterate()
	for it.Next(&key, &kr) {
		rk := ruleKeyFrom(key)
		names[rk] = ruleFromKernel(rk, kr).Class
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("xdp: read rules: %w", err)
	}
	return names, nil
}

func nameOf(names map[ruleKey]string, port uint16, id uint8) string {
	if n, ok := names[ruleKey{port: port, class: id}]; ok {
		return n
	}
	if id == 0 {
		return ""
	}
	return fmt.Sprint(id)
}

// Counters returns the non-zero packet counters of the current rules and of slot 0.
func (r *Reader) Counters() ([]Counter, error) {
	_, slots, err := r.readRules()
	if err != nil {
		return nil, err
	}
	names, err := r.classNames()
	if err != nil {
		return nil, err
	}
	slots[0] = ruleKey{}
	var out []Counter
	for slot, rk := range slots {
		for reason := uint32(0); reason < nrReasons; reason++ {
			if reason == reasonEventLost {
				continue
			}
			c, err := r.counter(slot, reason)
			if err != nil {
				return nil, err
			}
			if c.Packets == 0 && (slot == 0 || reason > 3) {
				continue
			}
			out = append(out, Counter{Port: rk.port, Class: nameOf(names, rk.port, rk.class), Action: reasons[reason].action, Reason: reasons[reason].name, Packets: c.Packets, Bytes: c.Bytes})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Port != out[j].Port {
			return out[i].Port < out[j].Port
		}
		if out[i].Class != out[j].Class {
			return out[i].Class < out[j].Class
		}
		return out[i].Reason < out[j].Reason
	})
	return out, nil
}

// EventsLost is how many notifications the kernel could not queue (ring buffer full).
func (r *Reader) EventsLost() (uint64, error) {
	c, err := r.counter(0, reasonEventLost)
	return c.Packets, err
}

func (r *Reader) counter(slot, reason uint32) (ratelimitCounter, error) {
	var per []ratelimitCounter
	var sum ratelimitCounter
	if err := r.counters.Lookup(slot*nrReasons+reason, &per); err != nil {
		return sum, fmt.Errorf("xdp: read counter: %w", err)
	}
	for _, c := range per {
		sum.Packets += c.Packets
		sum.Bytes += c.Bytes
	}
	return sum, nil
}

// MaxSources is the capacity of the per-source table.
func (r *Reader) MaxSources() int { return int(r.sources.MaxEntries()) }

// walkSources calls fn for every per-source entry, using batched reads.
func (r *Reader) walkSources(fn func(k *ratelimitSrcKey, v *ratelimitSrcState)) error {
	const batch = 4096
	keys := make([]ratelimitSrcKey, batch)
	vals := make([]ratelimitSrcState, batch)
	var cursor ebpf.MapBatchCursor
	for {
		n, err := r.sources.BatchLookup(&cursor, keys, vals, nil)
		for i := 0; i < n; i++ {
			fn(&keys[i], &vals[i])
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("xdp: read sources: %w", err)
		}
	}
}

// SourceCount is the occupancy of the per-source table.
func (r *Reader) SourceCount() (int, error) {
	n := 0
	err := r.walkSources(func(*ratelimitSrcKey, *ratelimitSrcState) { n++ })
	return n, err
}

// TopSources returns up to n sources with the most drops (only sources with drops),
// plus the table occupancy and the number of currently limited sources.
func (r *Reader) TopSources(n int) (top []Source, tracked, limited int, err error) {
	now := r.now()
	names, err := r.classNames()
	if err != nil {
		return nil, 0, 0, err
	}
	var all []Source
	err = r.walkSources(func(k *ratelimitSrcKey, v *ratelimitSrcState) {
		tracked++
		if v.Dropped == 0 {
			return
		}
		s := sourceFrom(k, v, now, r.quiet)
		s.Class = nameOf(names, k.Port, k.Class)
		if s.Limited {
			limited++
		}
		all = append(all, s)
	})
	if err != nil {
		return nil, 0, 0, err
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Dropped > all[j].Dropped })
	if len(all) > n {
		all = all[:n]
	}
	return all, tracked, limited, nil
}

func keyAddr(family uint8, a [16]uint8) netip.Addr {
	addr := netip.AddrFrom16(a)
	if family == 4 {
		return addr.Unmap()
	}
	return addr
}

func sourceFrom(k *ratelimitSrcKey, v *ratelimitSrcState, now uint64, quiet time.Duration) Source {
	s := Source{Addr: keyAddr(k.Family, k.Addr), Port: k.Port, Passed: v.Passed, Dropped: v.Dropped, LastDrop: -1}
	if v.LastDropNs != 0 {
		ago := time.Duration(0)
		if now > v.LastDropNs {
			ago = time.Duration(now - v.LastDropNs)
		}
		s.LastDrop = ago
		s.Limited = ago <= quiet
	}
	return s
}

// WriteStats prints the rules, the counters and the top n limited sources, for
// `icsnare xdp stats`.
func (r *Reader) WriteStats(w io.Writer, n int) error {
	rules, err := r.Rules()
	if err != nil {
		return err
	}
	counters, err := r.Counters()
	if err != nil {
		return err
	}
	top, tracked, limited, err := r.TopSources(n)
	if err != nil {
		return err
	}
	lost, err := r.EventsLost()
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RULE PORT\tCLASS\tPER-SOURCE/MIN\tBURST\tGLOBAL/MIN\tGLOBAL BURST\tRESERVE\tMATCH")
	for _, ru := range rules {
		match := "-"
		switch {
		case len(ru.Match) > 0:
			ps := make([]string, len(ru.Match))
			for i, p := range ru.Match {
				ps[i] = p.String()
			}
			match = strings.Join(ps, " | ")
		case ru.Class != "":
			match = "snmp"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%d\t%d\t%s\n", ru.Port, orDash(ru.Class), perMin(ru.PerSource), ru.Burst, perMin(ru.Global), ru.GlobalBurst, ru.Reserve, match)
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "PORT\tCLASS\tACTION\tREASON\tPACKETS\tBYTES")
	for _, c := range counters {
		port := fmt.Sprint(c.Port)
		if c.Port == 0 {
			port = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\n", port, orDash(c.Class), c.Action, c.Reason, c.Packets, c.Bytes)
	}
	fmt.Fprintln(tw)
	fmt.Fprintf(tw, "sources tracked: %d of %d, limited now: %d, notifications lost: %d\n", tracked, r.MaxSources(), limited, lost)
	if len(top) > 0 {
		fmt.Fprintln(tw, "SOURCE\tPORT\tCLASS\tPASSED\tDROPPED\tLAST DROP\tLIMITED")
		for _, s := range top {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%s ago\t%v\n", s.Addr, s.Port, orDash(s.Class), s.Passed, s.Dropped, s.LastDrop.Truncate(time.Millisecond), s.Limited)
		}
	}
	if err := tw.Flush(); err != nil || r.ident == nil {
		return err
	}
	fmt.Fprintln(w)
	return r.ident.writeStats(w, "IDENTITY (per-host MACs and stacks)")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func perMin(v int) string {
	if v == 0 {
		return "unlimited"
	}
	return fmt.Sprint(v)
}
