package netcfg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// step is one change with the code that makes it, undoes it (rollback) and records it.
type step struct {
	Change
	do     func() error
	undo   func() error
	commit func(*owned)
}

// merge lists the steps and the keeps as Changes.
func merge(steps []step, keeps Changes) Changes {
	out := make(Changes, 0, len(steps)+len(keeps))
	for _, s := range steps {
		out = append(out, s.Change)
	}
	return append(out, keeps...)
}

// localTable is the RTN_LOCAL routes of table local, by prefix.
type localTable map[netip.Prefix][]netlink.Route

// covering returns a local route whose prefix contains p (p itself included), skipping
// the routes skip says are going away.
func (t localTable) covering(p netip.Prefix, skip func(netip.Prefix, int) bool) (netip.Prefix, netlink.Route, bool) {
	for b := p.Bits(); b >= 0; b-- {
		q := netip.PrefixFrom(p.Addr(), b).Masked()
		for _, r := range t[q] {
			if !skip(q, r.LinkIndex) {
				return q, r, true
			}
		}
	}
	return netip.Prefix{}, netlink.Route{}, false
}

const dumpRetries = 5

func (c *Configurator) localRoutes() (localTable, error) {
	filter := &netlink.Route{Table: unix.RT_TABLE_LOCAL, Type: unix.RTN_LOCAL}
	var rs []netlink.Route
	var err error
	for range dumpRetries {
		rs, err = c.nl.RouteListFiltered(netlink.FAMILY_ALL, filter, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_TYPE)
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return nil, wrapErr("list local routes", err)
	}
	t := localTable{}
	for _, r := range rs {
		if p, ok := prefixOf(r.Dst); ok {
			t[p] = append(t[p], r)
		}
	}
	return t, nil
}

// compute plans the steps from the current state to p. Steps run in this order: removals
// of what is no longer planned, MACs, sysctls, aliases, routes.
func (c *Configurator) compute(ctx context.Context, p Plan) ([]step, Changes, error) {
	if err := p.Validate(); err != nil {
		return nil, nil, err
	}
	if c.nl == nil {
		return nil, nil, errClosed
	}
	links := map[string]netlink.Link{}
	link := func(name string) (netlink.Link, error) {
		if l, ok := links[name]; ok {
			return l, nil
		}
		l, err := c.nl.LinkByName(name)
		if err != nil {
			return nil, fmt.Errorf("netcfg: device %s: %w", name, err)
		}
		links[name] = l
		return l, nil
	}
	var local localTable
	if len(p.Routes)+len(p.Aliases) > 0 || len(c.own.routes)+len(c.own.aliases) > 0 {
		var err error
		if local, err = c.localRoutes(); err != nil {
			return nil, nil, err
		}
	}

	// Desired sets, to find what this Configurator owns and p no longer holds.
	wantRoute := map[netip.Prefix]int{}
	for _, r := range p.Routes {
		l, err := link(orLo(r.Device))
		if err != nil {
			return nil, nil, err
		}
		wantRoute[r.Prefix] = l.Attrs().Index
	}
	wantAlias := map[aliasKey]bool{}
	for _, a := range p.Aliases {
		l, err := link(a.Device)
		if err != nil {
			return nil, nil, err
		}
		wantAlias[aliasKey{l.Attrs().Index, a.Addr}] = true
	}
	wantMAC := map[int]bool{}
	for _, m := range p.MACs {
		l, err := link(m.Device)
		if err != nil {
			return nil, nil, err
		}
		wantMAC[l.Attrs().Index] = true
	}
	wantSysctl := map[string]bool{}
	for _, s := range p.Sysctls {
		path, _ := sysctlPath(s.Key)
		wantSysctl[path] = true
	}

	var steps []step
	var keeps Changes
	type linkPrefix struct {
		link int
		pfx  netip.Prefix
	}
	going := map[linkPrefix]bool{} // local routes that the removals below take away
	for pfx, r := range c.own.routes {
		if idx, ok := wantRoute[pfx]; !ok || idx != r.LinkIndex {
			steps = append(steps, c.routeDel(pfx, r, OpRemove))
			going[linkPrefix{r.LinkIndex, pfx}] = true
		}
	}
	for k, a := range c.own.aliases {
		if !wantAlias[k] {
			steps = append(steps, c.aliasDel(k, a, OpRemove))
			going[linkPrefix{k.link, netip.PrefixFrom(k.addr, k.addr.BitLen())}] = true
		}
	}
	skip := func(q netip.Prefix, idx int) bool { return going[linkPrefix{idx, q}] }
	for path, s := range c.own.sysctls {
		if !wantSysctl[path] {
			st, err := c.sysctlStep(path, s.key, s.prev, OpRestore)
			if err != nil {
				return nil, nil, err
			}
			if st != nil {
				steps = append(steps, *st)
			}
		}
	}
	for idx, m := range c.own.macs {
		if !wantMAC[idx] {
			steps = append(steps, c.macRestore(idx, m))
		}
	}
	slices.SortStableFunc(steps, func(a, b step) int { return strings.Compare(a.Target, b.Target) })

	for _, m := range p.MACs {
		l, _ := link(m.Device)
		st, keep, err := c.macStep(l, m)
		if err != nil {
			return nil, nil, err
		}
		if st != nil {
			steps = append(steps, *st)
		} else {
			keeps = append(keeps, keep)
		}
	}
	for _, s := range p.Sysctls {
		path, _ := sysctlPath(s.Key)
		st, err := c.sysctlStep(path, s.Key, s.Value, OpSet)
		if err != nil {
			return nil, nil, err
		}
		if st != nil {
			steps = append(steps, *st)
		} else {
			keeps = append(keeps, Change{Op: OpKeep, Kind: KindSysctl, Target: s.Key, Value: s.Value, Reason: "already set"})
		}
	}
	for i, a := range p.Aliases {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, nil, err
			}
		}
		l, _ := link(a.Device)
		k := aliasKey{l.Attrs().Index, a.Addr}
		target := fmt.Sprintf("%s dev %s", netip.PrefixFrom(a.Addr, a.Addr.BitLen()), a.Device)
		if _, ok := c.own.aliases[k]; ok {
			keeps = append(keeps, Change{Op: OpKeep, Kind: KindAlias, Target: target, Reason: "added earlier"})
			continue
		}
		if q, r, ok := local.covering(netip.PrefixFrom(a.Addr, a.Addr.BitLen()), skip); ok {
			keeps = append(keeps, Change{Op: OpKeep, Kind: KindAlias, Target: target,
				Reason: fmt.Sprintf("already local (%s dev %s)", q, linkName(c.nl, r.LinkIndex))})
			continue
		}
		steps = append(steps, c.aliasAdd(k, a, target))
	}
	for i, r := range p.Routes {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, nil, err
			}
		}
		dev := orLo(r.Device)
		idx := wantRoute[r.Prefix]
		target := fmt.Sprintf("%s dev %s", r.Prefix, dev)
		if o, ok := c.own.routes[r.Prefix]; ok && o.LinkIndex == idx {
			keeps = append(keeps, Change{Op: OpKeep, Kind: KindRoute, Target: target, Reason: "added earlier"})
			continue
		}
		nr := netlink.Route{
			LinkIndex: idx,
			Dst:       ipNet(r.Prefix),
			Type:      unix.RTN_LOCAL,
			Table:     unix.RT_TABLE_LOCAL,
			Scope:     netlink.SCOPE_HOST,
			Protocol:  RouteProtocol,
		}
		adopted := false
		for _, ex := range local[r.Prefix] {
			if ex.Protocol == RouteProtocol && ex.LinkIndex == idx && !skip(r.Prefix, idx) {
				steps = append(steps, step{
					Change: Change{Op: OpAdopt, Kind: KindRoute, Target: target, Reason: "left by an earlier run"},
					do:     func() error { return nil },
					commit: func(o *owned) { o.routes[r.Prefix] = ex },
				})
				adopted = true
				break
			}
		}
		if adopted {
			continue
		}
		if q, ex, ok := local.covering(r.Prefix, skip); ok {
			keeps = append(keeps, Change{Op: OpKeep, Kind: KindRoute, Target: target,
				Reason: fmt.Sprintf("already local (%s dev %s)", q, linkName(c.nl, ex.LinkIndex))})
			continue
		}
		steps = append(steps, c.routeAdd(r.Prefix, nr, target))
	}
	return steps, keeps, nil
}

func (c *Configurator) routeAdd(pfx netip.Prefix, r netlink.Route, target string) step {
	return step{
		Change: Change{Op: OpAdd, Kind: KindRoute, Target: target},
		do:     func() error { return wrapErr("add local route "+target, c.nl.RouteAdd(&r)) },
		undo:   func() error { return gone(c.nl.RouteDel(&r)) },
		commit: func(o *owned) { o.routes[pfx] = r },
	}
}

func (c *Configurator) routeDel(pfx netip.Prefix, r netlink.Route, op Op) step {
	target := fmt.Sprintf("%s dev %s", pfx, linkName(c.nl, r.LinkIndex))
	return step{
		Change: Change{Op: op, Kind: KindRoute, Target: target},
		do:     func() error { return wrapErr("delete local route "+target, gone(c.nl.RouteDel(&r))) },
		undo:   func() error { return c.nl.RouteAdd(&r) },
		commit: func(o *owned) { delete(o.routes, pfx) },
	}
}

func aliasAddr(a netip.Addr) *netlink.Addr {
	na := &netlink.Addr{IPNet: ipNet(netip.PrefixFrom(a, a.BitLen()))}
	if a.Is6() {
		na.Flags = unix.IFA_F_NODAD // usable at once, no tentative phase
	}
	return na
}

func (c *Configurator) aliasAdd(k aliasKey, a Alias, target string) step {
	l := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: k.link, Name: a.Device}}
	return step{
		Change: Change{Op: OpAdd, Kind: KindAlias, Target: target},
		do:     func() error { return wrapErr("add address "+target, c.nl.AddrAdd(l, aliasAddr(a.Addr))) },
		undo:   func() error { return gone(c.nl.AddrDel(l, aliasAddr(a.Addr))) },
		commit: func(o *owned) { o.aliases[k] = a },
	}
}

func (c *Configurator) aliasDel(k aliasKey, a Alias, op Op) step {
	l := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: k.link, Name: a.Device}}
	target := fmt.Sprintf("%s dev %s", netip.PrefixFrom(a.Addr, a.Addr.BitLen()), a.Device)
	return step{
		Change: Change{Op: op, Kind: KindAlias, Target: target},
		do:     func() error { return wrapErr("delete address "+target, gone(c.nl.AddrDel(l, aliasAddr(a.Addr)))) },
		undo:   func() error { return c.nl.AddrAdd(l, aliasAddr(a.Addr)) },
		commit: func(o *owned) { delete(o.aliases, k) },
	}
}

// macStep sets the MAC of l to m.Addr, or returns a keep when it already has it.
func (c *Configurator) macStep(l netlink.Link, m MAC) (*step, Change, error) {
	attrs := l.Attrs()
	if attrs.EncapType != "ether" || len(attrs.HardwareAddr) != 6 {
		return nil, Change{}, fmt.Errorf("netcfg: mac of %s: not an Ethernet interface (%s)", m.Device, attrs.EncapType)
	}
	cur := slices.Clone(attrs.HardwareAddr)
	want := slices.Clone(m.Addr)
	if bytes.Equal(cur, want) {
		reason := "already set"
		if _, ok := c.own.macs[attrs.Index]; ok {
			reason = "set earlier"
		}
		return nil, Change{Op: OpKeep, Kind: KindMAC, Target: m.Device, Value: want.String(), Reason: reason}, nil
	}
	idx := attrs.Index
	dev := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: idx, Name: m.Device}}
	return &step{
		Change: Change{Op: OpSet, Kind: KindMAC, Target: m.Device, Value: want.String(), Prev: cur.String()},
		do:     func() error { return wrapErr("set MAC of "+m.Device, c.nl.LinkSetHardwareAddr(dev, want)) },
		undo:   func() error { return c.nl.LinkSetHardwareAddr(dev, cur) },
		commit: func(o *owned) {
			if _, ok := o.macs[idx]; !ok { // keep the first original
				o.macs[idx] = macRecord{device: m.Device, orig: cur}
			}
		},
	}, Change{}, nil
}

func (c *Configurator) macRestore(idx int, m macRecord) step {
	dev := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: idx, Name: m.device}}
	var cur net.HardwareAddr
	if l, err := c.nl.LinkByIndex(idx); err == nil {
		cur = slices.Clone(l.Attrs().HardwareAddr)
	}
	return step{
		Change: Change{Op: OpRestore, Kind: KindMAC, Target: m.device, Value: m.orig.String(), Prev: cur.String()},
		do: func() error {
			return wrapErr("restore MAC of "+m.device, gone(c.nl.LinkSetHardwareAddr(dev, m.orig)))
		},
		undo: func() error {
			if cur == nil {
				return nil
			}
			return c.nl.LinkSetHardwareAddr(dev, cur)
		},
		commit: func(o *owned) { delete(o.macs, idx) },
	}
}

// sysctlStep writes value to path, or returns nil when it already holds it. op is OpSet
// (a planned value) or OpRestore (putting back the value before this Configurator).
func (c *Configurator) sysctlStep(path, key, value string, op Op) (*step, error) {
	cur, err := c.sysctlRead(path)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) && op == OpRestore {
			// The key went away with its interface: nothing to restore.
			return &step{Change: Change{Op: op, Kind: KindSysctl, Target: key, Reason: "gone"},
				do: func() error { return nil }, commit: func(o *owned) { delete(o.sysctls, path) }}, nil
		}
		return nil, wrapErr("read sysctl "+key, err)
	}
	if normSysctl(cur) == normSysctl(value) {
		if op == OpRestore {
			return &step{Change: Change{Op: op, Kind: KindSysctl, Target: key, Value: value, Reason: "already back"},
				do: func() error { return nil }, commit: func(o *owned) { delete(o.sysctls, path) }}, nil
		}
		return nil, nil
	}
	return &step{
		Change: Change{Op: op, Kind: KindSysctl, Target: key, Value: value, Prev: cur},
		do:     func() error { return wrapErr("write sysctl "+key, c.sysctlWrite(path, value)) },
		undo:   func() error { return c.sysctlWrite(path, cur) },
		commit: func(o *owned) {
			if op == OpRestore {
				delete(o.sysctls, path)
			} else if _, ok := o.sysctls[path]; !ok { // keep the first original
				o.sysctls[path] = sysctlRecord{key: key, prev: cur}
			}
		},
	}, nil
}

// undoAll lists the steps that undo everything owned, in the reverse order of Apply:
// routes, aliases, sysctls, MACs.
func (c *Configurator) undoAll() []step {
	var steps []step
	for pfx, r := range c.own.routes {
		steps = append(steps, c.routeDel(pfx, r, OpRemove))
	}
	for k, a := range c.own.aliases {
		steps = append(steps, c.aliasDel(k, a, OpRemove))
	}
	slices.SortStableFunc(steps, func(a, b step) int { return strings.Compare(a.Target, b.Target) })
	var tail []step
	for path, s := range c.own.sysctls {
		st, err := c.sysctlStep(path, s.key, s.prev, OpRestore)
		if err != nil {
			tail = append(tail, step{Change: Change{Op: OpRestore, Kind: KindSysctl, Target: s.key, Value: s.prev},
				do: func() error { return err }})
		} else if st != nil {
			tail = append(tail, *st)
		}
	}
	for idx, m := range c.own.macs {
		tail = append(tail, c.macRestore(idx, m))
	}
	slices.SortStableFunc(tail, func(a, b step) int { return strings.Compare(a.Target, b.Target) })
	return append(steps, tail...)
}

// gone treats "already absent" as success: a route or address that is no longer there, or
// an interface that was deleted.
func gone(err error) error {
	var lnf netlink.LinkNotFoundError
	switch {
	case err == nil, errors.Is(err, syscall.ESRCH), errors.Is(err, syscall.EADDRNOTAVAIL),
		errors.Is(err, syscall.ENODEV), errors.Is(err, syscall.ENOENT), errors.As(err, &lnf):
		return nil
	}
	return err
}

func orLo(dev string) string {
	if dev == "" {
		return "lo"
	}
	return dev
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// prefixOf converts a route destination; nil (a default route) is not a local prefix.
func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, bits := n.Mask.Size()
	if bits == 32 {
		a = a.Unmap()
	}
	return netip.PrefixFrom(a, ones).Masked(), true
}

func sortPlan(p *Plan) {
	slices.SortFunc(p.Routes, func(a, b Route) int { return comparePrefix(a.Prefix, b.Prefix) })
	slices.SortFunc(p.Aliases, func(a, b Alias) int { return a.Addr.Compare(b.Addr) })
	slices.SortFunc(p.MACs, func(a, b MAC) int { return strings.Compare(a.Device, b.Device) })
	slices.SortFunc(p.Sysctls, func(a, b Sysctl) int { return strings.Compare(a.Key, b.Key) })
}
