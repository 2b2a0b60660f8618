// Package clone probes one real device, politely and with reads only, and turns what it
// answers into a Conpot-format template directory that icsnare serves: `icsnare clone`.
//
// One Prober per protocol lives here (protocol packages stay free of client code). Every
// prober sends its requests through a Probe, which enforces the shared request-rate limit,
// the protocol's request budget and the per-request timeout, and counts what was sent.
package clone

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// Defaults of the politeness knobs.
const (
	DefaultRate     = 20.0 // requests per second, shared by every prober
	DefaultTimeout  = 2 * time.Second
	DefaultBudget   = 4000 // requests per protocol
	DefaultInterval = 5 * time.Second
)

// ErrBudget is returned by Probe.Request once a protocol spent its request budget.
var ErrBudget = errors.New("request budget spent")

// Options configure one clone run.
type Options struct {
	Target    netip.Addr
	Protocols []string       // probers to run, in order; nil: all
	Ports     map[string]int // port per protocol, overriding the standard one
	Rate      float64        // requests per second over all probers
	Timeout   time.Duration  // per request
	Budget    int            // requests per protocol
	Interval  time.Duration  // between the two reads that tell moving values (SNMP, Modbus, BACnet)

	Community string   // SNMPv1/v2c community
	V3        *V3User  // SNMPv3 credentials (instead of a community)
	MIBDirs   []string // extra MIB modules that name walked OIDs

	Progress io.Writer // progress lines; nil: none
}

// V3User is an SNMPv3 USM user: user:auth:priv on the command line.
type V3User struct {
	Name, AuthPass, PrivPass string
	AuthProto, PrivProto     string // MD5, SHA, SHA-224, SHA-256, SHA-384, SHA-512; DES, AES
}

// ParseV3 parses "user:authpass:privpass", each password optionally prefixed by its
// protocol ("SHA-256=secret", "AES=secret"); an empty password leaves that level out.
func ParseV3(s string) (*V3User, error) {
	parts := strings.Split(s, ":")
	if len(parts) < 1 || len(parts) > 3 || parts[0] == "" {
		return nil, fmt.Errorf("--v3 %q: want user[:auth[:priv]]", s)
	}
	u := &V3User{Name: parts[0], AuthProto: "SHA", PrivProto: "AES"}
	split := func(p, def string) (string, string) {
		if k, v, ok := strings.Cut(p, "="); ok {
			return strings.ToUpper(k), v
		}
		return def, p
	}
	if len(parts) > 1 {
		u.AuthProto, u.AuthPass = split(parts[1], "SHA")
	}
	if len(parts) > 2 {
		u.PrivProto, u.PrivPass = split(parts[2], "AES")
		if u.AuthPass == "" && u.PrivPass != "" {
			return nil, fmt.Errorf("--v3 %q: privacy needs authentication", s)
		}
	}
	return u, nil
}

// ParseTarget accepts exactly one address (or a host name that resolves to addresses, of
// which the first is taken). Prefixes, ranges, wildcards, and unspecified, multicast or
// broadcast addresses are refused: the cloner never scans.
func ParseTarget(ctx context.Context, s string) (netip.Addr, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return netip.Addr{}, errors.New("--target is required: the one device to clone")
	}
	if strings.ContainsAny(s, "/*,") || strings.Contains(s, "-") && !strings.ContainsAny(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") {
		return netip.Addr{}, fmt.Errorf("--target %q: one address only, never a prefix, range or list", s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		ips, lerr := net.DefaultResolver.LookupNetIP(ctx, "ip", s)
		if lerr != nil || len(ips) == 0 {
			return netip.Addr{}, fmt.Errorf("--target %q: not an address and not a resolvable name", s)
		}
		a = ips[0]
	}
	a = a.Unmap()
	switch {
	case a.IsUnspecified():
		return netip.Addr{}, fmt.Errorf("--target %s: the unspecified address is no device", a)
	case a.IsMulticast():
		return netip.Addr{}, fmt.Errorf("--target %s: multicast reaches many devices", a)
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return netip.Addr{}, fmt.Errorf("--target %s: broadcast reaches many devices", a)
	}
	return a, nil
}

// Prober clones what one protocol reveals.
type Prober interface {
	Name() string
	DefaultPort() int
	// Probe asks the device and adds what it learned to p.Template and p.Report.
	// ErrAbsent (wrapped) means the device does not speak the protocol.
	Probe(ctx context.Context, p *Probe) error
}

// ErrAbsent marks a protocol the device does not answer.
var ErrAbsent = errors.New("no answer")

var probers = map[string]Prober{}

// order is the default order of the probers.
var order = []string{"snmp", "s7comm", "modbus", "http", "ftp", "bacnet", "enip", "ipmi"}

func register(p Prober) { probers[p.Name()] = p }

// Names lists the protocols the cloner probes, in their default order.
func Names() []string { return slices.Clone(order) }

// Probe is one protocol's view of the run: the target, the limits and the outputs.
type Probe struct {
	Target   netip.Addr
	Port     int
	Opts     *Options
	Template *Template
	Report   *ProtocolReport

	limiter *limiter
	budget  int
	sent    atomic.Int64
	total   *atomic.Int64
	prog    *progress
}

// Addr is the target's host:port for this protocol.
func (p *Probe) Addr() string { return netip.AddrPortFrom(p.Target, uint16(p.Port)).String() }

// Request waits for the shared rate limit and counts one request; it fails once the
// protocol spent its budget or ctx ends.
func (p *Probe) Request(ctx context.Context) error {
	if int(p.sent.Load()) >= p.budget {
		return ErrBudget
	}
	if err := p.limiter.wait(ctx); err != nil {
		return err
	}
	p.sent.Add(1)
	p.total.Add(1)
	p.prog.tick(p.Report.Name, p.total.Load())
	return nil
}

// Sent is the number of requests this protocol sent.
func (p *Probe) Sent() int { return int(p.sent.Load()) }

// Deadline is the deadline of one request.
func (p *Probe) Deadline() time.Time { return time.Now().Add(p.Opts.Timeout) }

// Run probes the target with every selected prober and returns the template and report.
func Run(ctx context.Context, o Options) (*Template, *Report, error) {
	if !o.Target.IsValid() {
		return nil, nil, errors.New("no target")
	}
	if o.Rate <= 0 {
		o.Rate = DefaultRate
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Budget <= 0 {
		o.Budget = DefaultBudget
	}
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.Community == "" {
		o.Community = "public"
	}
	names := o.Protocols
	if len(names) == 0 {
		names = order
	}
	for _, n := range names {
		if probers[n] == nil {
			return nil, nil, fmt.Errorf("--protocols: %q is not one the cloner probes (%s)", n, strings.Join(order, ", "))
		}
	}
	tpl := NewTemplate(o.Target)
	rep := &Report{Target: o.Target.String(), Started: time.Now().UTC(), Rate: o.Rate, Timeout: o.Timeout.String(), Budget: o.Budget}
	lim := newLimiter(o.Rate)
	var total atomic.Int64
	prog := &progress{w: o.Progress, start: time.Now()}
	for _, n := range names {
		pr := probers[n]
		port := pr.DefaultPort()
		if v, ok := o.Ports[n]; ok {
			port = v
		}
		pr2 := &ProtocolReport{Name: n, Port: port}
		p := &Probe{Target: o.Target, Port: port, Opts: &o, Template: tpl, Report: pr2,
			limiter: lim, budget: o.Budget, total: &total, prog: prog}
		start := time.Now()
		err := pr.Probe(ctx, p)
		pr2.Requests = p.Sent()
		pr2.Seconds = time.Since(start).Seconds()
		switch {
		case err == nil:
			pr2.Status = "cloned"
		case errors.Is(err, ErrAbsent):
			pr2.Status = "absent"
			pr2.Error = err.Error()
			tpl.drop(n)
		case ctx.Err() != nil:
			pr2.Status = "interrupted"
			pr2.Error = err.Error()
			tpl.drop(n)
		default:
			pr2.Status = "failed"
			pr2.Error = err.Error()
			tpl.drop(n)
		}
		if errors.Is(err, ErrBudget) || pr2.Status == "cloned" && p.Sent() >= p.budget {
			pr2.Notes = append(pr2.Notes, fmt.Sprintf("stopped at the budget of %d requests", p.budget))
		}
		rep.Protocols = append(rep.Protocols, pr2)
		prog.done(n, pr2.Status, p.Sent())
		if ctx.Err() != nil {
			break
		}
	}
	rep.Finished = time.Now().UTC()
	rep.Seconds = rep.Finished.Sub(rep.Started).Seconds()
	rep.Requests = int(total.Load())
	rep.Seeded = tpl.seeded
	rep.Engines = tpl.engines
	return tpl, rep, nil
}

// progress writes one line per protocol, rewritten in place while it runs.
type progress struct {
	w     io.Writer
	start time.Time
	last  atomic.Int64 // unix nanoseconds of the last line
}

func (p *progress) tick(proto string, total int64) {
	if p.w == nil {
		return
	}
	now := time.Now()
	if now.UnixNano()-p.last.Load() < int64(250*time.Millisecond) {
		return
	}
	p.last.Store(now.UnixNano())
	el := now.Sub(p.start).Seconds()
	fmt.Fprintf(p.w, "\r%-7s %6d requests  %5.1f req/s  %5.1fs ", proto, total, float64(total)/max(el, 0.001), el)
}

func (p *progress) done(proto, status string, n int) {
	if p.w == nil {
		return
	}
	fmt.Fprintf(p.w, "\r%-7s %-11s %6d requests%s\n", proto, status, n, strings.Repeat(" ", 20))
}

// limiter spaces requests evenly at rate per second (a token bucket of depth one).
type limiter struct {
	every time.Duration
	next  chan time.Time
}

func newLimiter(rate float64) *limiter {
	l := &limiter{every: time.Duration(float64(time.Second) / rate), next: make(chan time.Time, 1)}
	l.next <- time.Time{}
	return l
}

func (l *limiter) wait(ctx context.Context) error {
	var at time.Time
	select {
	case at = <-l.next:
	case <-ctx.Done():
		return ctx.Err()
	}
	now := time.Now()
	if d := at.Sub(now); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			l.next <- at
			return ctx.Err()
		}
		now = at
	}
	l.next <- now.Add(l.every)
	return nil
}
