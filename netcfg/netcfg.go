package netcfg

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// RouteProtocol tags the AnyIP routes this package adds (`ip route show table local proto
// 245`), so that a later run adopts and removes routes a crashed run left behind.
const RouteProtocol netlink.RouteProtocol = 245

// Options configure a Configurator.
type Options struct {
	// NetNSPath names the network namespace to configure (/run/netns/NAME or
	// /proc/PID/ns/net); "" means the namespace of the goroutine that calls New.
	NetNSPath string
	// Logger gets one line per change made (nil: discard).
	Logger *slog.Logger
	// Timeout bounds each netlink request (0: 5 s).
	Timeout time.Duration
}

// Configurator applies Plans to one network namespace and remembers what it changed, so
// that Teardown undoes exactly that. Its methods are safe for concurrent use.
type Configurator struct {
	mu  sync.Mutex
	nl  *netlink.Handle
	ns  netns.NsHandle
	log *slog.Logger
	own owned
}

// owned is what this Configurator added or changed, with what to restore.
type owned struct {
	routes  map[netip.Prefix]netlink.Route
	aliases map[aliasKey]Alias
	macs    map[int]macRecord       // by link index
	sysctls map[string]sysctlRecord // by /proc/sys path
}

type aliasKey struct {
	link int
	addr netip.Addr
}

type macRecord struct {
	device string
	orig   net.HardwareAddr
}

type sysctlRecord struct {
	key, prev string
}

// New opens netlink in the namespace named by o.NetNSPath (or the caller's). Reading the
// state (Diff) needs no privilege; Apply and Teardown need CAP_NET_ADMIN, and a NetNSPath
// other than the caller's namespace needs CAP_SYS_ADMIN.
func New(o Options) (*Configurator, error) {
	c := &Configurator{log: o.Logger, own: owned{
		routes:  map[netip.Prefix]netlink.Route{},
		aliases: map[aliasKey]Alias{},
		macs:    map[int]macRecord{},
		sysctls: map[string]sysctlRecord{},
	}}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	var err error
	if o.NetNSPath != "" {
		if c.ns, err = netns.GetFromPath(o.NetNSPath); err != nil {
			return nil, wrapErr("open namespace "+o.NetNSPath, err)
		}
		c.nl, err = netlink.NewHandleAt(c.ns)
	} else {
		// Both on one locked thread, so the handle and ns name the same namespace.
		runtime.LockOSThread()
		c.ns, err = netns.Get()
		if err == nil {
			c.nl, err = netlink.NewHandle()
		}
		runtime.UnlockOSThread()
	}
	if err != nil {
		c.ns.Close()
		return nil, wrapErr("open netlink", err)
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	if err := c.nl.SetSocketTimeout(timeout); err != nil {
		c.Close()
		return nil, wrapErr("netlink timeout", err)
	}
	return c, nil
}

var errClosed = errors.New("netcfg: configurator closed")

// Close releases the netlink handle. It does not tear down: call Teardown first.
func (c *Configurator) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.nl == nil {
		return nil
	}
	c.nl.Close()
	c.nl = nil
	return c.ns.Close()
}

// Diff reports what Apply(p) would change, without changing anything: adds and sets for
// what is missing, keeps for what is already in place (with the reason), and removes and
// restores for what this Configurator applied earlier and p no longer holds.
func (c *Configurator) Diff(ctx context.Context, p Plan) (Changes, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	steps, keeps, err := c.compute(ctx, p)
	if err != nil {
		return nil, err
	}
	return merge(steps, keeps), nil
}

// Apply brings the namespace to the state p describes: it lists the current state first,
// adds only what is missing, and remembers what it added. Applying the same plan again
// changes nothing. What an earlier Apply added and p no longer holds is removed. If any
// step fails, the steps already done by this call are undone (a MAC set by it gets its
// original back) and the error says which step failed. It returns the changes made.
func (c *Configurator) Apply(ctx context.Context, p Plan) (Changes, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	steps, keeps, err := c.compute(ctx, p)
	if err != nil {
		return nil, err
	}
	for i, s := range steps {
		err := ctx.Err()
		if err == nil {
			err = s.do()
		}
		if err != nil {
			return nil, errors.Join(err, c.rollback(steps[:i]))
		}
		c.log.Info("netcfg: " + s.String())
	}
	for _, s := range steps {
		if s.commit != nil {
			s.commit(&c.own)
		}
	}
	return merge(steps, keeps), nil
}

// rollback undoes done steps in reverse order.
func (c *Configurator) rollback(done []step) error {
	var errs []error
	for i := len(done) - 1; i >= 0; i-- {
		if done[i].undo == nil {
			continue
		}
		if err := done[i].undo(); err != nil {
			errs = append(errs, fmt.Errorf("netcfg: rollback of %q: %w", done[i].String(), err))
		} else {
			c.log.Info("netcfg: rolled back: " + done[i].String())
		}
	}
	return errors.Join(errs...)
}

// Teardown removes every route and alias this Configurator added and restores every MAC
// and sysctl it changed, in the reverse order of Apply. Things already gone (a deleted
// interface, a route removed by hand) count as removed. It goes on after an error and
// returns all of them; what failed stays remembered, so Teardown can be retried.
func (c *Configurator) Teardown(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.nl == nil {
		return errClosed
	}
	var errs []error
	for _, s := range c.undoAll() {
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, fmt.Errorf("netcfg: teardown: %w", err))...)
		}
		if err := s.do(); err != nil {
			errs = append(errs, err)
			continue
		}
		c.log.Info("netcfg: " + s.String())
		s.commit(&c.own)
	}
	return errors.Join(errs...)
}

// Applied reports what this Configurator currently owns: the routes and aliases it added,
// the MACs and sysctls it set (with their new values).
func (c *Configurator) Applied() Plan {
	c.mu.Lock()
	defer c.mu.Unlock()
	var p Plan
	if c.nl == nil {
		return p
	}
	for pfx, r := range c.own.routes {
		p.Routes = append(p.Routes, Route{Prefix: pfx, Device: linkName(c.nl, r.LinkIndex)})
	}
	for _, a := range c.own.aliases {
		p.Aliases = append(p.Aliases, a)
	}
	for idx, m := range c.own.macs {
		if l, err := c.nl.LinkByIndex(idx); err == nil {
			p.MACs = append(p.MACs, MAC{Device: m.device, Addr: l.Attrs().HardwareAddr})
		}
	}
	for path, s := range c.own.sysctls {
		v, _ := c.sysctlRead(path)
		p.Sysctls = append(p.Sysctls, Sysctl{Key: s.key, Value: v})
	}
	sortPlan(&p)
	return p
}

func linkName(h *netlink.Handle, idx int) string {
	if l, err := h.LinkByIndex(idx); err == nil {
		return l.Attrs().Name
	}
	return fmt.Sprintf("if%d", idx)
}

// inNS runs fn on a thread in the configured namespace (the calling thread when it is
// already there, which needs no privilege).
func (c *Configurator) inNS(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		cur, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer cur.Close()
		if cur.Equal(c.ns) {
			err := fn()
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		if err := netns.Set(c.ns); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter namespace: %w", err)
			return
		}
		ferr := fn()
		if err := netns.Set(cur); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("restore namespace: %w", err))
			return // the thread stays locked and is discarded with this goroutine
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

func (c *Configurator) sysctlRead(path string) (v string, err error) {
	err = c.inNS(func() (err error) {
		v, err = readSysctl(path)
		return err
	})
	return v, err
}

func (c *Configurator) sysctlWrite(path, v string) error {
	return c.inNS(func() error { return writeSysctl(path, v) })
}
