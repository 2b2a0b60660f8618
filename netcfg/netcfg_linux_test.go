package netcfg

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/internal/netnstest"
	"github.com/icsnare/icsnare/protocols/protocoltest"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// sensorNet is a sensor namespace (a) joined to a client namespace (b):
// a: 198.18.0.1/24 fd00:18::1/64, b: 198.18.0.2/24 fd00:18::2/64.
func sensorNet(t *testing.T) (a, b *netnstest.NS, c *Configurator) {
	t.Helper()
	protocoltest.NeedRoot(t)
	a, b = netnstest.NewPair(t,
		prefixes("198.18.0.1/24", "fd00:18::1/64"),
		prefixes("198.18.0.2/24", "fd00:18::2/64"))
	c, err := New(Options{NetNSPath: a.Path()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return a, b, c
}

// snapshot describes a namespace's addresses, routes (all tables), links (with MACs) and
// the sysctls tests touch, one sorted line each. It waits (at most 5 s) until the kernel's
// link set-up has settled, since the kernel does it after the calls that cause it: no
// address is still in duplicate address detection (its local route comes when DAD ends),
// every link that is up is running and has its link-local address, and two readings agree.
func snapshot(t *testing.T, n *netnstest.NS) string {
	t.Helper()
	prev := ""
	for range 100 {
		s, settled := readState(t, n)
		if settled && s == prev {
			return s
		}
		prev = s
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("state of %s does not settle:\n%s", n.Name, prev)
	return ""
}

// readState reads the state snapshot describes and whether the kernel's IPv6 set-up has
// settled.
func readState(t *testing.T, n *netnstest.NS) (string, bool) {
	h := n.Netlink()
	settled := true
	var lines []string
	links, err := h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		a := l.Attrs()
		lines = append(lines, fmt.Sprintf("link %d %s %s %v", a.Index, a.Name, a.HardwareAddr, a.Flags&net.FlagUp))
	}
	addrs, err := h.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	linkLocal := map[int]bool{}
	for _, a := range addrs {
		lines = append(lines, fmt.Sprintf("addr %d %s", a.LinkIndex, a.IPNet))
		if a.Flags&unix.IFA_F_TENTATIVE != 0 {
			settled = false
		}
		if a.IP.IsLinkLocalUnicast() && a.IP.To4() == nil {
			linkLocal[a.LinkIndex] = true
		}
	}
	for _, l := range links {
		a := l.Attrs()
		if a.Flags&net.FlagLoopback == 0 && a.Flags&net.FlagUp != 0 && (a.OperState != netlink.OperUp || !linkLocal[a.Index]) {
			settled = false
		}
	}
	routes, err := h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		lines = append(lines, fmt.Sprintf("route table %d type %d %v dev %d proto %d", r.Table, r.Type, r.Dst, r.LinkIndex, r.Protocol))
	}
	if err := n.Do(func() error {
		for _, k := range []string{"ipv4/conf/all/arp_ignore", "ipv4/conf/all/arp_announce", "ipv4/ip_nonlocal_bind", "ipv6/ip_nonlocal_bind"} {
			v, err := os.ReadFile("/proc/sys/net/" + k)
			if err != nil {
				return err
			}
			lines = append(lines, "sysctl "+k+" "+strings.TrimSpace(string(v)))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n"), settled
}

// lineDiff lists the lines only in a (-) and only in b (+).
func lineDiff(a, b string) string {
	as, bs := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out []string
	for _, l := range as {
		if !slices.Contains(bs, l) {
			out = append(out, "- "+l)
		}
	}
	for _, l := range bs {
		if !slices.Contains(as, l) {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}

func mustMAC(s string) net.HardwareAddr {
	hw, err := ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return hw
}

func TestApplyTwiceAndTeardown(t *testing.T) {
	a, _, c := sensorNet(t)
	ctx := context.Background()
	before := snapshot(t, a)
	plan := Plan{
		Routes: []Route{
			{Prefix: netip.MustParsePrefix("198.19.0.0/24")},
			{Prefix: netip.MustParsePrefix("fd00:19::/64")},
			{Prefix: netip.MustParsePrefix("127.64.0.0/10")}, // inside 127.0.0.0/8: already local
		},
		Aliases: []Alias{
			{Addr: netip.MustParseAddr("198.18.1.10"), Device: a.Link},
			{Addr: netip.MustParseAddr("198.18.1.11"), Device: a.Link},
			{Addr: netip.MustParseAddr("fd00:18:1::10"), Device: a.Link},
			{Addr: netip.MustParseAddr("198.18.0.1"), Device: a.Link}, // the veth's own address
		},
		MACs:    []MAC{{Device: a.Link, Addr: mustMAC("02:1c:06:aa:bb:01")}},
		Sysctls: append(ARPSysctls(""), NonlocalBindSysctls()...),
	}

	diff, err := c.Diff(ctx, plan)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("diff:\n%s", diff)
	if got := len(diff.Pending()); got != 2+3+1+4 {
		t.Fatalf("diff has %d pending changes, want 10:\n%s", got, diff)
	}
	if after := snapshot(t, a); after != before {
		t.Fatalf("Diff changed the namespace:\n%s", lineDiff(before, after))
	}
	applied, err := c.Apply(ctx, plan)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(applied, diff) {
		t.Fatalf("Apply did\n%s\nDiff said\n%s", applied, diff)
	}
	mid := snapshot(t, a)
	for _, want := range []string{
		"route table 255 type 2 198.19.0.0/24 dev 1 proto 245",
		"route table 255 type 2 fd00:19::/64 dev 1 proto 245",
		"/32", "addr 2 fd00:18:1::10/128", // lines checked below in detail
		"02:1c:06:aa:bb:01",
		"sysctl ipv4/conf/all/arp_ignore 1", "sysctl ipv6/ip_nonlocal_bind 1",
	} {
		if !strings.Contains(mid, want) {
			t.Errorf("after Apply, state lacks %q:\n%s", want, mid)
		}
	}

	again, err := c.Apply(ctx, plan)
	if err != nil {
		t.Fatal(err)
	}
	if p := again.Pending(); len(p) != 0 {
		t.Fatalf("second Apply changed:\n%s", p)
	}
	if after := snapshot(t, a); after != mid {
		t.Fatalf("second Apply changed the namespace:\n%s", lineDiff(mid, after))
	}
	for _, k := range again {
		if k.Target == "127.64.0.0/10 dev lo" && !strings.Contains(k.Reason, "127.0.0.0/8 dev lo") {
			t.Errorf("keep reason %q", k.Reason)
		}
	}
	owned := c.Applied()
	if len(owned.Routes) != 2 || len(owned.Aliases) != 3 || len(owned.MACs) != 1 || len(owned.Sysctls) != 4 {
		t.Fatalf("Applied: %+v", owned)
	}

	if err := c.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	if after := snapshot(t, a); after != before {
		t.Fatalf("Teardown left a different state:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if err := c.Teardown(ctx); err != nil {
		t.Fatalf("second Teardown: %v", err)
	}
	if p := c.Applied(); len(p.Routes)+len(p.Aliases)+len(p.MACs)+len(p.Sysctls) != 0 {
		t.Fatalf("still owned after Teardown: %+v", p)
	}
}

func TestApplyReconcilesAndAdopts(t *testing.T) {
	a, _, c := sensorNet(t)
	ctx := context.Background()
	before := snapshot(t, a)
	wide := Plan{Routes: []Route{{Prefix: netip.MustParsePrefix("198.19.0.0/16")}}}
	if _, err := c.Apply(ctx, wide); err != nil {
		t.Fatal(err)
	}
	// Narrowing the plan: the /24 is inside the /16 that goes away, so it must be added.
	narrow := Plan{Routes: []Route{{Prefix: netip.MustParsePrefix("198.19.5.0/24")}}}
	got, err := c.Apply(ctx, narrow)
	if err != nil {
		t.Fatal(err)
	}
	want := "remove route 198.19.0.0/16 dev lo\nadd route 198.19.5.0/24 dev lo\n"
	if got.String() != want {
		t.Fatalf("changes\n%s\nwant\n%s", got, want)
	}

	// A route with our protocol left by a crashed run is adopted, then torn down.
	lo, err := a.Netlink().LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	stale := &netlink.Route{LinkIndex: lo.Attrs().Index, Dst: ipNet(netip.MustParsePrefix("198.19.9.0/24")),
		Type: unix.RTN_LOCAL, Table: unix.RT_TABLE_LOCAL, Scope: netlink.SCOPE_HOST, Protocol: RouteProtocol}
	if err := a.Netlink().RouteAdd(stale); err != nil {
		t.Fatal(err)
	}
	narrow.Routes = append(narrow.Routes, Route{Prefix: netip.MustParsePrefix("198.19.9.0/24")})
	got, err = c.Apply(ctx, narrow)
	if err != nil {
		t.Fatal(err)
	}
	if got.Pending().String() != "adopt route 198.19.9.0/24 dev lo: left by an earlier run\n" {
		t.Fatalf("changes:\n%s", got)
	}
	if err := c.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	if after := snapshot(t, a); after != before {
		t.Fatalf("Teardown left a different state:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestAnyIPPrefixReachable: one AnyIP route makes a whole /24 (and a /64) local: the
// client connects to any address of it, a listener on the wildcard address accepts, and
// LocalAddr names the dialed address.
func TestAnyIPPrefixReachable(t *testing.T) {
	a, b, c := sensorNet(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	plan, err := PlanFor(prefixes("198.19.0.0/24", "fd00:19::/64"), PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Apply(ctx, plan); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Teardown(context.Background()) })
	// IPv4: on-link, so the sensor must answer ARP for the whole /24. IPv6: via the
	// sensor's address (the kernel answers NDP only for assigned addresses).
	if err := b.AddRoute(netip.MustParsePrefix("198.19.0.0/24"), netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	if err := b.AddRoute(netip.MustParsePrefix("fd00:19::/64"), netip.MustParseAddr("fd00:18::1")); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		network, listen string
		dial            []string
	}{
		{"tcp4", "0.0.0.0:9000", []string{"198.19.0.1", "198.19.0.77", "198.19.0.254"}},
		{"tcp6", "[::]:9000", []string{"fd00:19::1", "fd00:19::abcd:1234"}},
	} {
		ln, err := a.Listen(tc.network, tc.listen)
		if err != nil {
			t.Fatal(err)
		}
		locals := make(chan string, len(tc.dial))
		go func() {
			for range tc.dial {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				locals <- conn.LocalAddr().(*net.TCPAddr).AddrPort().Addr().Unmap().String()
				conn.Close()
			}
		}()
		for _, addr := range tc.dial {
			conn, err := b.Dial(ctx, tc.network, net.JoinHostPort(addr, "9000"))
			if err != nil {
				t.Fatalf("dial %s: %v", addr, err)
			}
			conn.Close()
			select {
			case got := <-locals:
				if got != addr {
					t.Errorf("LocalAddr %s, dialed %s", got, addr)
				}
			case <-ctx.Done():
				t.Fatal("no accept")
			}
		}
	}

	// Bindable: any IPv4 address of the prefix, none outside it.
	err = a.Do(func() error {
		for _, tc := range []struct {
			addr string
			ok   bool
		}{{"198.19.0.200:9001", true}, {"198.19.1.5:9001", false}} {
			ln, err := net.Listen("tcp4", tc.addr)
			if (err == nil) != tc.ok {
				return fmt.Errorf("bind %s: %v, want ok=%v", tc.addr, err, tc.ok)
			}
			if err == nil {
				ln.Close()
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// IPv6 binds of one address of the prefix check assigned addresses only; with
	// NonlocalBindSysctls they work.
	bind6 := func() error {
		return a.Do(func() error {
			ln, err := net.Listen("tcp6", "[fd00:19::77]:9001")
			if err == nil {
				ln.Close()
			}
			return err
		})
	}
	if err := bind6(); err == nil {
		t.Log("this kernel binds AnyIP IPv6 addresses without ip_nonlocal_bind")
	}
	plan.Sysctls = NonlocalBindSysctls()
	if _, err := c.Apply(ctx, plan); err != nil {
		t.Fatal(err)
	}
	if err := bind6(); err != nil {
		t.Fatalf("bind with ip_nonlocal_bind: %v", err)
	}
}

// TestMACRestoredOnFailure: a later step fails (the route slot is taken by a non-local
// route), so Apply undoes the MAC, sysctl and alias it had already changed.
func TestMACRestoredOnFailure(t *testing.T) {
	a, _, c := sensorNet(t)
	ctx := context.Background()
	lo, err := a.Netlink().LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	blocker := &netlink.Route{LinkIndex: lo.Attrs().Index, Dst: ipNet(netip.MustParsePrefix("198.19.7.0/24")),
		Type: unix.RTN_UNICAST, Table: unix.RT_TABLE_LOCAL, Scope: netlink.SCOPE_LINK}
	if err := a.Netlink().RouteAdd(blocker); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, a)
	plan := Plan{
		Routes:  []Route{{Prefix: netip.MustParsePrefix("198.19.6.0/24")}, {Prefix: netip.MustParsePrefix("198.19.7.0/24")}},
		Aliases: []Alias{{Addr: netip.MustParseAddr("198.18.1.10"), Device: a.Link}},
		MACs:    []MAC{{Device: a.Link, Addr: mustMAC("02:1c:06:aa:bb:02")}},
		Sysctls: NonlocalBindSysctls(),
	}
	_, err = c.Apply(ctx, plan)
	if err == nil || !strings.Contains(err.Error(), "add local route 198.19.7.0/24 dev lo: file exists") {
		t.Fatalf("Apply: %v", err)
	}
	t.Log(err)
	if after := snapshot(t, a); after != before {
		t.Fatalf("failed Apply left changes:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if p := c.Applied(); len(p.Routes)+len(p.Aliases)+len(p.MACs)+len(p.Sysctls) != 0 {
		t.Fatalf("a failed Apply is remembered: %+v", p)
	}

	// Without the blocker the same plan applies, and Teardown restores the MAC.
	if err := a.Netlink().RouteDel(blocker); err != nil {
		t.Fatal(err)
	}
	before = snapshot(t, a)
	if _, err := c.Apply(ctx, plan); err != nil {
		t.Fatal(err)
	}
	l, err := a.Netlink().LinkByName(a.Link)
	if err != nil || l.Attrs().HardwareAddr.String() != "02:1c:06:aa:bb:02" {
		t.Fatalf("MAC not set: %v %v", l, err)
	}
	if err := c.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	if after := snapshot(t, a); after != before {
		t.Fatalf("Teardown left a different state:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

func TestBadMACRejected(t *testing.T) {
	a, _, c := sensorNet(t)
	before := snapshot(t, a)
	for _, tc := range []struct {
		name string
		mac  MAC
		err  string
	}{
		{"broadcast", MAC{Device: a.Link, Addr: net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}, "multicast or broadcast"},
		{"multicast", MAC{Device: a.Link, Addr: net.HardwareAddr{0x01, 0x00, 0x5e, 0, 0, 1}}, "multicast or broadcast"},
		{"zero", MAC{Device: a.Link, Addr: make(net.HardwareAddr, 6)}, "zero address"},
		{"short", MAC{Device: a.Link, Addr: net.HardwareAddr{0x02, 0, 0, 0, 1}}, "5 bytes, want 6"},
		{"EUI-64", MAC{Device: a.Link, Addr: net.HardwareAddr{0x02, 0, 0, 0, 0, 0, 0, 1}}, "8 bytes, want 6"},
		{"loopback", MAC{Device: "lo", Addr: mustMAC("02:1c:06:aa:bb:03")}, "not an Ethernet interface"},
		{"no device", MAC{Device: "icsn-nonexist", Addr: mustMAC("02:1c:06:aa:bb:03")}, "device icsn-nonexist: Link not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Apply(context.Background(), Plan{MACs: []MAC{tc.mac}})
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("Apply: %v, want %q", err, tc.err)
			}
		})
	}
	if after := snapshot(t, a); after != before {
		t.Fatalf("rejected MACs changed the namespace:\n%s", after)
	}
}

func TestContextCanceled(t *testing.T) {
	a, _, c := sensorNet(t)
	before := snapshot(t, a)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.Apply(ctx, Plan{Routes: []Route{{Prefix: netip.MustParsePrefix("198.19.0.0/24")}}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Apply: %v", err)
	}
	if snapshot(t, a) != before {
		t.Fatal("canceled Apply changed the namespace")
	}
}

// TestScale applies a /16 AnyIP route and 1024 aliases and tears them down, logging the
// time each takes (no assertion on times).
func TestScale(t *testing.T) {
	a, _, c := sensorNet(t)
	ctx := context.Background()
	before := snapshot(t, a)

	var hosts []netip.Prefix
	for i := range 1024 {
		hosts = append(hosts, netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 19, byte(i >> 8), byte(i)}), 32))
	}
	plan, err := PlanFor(hosts, PlanOptions{AliasDevice: a.Link})
	if err != nil {
		t.Fatal(err)
	}
	plan.Routes = []Route{{Prefix: netip.MustParsePrefix("198.18.0.0/16")}} // wider than the veth's /24
	start := time.Now()
	changes, err := c.Apply(ctx, plan)
	if err != nil {
		t.Fatal(err)
	}
	applyDur := time.Since(start)
	if n := len(changes.Pending()); n != 1025 {
		t.Fatalf("%d changes, want 1025", n)
	}
	start = time.Now()
	again, err := c.Apply(ctx, plan)
	if err != nil || len(again.Pending()) != 0 {
		t.Fatalf("second Apply: %v\n%s", err, again.Pending())
	}
	noopDur := time.Since(start)
	start = time.Now()
	if err := c.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	teardownDur := time.Since(start)
	t.Logf("apply 1024 aliases + /16 route: %v; no-op apply: %v; teardown: %v", applyDur, noopDur, teardownDur)

	start = time.Now()
	route := Plan{Routes: []Route{{Prefix: netip.MustParsePrefix("198.19.0.0/16")}}}
	if _, err := c.Apply(ctx, route); err != nil {
		t.Fatal(err)
	}
	t.Logf("apply one /16 AnyIP route (list + add): %v", time.Since(start))
	if err := c.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	if after := snapshot(t, a); after != before {
		t.Fatalf("Teardown left a different state")
	}
}

func TestClosed(t *testing.T) {
	_, _, c := sensorNet(t)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := c.Apply(context.Background(), Plan{}); !errors.Is(err, errClosed) {
		t.Fatalf("Apply after Close: %v", err)
	}
	if err := c.Teardown(context.Background()); !errors.Is(err, errClosed) {
		t.Fatalf("Teardown after Close: %v", err)
	}
	if p := c.Applied(); len(p.Routes) != 0 {
		t.Fatal(p)
	}
}
