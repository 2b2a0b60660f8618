package sensor

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/icsnare/icsnare/bpf"
	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/ratelimit"
)

// limitRule is one UDP request limit of the sensor and where it came from.
type limitRule struct {
	rule ratelimit.Rule
	// self is the service that enforces the limit itself when the kernel does not (SNMP),
	// nil when the sensor's userspace limiter does; from is the service's own limit.
	self protocols.RateLimiter
	from protocols.RateLimit
	// shadowed: a self-enforced limit for a port and class that an earlier limit (a
	// [[xdp.rules]] entry) already has; the service is told it is covered. dup: one that
	// another service's limit already has; covered when the kernel enforces the port.
	shadowed, dup bool
}

// extra reports whether the limit is only kept to tell its service about it.
func (lr limitRule) extra() bool { return lr.shadowed || lr.dup }

// planLimits gathers every UDP limit on the ports actually bound, in the order classes
// are tried: [[xdp.rules]] first, then the profiles' RateLimited services (sorted by
// profile and port), then the [xdp] defaults for the other served UDP ports. The first
// limit for a (port, class) wins; a profile limit that cannot be classified is skipped
// with a warning. It returns the limits and the userspace limiter for those no service
// enforces itself.
func planLimits(cfg Config, devs map[string]*deviceProfile) (_ []limitRule, _ *ratelimit.Limiter, warnings []string, _ error) {
	type key struct {
		port  uint16
		class string
	}
	seen := map[key]bool{}
	bySensor := map[key]bool{} // the first limit is enforced by the sensor, not a service
	var out []limitRule
	add := func(lr limitRule, origin string) {
		k := key{lr.rule.Port, lr.rule.Class}
		if seen[k] {
			warnings = append(warnings, fmt.Sprintf("rate limit of %s for udp/%d class %q ignored: the port and class already have one", origin, k.port, k.class))
			if lr.self != nil {
				// The sensor enforces the other limit for every host, this
				// service's too; another service's limit is only the kernel's (in
				// userspace each service counts its own hosts).
				lr.shadowed, lr.dup = bySensor[k], !bySensor[k]
				out = append(out, lr)
			}
			return
		}
		seen[k] = true
		bySensor[k] = lr.self == nil
		out = append(out, lr)
	}
	names := make([]string, 0, len(devs))
	for n := range devs {
		names = append(names, n)
	}
	sort.Strings(names)
	type bound struct {
		ep  protocols.Endpoint
		ds  deviceService
		sec *profiles.Section // the service's template section, for its port
	}
	var services []bound
	for _, n := range names {
		var eps []bound
		for ep, ds := range devs[n].services {
			if ep.Transport == protocols.UDP {
				eps = append(eps, bound{ep, ds, devs[n].profile.Sections[ds.protocol]})
			}
		}
		sort.Slice(eps, func(i, j int) bool { return eps[i].ep.Port < eps[j].ep.Port })
		services = append(services, eps...)
	}
	for i, xr := range cfg.XDP.Rules {
		var ports []uint16
		if xr.Port != 0 {
			ports = []uint16{uint16(xr.Port)}
		} else {
			for _, b := range services {
				if b.ds.protocol == xr.Protocol && !slices.Contains(ports, uint16(b.ep.Port)) {
					ports = append(ports, uint16(b.ep.Port))
				}
			}
			if len(ports) == 0 {
				return nil, nil, warnings, &ConfigError{Err: fmt.Errorf("xdp.rules[%d]: protocol %q serves no UDP port in the configured profiles", i, xr.Protocol)}
			}
		}
		for _, p := range ports {
			r, err := xr.limit(p)
			if err != nil {
				return nil, nil, warnings, &ConfigError{Err: fmt.Errorf("xdp.rules[%d]: %w", i, err)}
			}
			add(limitRule{rule: r}, fmt.Sprintf("xdp.rules[%d]", i))
		}
	}
	for _, b := range services {
		rl, ok := b.ds.svc.(protocols.RateLimited)
		if !ok {
			continue
		}
		self, _ := b.ds.svc.(protocols.RateLimiter)
		for _, l := range rl.RateLimits() {
			port := uint16(boundPort(cfg, b.sec, l.Port))
			if port != uint16(b.ep.Port) {
				continue
			}
			r := ratelimit.Rule{Port: port, Class: l.Class, Match: l.Match, PerSource: l.PerSource, Global: l.Global}
			if err := r.Validate(); err != nil {
				if self == nil {
					warnings = append(warnings, fmt.Sprintf("rate limit of %s not enforced: %v", b.ds.protocol, err))
					continue
				}
				// The service classifies it itself; the kernel will refuse it.
				r.Match = nil
			}
			add(limitRule{rule: r, self: self, from: l}, b.ds.protocol)
		}
	}
	if cfg.XDP.PerSourcePerMinute > 0 || cfg.XDP.GlobalPerMinute > 0 {
		for _, b := range services {
			p := uint16(b.ep.Port)
			if seen[key{p, ""}] {
				continue
			}
			add(limitRule{rule: ratelimit.Rule{Port: p, PerSource: cfg.XDP.PerSourcePerMinute, Global: cfg.XDP.GlobalPerMinute}}, "xdp defaults")
		}
	}
	var user []ratelimit.Rule
	for _, lr := range out {
		switch {
		case lr.extra():
		case lr.self == nil:
			user = append(user, lr.rule)
		case lr.rule.Validate() == nil:
			// Classified here as in the kernel (so such requests do not count against
			// the port's default class), but unlimited: the service counts them.
			user = append(user, ratelimit.Rule{Port: lr.rule.Port, Class: lr.rule.Class, Match: lr.rule.Match})
		}
	}
	twin, err := ratelimit.New(user, ratelimit.Config{})
	if err != nil {
		return nil, nil, warnings, &ConfigError{Err: fmt.Errorf("rate limits: %w", err)}
	}
	return out, twin, warnings, nil
}

// RateLimitPlan describes the UDP rate limits run would apply, one line per port and
// class in the order classes are tried, for `icsnare check`; warnings name the limits it
// ignores. It fails on what New fails on.
func RateLimitPlan(cfg Config, devs map[string]*deviceProfile) (lines, warnings []string, err error) {
	rules, _, warnings, err := planLimits(cfg, devs)
	if err != nil {
		return nil, warnings, err
	}
	for _, lr := range rules {
		if lr.extra() {
			continue
		}
		r := lr.rule
		class := r.Class
		if class == "" {
			class = "(default)"
		}
		line := fmt.Sprintf("rate limit udp/%d class %s: per source %s, overall %s", r.Port, class, perMinute(r.PerSource), perMinute(r.Global))
		for i, p := range r.Match {
			sep := " if "
			if i > 0 {
				sep = " or "
			}
			line += sep + ratelimit.FormatPattern(p)
		}
		lines = append(lines, line)
	}
	return lines, warnings, nil
}

func perMinute(v int) string {
	if v == 0 {
		return "unlimited"
	}
	return fmt.Sprintf("%d/min", v)
}

// tellServices tells every self-enforcing service which of its limits it need not count:
// those in kernel, and those a [[xdp.rules]] entry overrides.
func (s *Sensor) tellServices(kernel map[protocols.RateLimiter][]protocols.RateLimit) {
	covered := map[protocols.RateLimiter][]protocols.RateLimit{}
	for _, lr := range s.limits {
		if lr.self == nil {
			continue
		}
		if _, ok := covered[lr.self]; !ok {
			covered[lr.self] = nil // told too, so it enforces the rest itself again
		}
		if lr.shadowed {
			covered[lr.self] = append(covered[lr.self], lr.from)
		}
	}
	for svc, ls := range kernel {
		covered[svc] = append(covered[svc], ls...)
	}
	for svc, ls := range covered {
		svc.KernelEnforced(ls)
	}
}

// bpfRule converts a limit for the kernel.
func bpfRule(r ratelimit.Rule) bpf.Rule {
	out := bpf.Rule{Port: r.Port, Class: r.Class, PerSource: r.PerSource, Global: r.Global,
		Burst: r.Burst, GlobalBurst: r.GlobalBurst, Reserve: r.Reserve}
	for _, p := range r.Match {
		bp := make(bpf.Pattern, len(p))
		for i, m := range p {
			bp[i] = bpf.ByteMatch(m)
		}
		out.Match = append(out.Match, bp)
	}
	return out
}

// allowDatagram applies the userspace limits to a datagram (the ports the kernel
// enforces pass untouched); a dropped one is counted as rejected "rate_limited".
func (s *Sensor) allowDatagram(proto string, port uint16, src netip.Addr, req []byte) bool {
	if s.limiter == nil || s.limiter.Allow(port, src, req).Allowed() {
		return true
	}
	s.m.rejected.WithLabelValues(proto, "rate_limited").Inc()
	return false
}

// setupXDP loads and attaches the XDP rate limiter when xdp.interface is set. When it
// cannot (no privilege, old kernel), the limits stay in userspace and the sensor says
// so; that is not an error. A port whose limits the program cannot express (a pattern
// beyond its window, too many patterns) stays in userspace with a warning; the other
// ports are still enforced in the kernel.
func (s *Sensor) setupXDP(ctx context.Context) func() {
	loaded := prometheus.NewGauge(prometheus.GaugeOpts{Name: "icsnare_xdp_loaded",
		Help: "1 when the XDP rate limiter enforces the UDP limits in the kernel, 0 when userspace does."})
	s.m.reg.MustRegister(loaded)
	if s.cfg.XDP.Interface == "" {
		return func() {}
	}
	// The identity program, when attached, owns the interface's XDP hook and hands
	// what it passes to the limiter.
	id, idDown := s.setupIdentity(ctx)
	l, err := bpf.Load(bpf.Config{PinPath: s.cfg.XDP.PinPath, Logger: s.log})
	if err != nil {
		s.log.Warn("XDP rate limiter not loaded; limits are enforced in userspace", "err", err)
		return idDown
	}
	var ports []uint16
	for _, lr := range s.limits {
		if !lr.extra() && !slices.Contains(ports, lr.rule.Port) {
			ports = append(ports, lr.rule.Port)
		}
	}
	covered := map[protocols.RateLimiter][]protocols.RateLimit{}
	var kernelPorts []uint16
	nrules := 0
	for _, p := range ports {
		var err error
		var self []limitRule
		n := 0
		for _, lr := range s.limits {
			if lr.rule.Port != p || lr.shadowed {
				continue
			}
			if lr.dup {
				self = append(self, lr)
				continue
			}
			if err = l.SetRule(bpfRule(lr.rule)); err != nil {
				break
			}
			n++
			if lr.self != nil {
				self = append(self, lr)
			}
		}
		if err != nil {
			s.log.Warn("XDP cannot enforce this port's limits; they stay in userspace", "port", p, "err", err)
			if derr := l.DeleteRule(p); derr != nil {
				s.log.Warn("XDP rule cleanup", "port", p, "err", derr)
			}
			continue
		}
		kernelPorts = append(kernelPorts, p)
		nrules += n
		for _, lr := range self {
			covered[lr.self] = append(covered[lr.self], lr.from)
		}
	}
	mode := s.cfg.XDP.Mode
	switch {
	case id != nil:
		mode, err = "chained", id.Chain(l.Program())
	case mode == "" || mode == "auto":
		mode, err = l.Attach(s.cfg.XDP.Interface)
	default:
		mode, err = l.AttachMode(s.cfg.XDP.Interface, mode)
	}
	if err != nil {
		l.Close()
		s.log.Warn("XDP rate limiter not attached; limits are enforced in userspace", "interface", s.cfg.XDP.Interface, "err", err)
		return idDown
	}
	for _, p := range kernelPorts {
		s.limiter.SetKernel(p, true)
	}
	s.tellServices(covered)
	s.m.reg.MustRegister(l.Collector())
	loaded.Set(1)
	s.log.Info("XDP rate limiter attached", "interface", s.cfg.XDP.Interface, "mode", mode, "rules", nrules, "ports", len(kernelPorts))
	s.xdp = l
	evCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.forwardLimitEvents(evCtx, l.Events())
	}()
	return func() {
		stop()
		<-done
		s.tellServices(nil)
		for _, p := range kernelPorts {
			s.limiter.SetKernel(p, false)
		}
		if id != nil {
			if err := id.Chain(nil); err != nil {
				s.log.Warn("XDP unchain", "err", err)
			}
		}
		if err := l.Close(); err != nil {
			s.log.Warn("XDP detach", "err", err)
		}
		idDown()
	}
}

// forwardLimitEvents turns the limiter's (already rate-limited) notifications into events.
func (s *Sensor) forwardLimitEvents(ctx context.Context, ch <-chan bpf.LimitEvent) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-ch:
			if !ok {
				return
			}
			e := &protocols.Event{
				Time: ev.Time.UTC(), Type: "xdp.limit_" + ev.Kind, Protocol: "xdp", Transport: protocols.UDP,
				Sensor: s.cfg.SensorID,
				Fields: []protocols.Field{protocols.F("scope", ev.Scope), protocols.F("port", ev.Port),
					protocols.F("class", ev.Class), protocols.F("dropped", ev.Dropped), protocols.F("suppressed", ev.Suppressed)},
			}
			if e.Time.IsZero() {
				e.Time = time.Now().UTC()
			}
			if ev.Source.IsValid() {
				e.Src = netip.AddrPortFrom(ev.Source, 0)
			}
			s.bus.Emit(e)
		}
	}
}
