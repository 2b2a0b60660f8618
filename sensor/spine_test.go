package sensor

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
)

// spineProto is a UDP protocol registered only in this test. It exercises every shape the
// spine gives packet services:
//
//	"multi N"  N replies to one request
//	"count"    a per-flow counter (session state)
//	"later N"  N unsolicited datagrams through Session.Send
//	"late N"   the reply "late" N ms after ServePacket returned (as a tarpit answers)
//	"udp-ep"   opens an ephemeral UDP endpoint that echoes "ep <data>"
//	"udp-ep-closed" opens an ephemeral UDP endpoint and closes it (one short transfer)
//	"tcp-ep"   opens an ephemeral TCP endpoint that greets and echoes lines
//	broadcast  "who" answered with "iam <host address>"
type spineProto struct{}

func (spineProto) Name() string { return "spinetest" }
func (spineProto) Configure(sec *profiles.Section, _ any) (protocols.Service, error) {
	return &spineService{}, nil
}

const spinePort = 9

type spineService struct{}

func (*spineService) Endpoints() []protocols.Endpoint {
	return []protocols.Endpoint{{Transport: protocols.UDP, Port: spinePort}}
}

func (*spineService) ServeBroadcast(ctx context.Context, s *protocols.Session, to netip.Addr, req []byte, reply func([]byte)) {
	if string(req) == "who" && to.IsValid() {
		reply([]byte("iam " + s.Host.Addr.String()))
	}
}

func (*spineService) ServePacket(ctx context.Context, s *protocols.Session, req []byte, reply func([]byte)) {
	cmd, arg, _ := strings.Cut(string(req), " ")
	n, _ := strconv.Atoi(arg)
	switch cmd {
	case "multi":
		for i := 1; i <= n; i++ {
			reply([]byte("part " + strconv.Itoa(i)))
		}
	case "verify":
		s.Verify()
		reply([]byte("verified"))
	case "count":
		c := s.State("count", func() any { return new(atomic.Int64) }).(*atomic.Int64)
		reply([]byte(strconv.FormatInt(c.Add(1), 10)))
	case "late":
		go func() {
			time.Sleep(time.Duration(n) * time.Millisecond)
			reply([]byte("late"))
		}()
	case "later":
		go func() {
			sent := 0
			for range n {
				if s.Send([]byte("later")) == nil {
					sent++
				}
			}
			_ = sent
		}()
	case "udp-ep":
		ep, err := s.OpenUDP()
		if err != nil {
			reply([]byte("error " + err.Error()))
			return
		}
		reply([]byte("port " + strconv.Itoa(ep.Port())))
		go func() {
			defer ep.Close()
			buf := make([]byte, 512)
			for {
				n, from, err := ep.ReadFrom(buf)
				if err != nil {
					return
				}
				ep.WriteTo(append([]byte("ep "), buf[:n]...), from)
			}
		}()
	case "udp-ep-closed":
		ep, err := s.OpenUDP()
		if err != nil {
			reply([]byte("error " + err.Error()))
			return
		}
		ep.Close()
		reply([]byte("port " + strconv.Itoa(ep.Port())))
	case "tcp-ep":
		ep, err := s.OpenTCP()
		if err != nil {
			reply([]byte("error " + err.Error()))
			return
		}
		reply([]byte("port " + strconv.Itoa(ep.Port())))
		go func() {
			c, err := ep.Accept(s.Context())
			if err != nil {
				return
			}
			defer c.Close()
			fmt.Fprintf(c, "hello from %s\n", s.Host.Addr)
			io.Copy(c, io.LimitReader(c, 1<<10))
		}()
	}
}

func init() { protocols.Register(spineProto{}) }

// newBound creates a sensor for cfg and binds it. The sensor shares the wildcard with the
// rest of the machine, so when one of its ports is taken (by another test binary, say) it
// tries again at another offset, which pick chooses: at most 8 times.
func newBound(t *testing.T, ctx context.Context, cfg Config, pick func() int, setup func(*Sensor)) (*Sensor, Config) {
	t.Helper()
	var err error
	for range 8 {
		cfg.Bind.PortOffset = pick()
		var s *Sensor
		if s, err = New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
			t.Fatal(err)
		}
		if setup != nil {
			setup(s)
		}
		if err = s.Bind(ctx); err == nil {
			return s, cfg
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			t.Fatal(err)
		}
	}
	t.Fatalf("no free port offset in 8 tries: %v", err)
	return nil, cfg
}

// freePortPair asks the kernel for a port free for both TCP and UDP on the wildcard.
func freePortPair(t *testing.T) int {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp4", "0.0.0.0:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp4", fmt.Sprintf("0.0.0.0:%d", port))
		ln.Close()
		if err == nil {
			pc.Close()
			return port
		}
	}
	t.Fatal("no port free for both TCP and UDP")
	return 0
}

type spineSensor struct {
	s    *Sensor
	net  string // "127.10.x"
	port int
	stop func()
}

func (r *spineSensor) host(last int) netip.AddrPort {
	return netip.MustParseAddrPort(fmt.Sprintf("%s.%d:%d", r.net, last, r.port))
}

func startSpine(t *testing.T, mutate func(*Config)) *spineSensor {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "spinetest"), 0o755)
	os.WriteFile(filepath.Join(dir, "template.xml"), []byte(`<core><template><entity name="unit">T</entity></template><databus/></core>`), 0o644)
	os.WriteFile(filepath.Join(dir, "spinetest", "spinetest.xml"), []byte(`<spinetest enabled="True"/>`), 0o644)
	cfg := DefaultConfig()
	net24 := fmt.Sprintf("127.10.%d", rand.IntN(256))
	cfg.Hosts = []HostRule{{Addresses: []string{net24 + ".0/24"}, Profile: dir}}
	cfg.Privileges.User = ""
	cfg.Metrics.Listen = ""
	cfg.Limits.UDPAmplification = 0 // TestAmplificationBound covers it
	if mutate != nil {
		mutate(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s, cfg := newBound(t, ctx, cfg, func() int { return freePortPair(t) - spinePort }, nil)
	done := make(chan struct{})
	go func() { s.Run(ctx, nil); close(done) }()
	r := &spineSensor{s: s, net: net24, port: spinePort + cfg.Bind.PortOffset}
	var stopped atomic.Bool
	r.stop = func() {
		if stopped.Swap(true) {
			return
		}
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("sensor did not stop within 5 s")
		}
	}
	t.Cleanup(r.stop)
	return r
}

// udpClient is a client socket on 127.0.0.1 with a bounded read helper.
type udpClient struct {
	t *testing.T
	c *net.UDPConn
}

func newUDPClient(t *testing.T) *udpClient {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &udpClient{t: t, c: c}
}

func (u *udpClient) send(to netip.AddrPort, msg string) {
	u.t.Helper()
	if _, err := u.c.WriteToUDPAddrPort([]byte(msg), to); err != nil {
		u.t.Fatal(err)
	}
}

type datagram struct {
	from netip.AddrPort
	text string
}

// recv reads datagrams until want have arrived (then waits quiet longer for extras that
// must not come) or wait passes with nothing new.
func (u *udpClient) recv(want int, quiet time.Duration) []datagram {
	var out []datagram
	buf := make([]byte, 2048)
	for len(out) <= want {
		wait := 3 * time.Second
		if len(out) == want {
			wait = quiet
		}
		u.c.SetReadDeadline(time.Now().Add(wait))
		n, from, err := u.c.ReadFromUDPAddrPort(buf)
		if err != nil {
			break
		}
		out = append(out, datagram{netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), string(buf[:n])})
	}
	return out
}

func (u *udpClient) ask(to netip.AddrPort, msg string) datagram {
	u.t.Helper()
	u.send(to, msg)
	got := u.recv(1, 0)
	if len(got) != 1 {
		u.t.Fatalf("%q to %s: %d replies, want 1", msg, to, len(got))
	}
	if got[0].from != to {
		u.t.Fatalf("reply to %q came from %s, want %s", msg, got[0].from, to)
	}
	return got[0]
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func TestPacketSessionsRepliesAndState(t *testing.T) {
	r := startSpine(t, nil)
	h := r.host(7)
	a, b := newUDPClient(t), newUDPClient(t)

	for _, tc := range []struct {
		n, want int
	}{{1, 1}, {5, 5}, {protocols.MaxRepliesPerRequest + 36, protocols.MaxRepliesPerRequest}} {
		a.send(h, "multi "+strconv.Itoa(tc.n))
		got := a.recv(tc.want, 300*time.Millisecond)
		if len(got) != tc.want {
			t.Fatalf("multi %d: %d replies, want %d", tc.n, len(got), tc.want)
		}
		for i, d := range got {
			if d.from != h || d.text != "part "+strconv.Itoa(i+1) {
				t.Fatalf("multi %d: reply %d is %q from %s", tc.n, i, d.text, d.from)
			}
		}
	}
	if got := testutil.ToFloat64(r.s.m.repliesDropped.WithLabelValues("spinetest", "replies")); got != 36 {
		t.Errorf("replies capped counter %v, want 36", got)
	}

	// Per-flow state: each source's flow counts on its own.
	for i, want := range []string{"1", "2", "3"} {
		if got := a.ask(h, "count").text; got != want {
			t.Fatalf("flow a, request %d: %q, want %q", i, got, want)
		}
	}
	if got := b.ask(h, "count").text; got != "1" {
		t.Fatalf("flow b starts at %q, want 1", got)
	}
	// Another host is another flow.
	if got := a.ask(r.host(8), "count").text; got != "1" {
		t.Fatalf("flow a to another host starts at %q, want 1", got)
	}

	// Unsolicited datagrams are bounded between requests.
	a.send(h, "later "+strconv.Itoa(protocols.MaxUnsolicited+10))
	if got := a.recv(protocols.MaxUnsolicited, 300*time.Millisecond); len(got) != protocols.MaxUnsolicited {
		t.Fatalf("later: %d datagrams, want %d", len(got), protocols.MaxUnsolicited)
	}
}

func TestFlowTableEvictsTheOldestFlow(t *testing.T) {
	var ended []string
	ft := newFlowTable(flowShards, time.Minute, time.Hour, func(s *protocols.Session, why string) {
		ended = append(ended, s.Remote.String()+" "+why)
	})
	s := &Sensor{m: newMetrics(), pcByName: map[string]*protoCounters{}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	h := &host{Host: &protocols.Host{Addr: netip.MustParseAddr("192.0.2.1")}}
	local := netip.MustParseAddrPort("192.0.2.1:9")
	// Fill one shard (one flow per shard at this size) with flows whose keys hash to it.
	var sessions []*protocols.Session
	for port := 1; len(sessions) < 3 && port < 100000; port++ {
		remote := netip.AddrPortFrom(netip.MustParseAddr("198.51.100.1"), uint16(port))
		if ft.shard(flowKey{remote, local, "p"}) != &ft.shards[0] {
			continue
		}
		sess := ft.session(context.Background(), s, nil, "p", h, local, remote)
		sessions = append(sessions, sess)
	}
	if len(sessions) != 3 {
		t.Fatal("could not find three flows of shard 0")
	}
	// perShard is 1: each new flow ended the previous one, oldest first, never sessionless.
	if !sessions[0].Closed() || !sessions[1].Closed() || sessions[2].Closed() {
		t.Fatalf("closed: %v %v %v, want true true false", sessions[0].Closed(), sessions[1].Closed(), sessions[2].Closed())
	}
	if len(ended) != 2 || !strings.HasSuffix(ended[0], "evicted") || !strings.HasPrefix(ended[0], sessions[0].Remote.String()) {
		t.Fatalf("ended %v", ended)
	}
	// Idle flows end at the sweep; busy ones stay.
	if n := ft.sweep(time.Now().Add(30 * time.Second)); n != 1 {
		t.Fatalf("after a sweep within the idle time %d flows, want 1", n)
	}
	if n := ft.sweep(time.Now().Add(2 * time.Minute)); n != 0 || !sessions[2].Closed() {
		t.Fatalf("after the idle time %d flows (closed %v), want 0", n, sessions[2].Closed())
	}
	if !strings.HasSuffix(ended[len(ended)-1], "idle") {
		t.Fatalf("last end reason %q", ended[len(ended)-1])
	}
}

func TestBroadcastFanOut(t *testing.T) {
	for _, tc := range []struct {
		name              string
		maxHosts, maxByte int
		want              int
	}{
		{"every host of the /24", 300, 64 << 10, 254},
		{"host cap", 100, 64 << 10, 100},
		{"byte cap", 300, 1000, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := startSpine(t, func(c *Config) {
				c.Limits.BroadcastMaxHosts = tc.maxHosts
				c.Limits.BroadcastMaxBytes = tc.maxByte
			})
			want := tc.want
			if want < 0 {
				// Answers grow from "iam a.b.c.1" to "iam a.b.c.254"; each is sent while it fits.
				left := tc.maxByte
				for i := 1; i <= 254 && left > 0; i++ {
					if n := len("iam " + r.net + "." + strconv.Itoa(i)); n <= left {
						left -= n
						want++
					}
				}
				want++ // from -1
			}
			c := newUDPClient(t)
			c.send(r.host(255), "who")
			got := c.recv(want, 300*time.Millisecond)
			if len(got) != want {
				t.Fatalf("%d answers, want %d", len(got), want)
			}
			seen := map[netip.Addr]bool{}
			for _, d := range got {
				if d.text != "iam "+d.from.Addr().String() || d.from.Port() != uint16(r.port) {
					t.Fatalf("answer %q from %s", d.text, d.from)
				}
				last := d.from.Addr().As4()[3]
				if last == 0 || last == 255 || seen[d.from.Addr()] {
					t.Fatalf("answer from %s (network, broadcast or twice)", d.from)
				}
				seen[d.from.Addr()] = true
			}
			if tc.want > 0 {
				if got := testutil.ToFloat64(r.s.m.broadcastHosts.WithLabelValues("spinetest")); int(got) != tc.want {
					t.Errorf("broadcast host requests %v, want %d", got, tc.want)
				}
			}
		})
	}
}

func TestBroadcastRatePerSource(t *testing.T) {
	r := startSpine(t, func(c *Config) {
		c.Limits.BroadcastMaxHosts = 3
		c.Limits.BroadcastPerSourcePerMinute = 2
	})
	c := newUDPClient(t)
	// Two fan-outs pass; the third in the same minute is refused. A minute boundary could
	// fall between them, so allow a fourth to pass only if the counter shows a reset.
	total := 0
	for range 3 {
		c.send(r.host(255), "who")
		total += len(c.recv(3, 300*time.Millisecond))
	}
	capped := testutil.ToFloat64(r.s.m.broadcastCapped.WithLabelValues("none", "rate"))
	if !(total == 6 && capped == 1) && !(total == 9 && capped == 0) {
		t.Fatalf("%d answers with %v rate-capped fan-outs", total, capped)
	}
	if capped == 0 {
		t.Log("a minute boundary fell between the fan-outs")
	}
}

func TestMinuteCounter(t *testing.T) {
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	t0 := time.Unix(6000, 0)
	c := newMinuteCounter(2, 3)
	steps := []struct {
		src  netip.Addr
		at   time.Time
		want bool
	}{
		{a, t0, true}, {a, t0, true}, {a, t0, false}, // per source
		{b, t0, true}, {b, t0, false}, // global 3 reached
		{a, t0.Add(time.Minute), true}, // a new minute
	}
	for i, s := range steps {
		if got := c.allow(s.src, s.at); got != s.want {
			t.Fatalf("step %d: allow=%v, want %v", i, got, s.want)
		}
	}
}

func TestBroadcastAddr(t *testing.T) {
	for _, tc := range []struct {
		prefix, want string
	}{
		{"10.1.2.0/24", "10.1.2.255"}, {"10.0.0.0/8", "10.255.255.255"}, {"192.0.2.128/25", "192.0.2.255"},
		{"192.0.2.4/30", "192.0.2.7"}, {"192.0.2.4/31", ""}, {"192.0.2.4/32", ""}, {"0.0.0.0/0", ""}, {"2001:db8::/64", ""},
	} {
		b, ok := broadcastAddr(netip.MustParsePrefix(tc.prefix))
		if (tc.want == "") == ok || (ok && b.String() != tc.want) {
			t.Errorf("%s: %v %v, want %q", tc.prefix, b, ok, tc.want)
		}
	}
}

func TestEphemeralEndpoints(t *testing.T) {
	net.Listen("tcp4", "127.0.0.1:0") // let the runtime open its poller before the baseline
	before := openFDs(t)
	r := startSpine(t, func(c *Config) {
		c.Limits.IdleTimeout = Duration{400 * time.Millisecond}
		c.Bind.EphemeralPorts = PortRange{Lo: 40000, Hi: 60000}
	})
	h := r.host(21)
	c := newUDPClient(t)
	active := func(tr string) float64 { return testutil.ToFloat64(r.s.m.endpointsActive.WithLabelValues(tr)) }
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !cond(); {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 5 s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	port := func(d datagram) uint16 {
		p, err := strconv.Atoi(strings.TrimPrefix(d.text, "port "))
		if err != nil || p < 40000 || p > 60000 {
			t.Fatalf("endpoint reply %q", d.text)
		}
		return uint16(p)
	}

	// UDP: an endpoint on the host's own address answers from it; it closes when idle.
	ep := netip.AddrPortFrom(h.Addr(), port(c.ask(h, "udp-ep")))
	if got := c.ask(ep, "x").text; got != "ep x" {
		t.Fatalf("ephemeral UDP echo %q", got)
	}
	if active("udp") != 1 {
		t.Fatalf("active UDP endpoints %v, want 1", active("udp"))
	}
	waitFor("UDP endpoint idle close", func() bool { return active("udp") == 0 })

	// TCP: the listener takes one connection from the session's source, on the host's address.
	ep = netip.AddrPortFrom(h.Addr(), port(c.ask(h, "tcp-ep")))
	conn, err := net.DialTimeout("tcp4", ep.String(), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(3 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || line != "hello from "+h.Addr().String()+"\n" {
		t.Fatalf("ephemeral TCP greeting %q, %v", line, err)
	}
	if l := conn.LocalAddr().(*net.TCPAddr).AddrPort(); l.Addr().String() != "127.0.0.1" {
		t.Fatalf("client address %s", l)
	}
	conn.Close()
	waitFor("TCP endpoint close after its connection", func() bool { return active("tcp") == 0 })

	// A TCP endpoint nobody connects to closes at the idle timeout.
	c.ask(h, "tcp-ep")
	waitFor("TCP endpoint idle close", func() bool { return active("tcp") == 0 })

	// Endpoints open at shutdown close with the sensor, and no descriptor leaks.
	udpPort := port(c.ask(h, "udp-ep"))
	port(c.ask(r.host(22), "tcp-ep"))
	if active("udp") != 1 || active("tcp") != 1 {
		t.Fatalf("active endpoints udp %v tcp %v, want 1 and 1", active("udp"), active("tcp"))
	}
	r.stop()
	if active("udp") != 0 || active("tcp") != 0 {
		t.Fatalf("after shutdown: active endpoints udp %v tcp %v", active("udp"), active("tcp"))
	}
	if pc, err := net.ListenPacket("udp4", netip.AddrPortFrom(h.Addr(), udpPort).String()); err != nil {
		t.Fatalf("endpoint port still bound after shutdown: %v", err)
	} else {
		pc.Close()
	}
	c.c.Close()
	waitFor("descriptors back to the baseline", func() bool { return openFDs(t) <= before })
}

func TestEphemeralEndpointCaps(t *testing.T) {
	r := startSpine(t, func(c *Config) { c.Limits.MaxConnsPerHost = 2 })
	h := r.host(30)
	c := newUDPClient(t)
	for i, want := range []string{"port ", "port ", "error "} {
		if got := c.ask(h, "udp-ep").text; !strings.HasPrefix(got, want) {
			t.Fatalf("endpoint %d: %q, want %q…", i, got, want)
		}
	}
	if got := testutil.ToFloat64(r.s.m.rejected.WithLabelValues("spinetest", "host_cap")); got != 1 {
		t.Fatalf("host_cap rejections %v, want 1", got)
	}
	// Another host has its own slots.
	if got := c.ask(r.host(31), "udp-ep").text; !strings.HasPrefix(got, "port ") {
		t.Fatalf("another host: %q", got)
	}
}

// TestEndpointsOfALongFlow: a flow that opens and closes endpoints all its life (a TFTP
// client fetching file after file from one port) is not held to a bound on the endpoints it
// ever opened: a closed endpoint gives its session close hook back. Before, the 65th
// endpoint of one flow was refused ("too many endpoints for one session").
func TestEndpointsOfALongFlow(t *testing.T) {
	r := startSpine(t, nil)
	h := r.host(32)
	c := newUDPClient(t)
	for i := range 200 {
		if got := c.ask(h, "udp-ep-closed").text; !strings.HasPrefix(got, "port ") {
			t.Fatalf("endpoint %d of one flow: %q", i+1, got)
		}
	}
}

func TestAmplificationBound(t *testing.T) {
	r := startSpine(t, func(c *Config) {
		c.Limits.UDPAmplification = 10
		c.Limits.UDPAmplificationPer = map[string]float64{"spinetest": 5}
	})
	h := r.host(40)
	c := newUDPClient(t)
	// "multi 60" is 8 bytes: unverified, its answers may hold 5 × 8 = 40 bytes, so the first
	// six (part 1 … part 6, 6 bytes each) and no more.
	c.send(h, "multi 60")
	if got := c.recv(6, 300*time.Millisecond); len(got) != 6 {
		t.Fatalf("unverified: %d answers, want 6", len(got))
	}
	if got := testutil.ToFloat64(r.s.m.repliesDropped.WithLabelValues("spinetest", "amplification")); got != 54 {
		t.Fatalf("amplification drops %v, want 54", got)
	}
	// Unsolicited datagrams draw on the same budget: 5 × 8 bytes of "later" (5 bytes) is 8.
	c.send(h, "later 20")
	if got := c.recv(8, 300*time.Millisecond); len(got) != 8 {
		t.Fatalf("unverified unsolicited: %d datagrams, want 8", len(got))
	}
	// Once the source has proved it receives answers, the bound is gone.
	if got := c.ask(h, "verify").text; got != "verified" {
		t.Fatalf("verify: %q", got)
	}
	c.send(h, "multi 60")
	if got := c.recv(60, 300*time.Millisecond); len(got) != 60 {
		t.Fatalf("verified: %d answers, want 60", len(got))
	}
}

func TestUDPByteBudgets(t *testing.T) {
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	t0 := time.Unix(6000, 0)
	bb := newByteBudget(100, 150)
	for i, s := range []struct {
		dst  netip.Addr
		port uint16
		n    int
		at   time.Time
		want string
	}{
		{a, 161, 60, t0, ""}, {a, 161, 40, t0, ""}, {a, 161, 1, t0, "source_bytes"},
		{b, 161, 50, t0, ""}, {b, 161, 1, t0, "port_bytes"}, {b, 162, 40, t0, ""},
		// Refilled at 100 bytes a minute, a has 50 bytes 30 s later; port 161 (150 a
		// minute, empty at t0) has 75, then 25 after a's 50.
		{a, 161, 51, t0.Add(30 * time.Second), "source_bytes"},
		{a, 161, 50, t0.Add(30 * time.Second), ""},
		{b, 162, 36, t0.Add(30 * time.Second), ""}, // port 162 had 110 left, now full at 150
		{b, 161, 26, t0.Add(30 * time.Second), "port_bytes"},
		{b, 161, 24, t0.Add(30 * time.Second), ""}, // b: 10 left at t0, +50, -36
		// A minute after a bucket ran dry it is full again, and never fuller.
		{a, 161, 100, t0.Add(90 * time.Second), ""},
		{a, 161, 1, t0.Add(90 * time.Second), "source_bytes"},
		{b, 163, 151, t0.Add(time.Hour), "port_bytes"},
	} {
		if got := bb.take(s.dst, s.port, s.n, s.at); got != s.want {
			t.Fatalf("step %d: %q, want %q", i, got, s.want)
		}
	}
}
