// Package netnstest gives privileged tests their own network namespaces.
//
// Every test that needs real interfaces, routes or traffic across a wire (netcfg, the XDP
// programs in bpf/, the sensor's end-to-end tests) uses it instead of touching the host's
// network:
//
//	a, b := netnstest.NewPair(t,
//		[]netip.Prefix{netip.MustParsePrefix("198.18.0.1/24")}, // sensor side
//		[]netip.Prefix{netip.MustParsePrefix("198.18.0.2/24")}) // client side
//	ln := a.Listen("tcp4", "0.0.0.0:502")      // a socket inside namespace a
//	c, err := b.Dial(ctx, "tcp4", "198.18.0.1:502")
//	cmd := b.Command(ctx, "mbpoll", "-1", "198.18.0.1") // a real client inside b
//	err = a.Do(func() error { ... })          // any code inside a, on a locked OS thread
//
// New creates one namespace named "icsn-" plus a random suffix (so parallel tests and
// parallel test binaries never collide), with lo up. NewPair creates two and joins them with a
// veth pair (this kernel has no dummy interfaces, and veth is built in) whose ends carry the
// given addresses; IPv6 duplicate address detection is off in both, so every address
// (link-local ones too) is usable at once. AddRoute adds routes for whole prefixes (on-link or via a gateway). t.Cleanup closes
// every socket the helpers opened and deletes the namespaces, which also removes the veth
// pair, whether the test passed or failed.
//
// Do runs a function inside a namespace on a locked OS thread and restores the original
// namespace afterwards (if that fails, the thread is left locked so the Go runtime discards
// it). Sockets keep the namespace they were created in, so a listener opened by Listen or
// inside Do serves that namespace from any goroutine. Command returns an *exec.Cmd that runs
// inside the namespace through `ip netns exec` (or `nsenter --net=` when iproute2 is
// missing).
//
// Tests using it need root: New calls NeedRoot, which skips without root locally and fails
// under CI=true, like protocoltest.NeedRoot. Use only test ranges (198.18.0.0/15, fd00::/8)
// inside the namespaces; nothing here sends traffic to the host's own networks.
package netnstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Prefix starts the name of every namespace and interface this package creates.
const Prefix = "icsn-"

// runDir is where named namespaces are bind-mounted (the iproute2 convention).
const runDir = "/run/netns"

// NS is a network namespace created for one test.
type NS struct {
	// Name is the namespace's name (/run/netns/<Name>), usable with `ip netns exec`.
	Name string
	// Link is the name of the veth end inside this namespace ("" when not connected).
	Link string

	t      testing.TB
	handle netns.NsHandle
	nl     *netlink.Handle
}

// NeedRoot skips the test without root, and fails it under CI (CI=true), where tests run as
// root.
func NeedRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if strings.EqualFold(os.Getenv("CI"), "true") {
		t.Fatal("this test needs root (network namespaces), and CI runs as root")
	}
	t.Skip("needs root (network namespaces)")
}

// New creates an empty network namespace with lo up, deleted by t.Cleanup.
func New(t testing.TB) *NS {
	t.Helper()
	NeedRoot(t)
	name := Prefix + randomHex(4)
	h, err := createNamed(name)
	if err != nil {
		t.Fatalf("netnstest: create namespace %s: %v", name, err)
	}
	n := &NS{Name: name, t: t, handle: h}
	t.Cleanup(n.destroy)
	n.nl, err = netlink.NewHandleAt(h)
	if err != nil {
		t.Fatalf("netnstest: netlink handle in %s: %v", name, err)
	}
	if err := n.nl.SetSocketTimeout(5 * time.Second); err != nil {
		t.Fatalf("netnstest: %v", err)
	}
	// No duplicate address detection: IPv6 addresses (link-local ones too) are usable, and
	// the namespace's state stable, as soon as a link is up.
	if err := n.Do(func() error {
		for _, k := range []string{"all", "default"} {
			if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+k+"/accept_dad", []byte("0"), 0); err != nil {
				return err
			}
		}
		return nil
	}); err != nil && !errors.Is(err, os.ErrNotExist) { // no IPv6 in this kernel
		t.Fatalf("netnstest: accept_dad in %s: %v", name, err)
	}
	lo, err := n.nl.LinkByName("lo")
	if err == nil {
		err = n.nl.LinkSetUp(lo)
	}
	if err != nil {
		t.Fatalf("netnstest: lo up in %s: %v", name, err)
	}
	return n
}

// NewPair creates two namespaces joined by a veth pair; aAddrs and bAddrs (address with
// prefix length, e.g. 198.18.0.1/24 or fd00:18::1/64) are assigned to the ends.
func NewPair(t testing.TB, aAddrs, bAddrs []netip.Prefix) (a, b *NS) {
	t.Helper()
	a, b = New(t), New(t)
	suffix := strings.TrimPrefix(a.Name, Prefix)
	a.Link, b.Link = "icsn"+suffix+"a", "icsn"+suffix+"b" // 13 bytes, under IFNAMSIZ
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: a.Link},
		PeerName:      b.Link,
		PeerNamespace: netlink.NsFd(int(b.handle)),
	}
	if err := a.nl.LinkAdd(veth); err != nil {
		t.Fatalf("netnstest: veth %s/%s: %v", a.Link, b.Link, err)
	}
	for _, side := range []struct {
		n     *NS
		addrs []netip.Prefix
	}{{a, aAddrs}, {b, bAddrs}} {
		for _, p := range side.addrs {
			if err := side.n.AddAddr(side.n.Link, p); err != nil {
				t.Fatal(err)
			}
		}
		link, err := side.n.nl.LinkByName(side.n.Link)
		if err == nil {
			err = side.n.nl.LinkSetUp(link)
		}
		if err != nil {
			t.Fatalf("netnstest: %s up in %s: %v", side.n.Link, side.n.Name, err)
		}
	}
	for _, n := range []*NS{a, b} {
		n.waitRunning()
	}
	return a, b
}

// waitRunning waits (at most 5 s) until the namespace's veth end is operationally up and
// has its IPv6 link-local address. The kernel does both in its link-watch work after the
// carrier comes up; both ends of a pair often have the same ifindex in fresh namespaces,
// which makes that work non-urgent, so it can run up to a second later when other
// namespaces changed links just before. Tests see a settled namespace instead.
func (n *NS) waitRunning() {
	n.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		up, ll, err := n.linkState()
		if err != nil {
			n.t.Fatalf("netnstest: %s in %s: %v", n.Link, n.Name, err)
		}
		if up && ll {
			return
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("netnstest: %s in %s not running after 5 s (oper up %v, link-local %v)", n.Link, n.Name, up, ll)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// linkState reports whether the veth end is operationally up and whether it has an IPv6
// link-local address (true too when IPv6 is off on it).
func (n *NS) linkState() (up, linkLocal bool, err error) {
	link, err := n.nl.LinkByName(n.Link)
	if err != nil {
		return false, false, err
	}
	up = link.Attrs().OperState == netlink.OperUp
	ipv6 := false
	if err := n.Do(func() error {
		v, err := os.ReadFile("/proc/sys/net/ipv6/conf/" + n.Link + "/disable_ipv6")
		ipv6 = err == nil && strings.TrimSpace(string(v)) == "0"
		return nil
	}); err != nil {
		return false, false, err
	}
	if !ipv6 {
		return up, true, nil // no IPv6 in this kernel or on this link
	}
	addrs, err := n.nl.AddrList(link, netlink.FAMILY_V6)
	if err != nil {
		return false, false, err
	}
	for _, a := range addrs {
		if a.IP.IsLinkLocalUnicast() {
			return up, true, nil
		}
	}
	return up, false, nil
}

// Handle is the namespace's file descriptor (owned by NS: do not close it).
func (n *NS) Handle() netns.NsHandle { return n.handle }

// Netlink is a netlink handle bound to the namespace (owned by NS: do not close it).
func (n *NS) Netlink() *netlink.Handle { return n.nl }

// Path is the namespace's bind mount, for tools that take a path (nsenter --net=PATH).
func (n *NS) Path() string { return filepath.Join(runDir, n.Name) }

// AddAddr assigns p (address and prefix length) to the interface dev in the namespace.
// IPv6 addresses are added without duplicate address detection.
func (n *NS) AddAddr(dev string, p netip.Prefix) error {
	link, err := n.nl.LinkByName(dev)
	if err != nil {
		return fmt.Errorf("netnstest: %s in %s: %w", dev, n.Name, err)
	}
	a := &netlink.Addr{IPNet: ipNet(p)}
	if p.Addr().Is6() {
		a.Flags = unix.IFA_F_NODAD
	}
	if err := n.nl.AddrAdd(link, a); err != nil {
		return fmt.Errorf("netnstest: add %s to %s in %s: %w", p, dev, n.Name, err)
	}
	return nil
}

// AddRoute routes the whole prefix dst out of the namespace's veth end: through the gateway
// via when it is valid, else on-link (the neighbours are resolved by ARP or NDP).
func (n *NS) AddRoute(dst netip.Prefix, via netip.Addr) error {
	if n.Link == "" {
		return fmt.Errorf("netnstest: %s has no veth (use NewPair)", n.Name)
	}
	link, err := n.nl.LinkByName(n.Link)
	if err != nil {
		return fmt.Errorf("netnstest: %s in %s: %w", n.Link, n.Name, err)
	}
	r := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: ipNet(dst.Masked())}
	if via.IsValid() {
		r.Gw = net.IP(via.AsSlice())
	} else {
		r.Scope = netlink.SCOPE_LINK
	}
	if err := n.nl.RouteAdd(r); err != nil {
		return fmt.Errorf("netnstest: route %s via %v in %s: %w", dst, via, n.Name, err)
	}
	return nil
}

// Do runs fn inside the namespace on a locked OS thread and returns its error (a panic in
// fn becomes an error). fn runs on its own goroutine, so it must not call t.Fatal. The
// caller's namespace is never changed. Goroutines started by fn run in the original
// namespace; sockets created by fn, and processes it starts, stay in this one.
func (n *NS) Do(fn func() error) error {
	errc := make(chan error, 1)
	// A fresh goroutine: if restoring fails, it exits still locked and the runtime
	// terminates its thread instead of reusing a thread in the wrong namespace.
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netnstest: current namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(n.handle); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netnstest: enter %s: %w", n.Name, err)
			return
		}
		var ferr error
		func() {
			defer func() {
				if r := recover(); r != nil {
					ferr = fmt.Errorf("netnstest: panic in %s: %v", n.Name, r)
				}
			}()
			ferr = fn()
		}()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("netnstest: restore namespace: %w", err))
			return // thread stays locked and dies with the goroutine
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Command returns a command that runs name inside the namespace (through `ip netns exec`,
// or `nsenter --net=` without iproute2), killed when ctx ends; WaitDelay bounds the wait
// for its output after that.
func (n *NS) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	var cmd *exec.Cmd
	if ip, err := exec.LookPath("ip"); err == nil {
		cmd = exec.CommandContext(ctx, ip, append([]string{"netns", "exec", n.Name, name}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + n.Path(), "--", name}, args...)...)
	}
	cmd.WaitDelay = 2 * time.Second
	return cmd
}

// Listen opens a stream listener inside the namespace, closed by t.Cleanup.
func (n *NS) Listen(network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := n.Do(func() (err error) {
		ln, err = net.Listen(network, addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("netnstest: listen %s %s in %s: %w", network, addr, n.Name, err)
	}
	n.t.Cleanup(func() { ln.Close() })
	return ln, nil
}

// ListenPacket opens a packet socket inside the namespace, closed by t.Cleanup.
func (n *NS) ListenPacket(network, addr string) (net.PacketConn, error) {
	var pc net.PacketConn
	err := n.Do(func() (err error) {
		pc, err = net.ListenPacket(network, addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("netnstest: listen %s %s in %s: %w", network, addr, n.Name, err)
	}
	n.t.Cleanup(func() { pc.Close() })
	return pc, nil
}

// Dial connects from inside the namespace; addr must be an IP literal with a port (no name
// resolution happens inside the namespace). Without a deadline in ctx it gives up after 5 s.
// The connection is closed by t.Cleanup if the test has not closed it.
func (n *NS) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
	}
	var c net.Conn
	err := n.Do(func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("netnstest: dial %s %s from %s: %w", network, addr, n.Name, err)
	}
	n.t.Cleanup(func() { c.Close() })
	return c, nil
}

// destroy closes the handles and removes the namespace's name; the kernel frees the
// namespace (and its veth end, which takes the peer with it) when the last socket and
// process in it are gone.
func (n *NS) destroy() {
	if n.nl != nil {
		n.nl.Close()
	}
	n.handle.Close()
	if err := netns.DeleteNamed(n.Name); err != nil && !errors.Is(err, os.ErrNotExist) {
		n.t.Errorf("netnstest: delete namespace %s: %v", n.Name, err)
	}
}

// createNamed creates a namespace bind-mounted at /run/netns/name on a locked thread and
// returns the calling goroutine to its original namespace.
func createNamed(name string) (netns.NsHandle, error) {
	type result struct {
		h   netns.NsHandle
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{netns.None(), err}
			return
		}
		defer orig.Close()
		h, err := netns.NewNamed(name)
		if err != nil {
			// NewNamed may have switched namespaces and left an empty file behind.
			os.Remove(filepath.Join(runDir, name))
		}
		if rerr := netns.Set(orig); rerr != nil {
			ch <- result{h, errors.Join(err, fmt.Errorf("restore namespace: %w", rerr))}
			return // thread stays locked and dies with the goroutine
		}
		runtime.UnlockOSThread()
		ch <- result{h, err}
	}()
	r := <-ch
	return r.h, r.err
}

func ipNet(p netip.Prefix) *net.IPNet {
	bits := 32
	if p.Addr().Is6() {
		bits = 128
	}
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), bits)}
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
