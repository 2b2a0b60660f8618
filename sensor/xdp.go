package sensor

import (
	"context"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/icsnare/icsnare/bpf"
	"github.com/icsnare/icsnare/protocols"
)

// xdpRules gathers the kernel rules: every RateLimiter service's limits (the SNMP
// profile's evasion entities), on the port it is bound to, and the config's default
// limits for the other UDP ports the sensor serves. It also returns, per service, the
// limits that the rules cover.
func (s *Sensor) xdpRules() ([]bpf.Rule, map[protocols.RateLimiter][]protocols.RateLimit) {
	var rules []bpf.Rule
	type key struct {
		port  uint16
		class string
	}
	seen := map[key]bool{}
	covered := map[protocols.RateLimiter][]protocols.RateLimit{}
	limitedPorts := map[uint16]bool{}
	for _, d := range s.profiles {
		for ep, ds := range d.services {
			rl, ok := ds.svc.(protocols.RateLimiter)
			if !ok || ep.Transport != protocols.UDP {
				continue
			}
			for _, l := range rl.RateLimits() {
				port := uint16(boundPort(s.cfg, ds.protocol, l.Port))
				if port != uint16(ep.Port) {
					continue
				}
				k := key{port, l.Class}
				if seen[k] {
					s.log.Warn("xdp: two profiles limit the same port; the first one's limit applies", "port", port, "class", l.Class)
				} else {
					seen[k] = true
					rules = append(rules, bpf.Rule{Port: port, Class: l.Class, PerSource: l.PerSource, Global: l.Global})
					limitedPorts[port] = true
				}
				covered[rl] = append(covered[rl], l)
			}
		}
	}
	if s.cfg.XDP.PerSourcePerMinute > 0 || s.cfg.XDP.GlobalPerMinute > 0 {
		for _, d := range s.profiles {
			for ep := range d.services {
				port := uint16(ep.Port)
				if ep.Transport != protocols.UDP || limitedPorts[port] {
					continue
				}
				limitedPorts[port] = true
				rules = append(rules, bpf.Rule{Port: port, PerSource: s.cfg.XDP.PerSourcePerMinute, Global: s.cfg.XDP.GlobalPerMinute})
			}
		}
	}
	return rules, covered
}

// setupXDP loads and attaches the XDP rate limiter when xdp.interface is set. When it
// cannot (no privilege, old kernel), the services keep enforcing their limits in
// userspace and the sensor says so; that is not an error.
func (s *Sensor) setupXDP(ctx context.Context) func() {
	loaded := prometheus.NewGauge(prometheus.GaugeOpts{Name: "icsnare_xdp_loaded",
		Help: "1 when the XDP rate limiter enforces the UDP limits in the kernel, 0 when userspace does."})
	s.m.reg.MustRegister(loaded)
	if s.cfg.XDP.Interface == "" {
		return func() {}
	}
	rules, covered := s.xdpRules()
	l, err := bpf.Load(bpf.Config{Rules: rules, PinPath: s.cfg.XDP.PinPath, Logger: s.log})
	if err != nil {
		s.log.Warn("XDP rate limiter not loaded; limits are enforced in userspace", "err", err)
		return func() {}
	}
	mode := s.cfg.XDP.Mode
	if mode == "" || mode == "auto" {
		mode, err = l.Attach(s.cfg.XDP.Interface)
	} else {
		mode, err = l.AttachMode(s.cfg.XDP.Interface, mode)
	}
	if err != nil {
		l.Close()
		s.log.Warn("XDP rate limiter not attached; limits are enforced in userspace", "interface", s.cfg.XDP.Interface, "err", err)
		return func() {}
	}
	for svc, ls := range covered {
		svc.KernelEnforced(ls)
	}
	s.m.reg.MustRegister(l.Collector())
	loaded.Set(1)
	s.log.Info("XDP rate limiter attached", "interface", s.cfg.XDP.Interface, "mode", mode, "rules", len(rules))
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
		for svc := range covered {
			svc.KernelEnforced(nil)
		}
		if err := l.Close(); err != nil {
			s.log.Warn("XDP detach", "err", err)
		}
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
