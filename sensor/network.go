package sensor

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/icsnare/icsnare/netcfg"
)

// NetworkPlan is the netlink state the configuration asks for: AnyIP routes (or aliases)
// for the host prefixes when netcfg.anyip is on, an interface MAC when set, and the ARP
// sysctls of the hosts' link with xdp.identity (unless kernel_arp). Rules that
// cover everything (0.0.0.0/0, ::/0) mean "every address already local" and add nothing.
func NetworkPlan(cfg Config) (netcfg.Plan, error) {
	var plan netcfg.Plan
	if cfg.Netcfg.AnyIP {
		var ps []netip.Prefix
		for _, h := range cfg.Hosts {
			for _, a := range h.Addresses {
				p, err := ParseAddrOrPrefix(a)
				if err != nil {
					return plan, err
				}
				if p.Bits() > 0 {
					ps = append(ps, p)
				}
			}
		}
		var err error
		plan, err = netcfg.PlanFor(ps, netcfg.PlanOptions{RouteDevice: cfg.Netcfg.Device, AliasDevice: cfg.Netcfg.Aliases})
		if err != nil {
			return plan, fmt.Errorf("netcfg: %w", err)
		}
	}
	if cfg.Netcfg.MAC != "" {
		if cfg.Netcfg.Interface == "" {
			return plan, fmt.Errorf("netcfg: mac needs netcfg.interface")
		}
		hw, err := netcfg.ParseMAC(cfg.Netcfg.MAC)
		if err != nil {
			return plan, fmt.Errorf("netcfg: %w", err)
		}
		plan.MACs = append(plan.MACs, netcfg.MAC{Device: cfg.Netcfg.Interface, Addr: hw})
	}
	if id := cfg.XDP.Identity; id.Enabled && cfg.XDP.Interface != "" && !id.KernelARP {
		dev, err := hostLink(cfg.XDP)
		if err != nil {
			return plan, err
		}
		plan.Sysctls = append(plan.Sysctls, netcfg.IdentitySysctls(dev)...)
	}
	return plan, plan.Validate()
}

// SetupNetwork applies the netcfg part of the configuration and returns the function that
// undoes it. Nothing is touched when the plan is empty.
func (s *Sensor) SetupNetwork(ctx context.Context) (teardown func(), err error) {
	plan, err := NetworkPlan(s.cfg)
	if err != nil {
		return func() {}, &ConfigError{Err: err}
	}
	xdpDown := s.setupXDP(ctx)
	if len(plan.Routes)+len(plan.Aliases)+len(plan.MACs)+len(plan.Sysctls) == 0 {
		return xdpDown, nil
	}
	nc, err := netcfg.New(netcfg.Options{Logger: s.log})
	if err != nil {
		xdpDown()
		return func() {}, err
	}
	changes, err := nc.Apply(ctx, plan)
	if err != nil {
		nc.Close()
		xdpDown()
		return func() {}, err
	}
	s.log.Info("network configured", "changes", len(changes.Pending()))
	s.netcfgApplied = true
	return func() {
		xdpDown()
		tctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if err := nc.Teardown(tctx); err != nil {
			s.log.Warn("network teardown failed; the next run adopts what is left", "err", err)
		}
		nc.Close()
	}, nil
}

// NeedsNetAdmin reports whether the sensor changed the network and so must keep
// CAP_NET_ADMIN after dropping privileges, to undo it at shutdown.
func (s *Sensor) NeedsNetAdmin() bool { return s.netcfgApplied }
