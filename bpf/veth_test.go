package bpf

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols/ratelimit"
)

// responder is a small UDP service in the server namespace: it answers every datagram
// it receives and counts them per port and source.
type responder struct {
	conns []*net.UDPConn
	wg    sync.WaitGroup
	mu    sync.Mutex
	got   map[string]int // "port/source" -> datagrams received
}

func startResponder(t testing.TB, n *testNet, ports ...int) *responder {
	t.Helper()
	r := &responder{got: map[string]int{}}
	n.in(t, n.server, func() error {
		for _, p := range ports {
			c, err := net.ListenUDP("udp4", &net.UDPAddr{Port: p})
			if err != nil {
				return err
			}
			r.conns = append(r.conns, c)
		}
		return nil
	})
	for i, c := range r.conns {
		r.wg.Add(1)
		go func(c *net.UDPConn, port int) {
			defer r.wg.Done()
			buf := make([]byte, 2048)
			for {
				n, from, err := c.ReadFromUDPAddrPort(buf)
				if err != nil {
					return
				}
				r.mu.Lock()
				r.got[fmt.Sprintf("%d/%s", port, from.Addr())]++
				r.mu.Unlock()
				_, _ = c.WriteToUDPAddrPort(append([]byte("re:"), buf[:n]...), from)
			}
		}(c, ports[i])
	}
	t.Cleanup(func() {
		for _, c := range r.conns {
			c.Close()
		}
		r.wg.Wait()
	})
	return r
}

func (r *responder) count(port int, src string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got[fmt.Sprintf("%d/%s", port, src)]
}

func (r *responder) total(port int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	sum := 0
	for k, v := range r.got {
		if strings.HasPrefix(k, fmt.Sprintf("%d/", port)) {
			sum += v
		}
	}
	return sum
}

// client is a UDP socket in the client namespace bound to one source address.
func client(t testing.TB, n *testNet, src string) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	n.in(t, n.client, func() (err error) {
		c, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(src)})
		return err
	})
	t.Cleanup(func() { c.Close() })
	return c
}

// send sends count datagrams to the server's port.
func send(t testing.TB, c *net.UDPConn, port, count int) {
	t.Helper()
	dst := &net.UDPAddr{IP: net.ParseIP(serverIP), Port: port}
	for i := 0; i < count; i++ {
		if _, err := c.WriteToUDP([]byte(fmt.Sprintf("req %d", i)), dst); err != nil {
			t.Fatalf("send: %v", err)
		}
	}
}

// answers reads replies until none arrives for quiet.
func answers(t testing.TB, c *net.UDPConn, quiet time.Duration) int {
	t.Helper()
	buf := make([]byte, 2048)
	got := 0
	for {
		_ = c.SetReadDeadline(time.Now().Add(quiet))
		if _, _, err := c.ReadFromUDP(buf); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return got
			}
			t.Fatalf("read: %v", err)
		}
		got++
	}
}

// waitResponder waits until the responder has received want datagrams on port.
func waitResponder(t testing.TB, r *responder, port, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for r.total(port) < want && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
}

// portCounts sums the counters of one port by reason.
func portCounts(t testing.TB, l *Limiter, port uint16) map[string]uint64 {
	t.Helper()
	cs, err := l.Counters()
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]uint64{}
	for _, c := range cs {
		if c.Port == port && c.Packets > 0 {
			m[c.Reason] = c.Packets
		}
	}
	return m
}

func sum(m map[string]uint64) uint64 {
	var s uint64
	for _, v := range m {
		s += v
	}
	return s
}

// waitCounted waits until the program has counted total packets for the port.
func waitCounted(t testing.TB, l *Limiter, port uint16, total uint64) map[string]uint64 {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		m := portCounts(t, l, port)
		if sum(m) >= total || time.Now().After(deadline) {
			if sum(m) != total {
				t.Fatalf("port %d: counted %d packets (%v), sent %d", port, sum(m), m, total)
			}
			return m
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestVeth sends real traffic across a veth pair between two namespaces into the
// limiter attached to the server side, with a UDP responder behind it.
func TestVeth(t *testing.T) {
	const nSources = 30
	n := newTestNet(t, nSources)
	l := loadTest(t,
		Rule{Port: 161, PerSource: 60, Burst: 5},
		Rule{Port: 47808, PerSource: 600, Burst: 10, Global: 60, GlobalBurst: 40, Reserve: 10},
		Rule{Port: 623, PerSource: 600, Burst: 10, Global: 1200, GlobalBurst: 20, Reserve: 5},
	)
	var mode string
	n.in(t, n.server, func() (err error) { mode, err = l.Attach(n.serverIf); return err })
	if mode != "native" {
		t.Errorf("attach mode %q, want native on veth", mode)
	}
	resp := startResponder(t, n, 161, 47808, 623, 9999)

	t.Run("per-source", func(t *testing.T) {
		l.setClock(t, t0)
		c := client(t, n, sourceIP(0))
		send(t, c, 161, 20)
		waitCounted(t, l, 161, 20)
		if got := answers(t, c, 300*time.Millisecond); got != 5 {
			t.Errorf("answered %d of 20, want the burst of 5", got)
		}
		l.setClock(t, t0+3e9) // 60/min: three tokens
		send(t, c, 161, 10)
		m := waitCounted(t, l, 161, 30)
		if got := answers(t, c, 300*time.Millisecond); got != 3 {
			t.Errorf("after 3 s: answered %d of 10, want 3", got)
		}
		if m["ok"] != 8 || m["per_source"] != 22 || resp.count(161, sourceIP(0)) != 8 {
			t.Errorf("counters %v, responder got %d; want 8 passed, 22 dropped", m, resp.count(161, sourceIP(0)))
		}
		for {
			ev := nextEvent(t, l)
			if ev.Kind == "start" && ev.Scope == "source" && ev.Port == 161 && ev.Source == netip.MustParseAddr(sourceIP(0)) {
				break
			}
		}
	})

	t.Run("global", func(t *testing.T) {
		l.setClock(t, t0)
		// 30 sources send 3 each: the first 10 take the global bucket (40) down to
		// the reserve (10); the other 20 are unknown and get nothing.
		conns := make([]*net.UDPConn, nSources)
		for i := range conns {
			conns[i] = client(t, n, sourceIP(i))
			send(t, conns[i], 47808, 3)
		}
		waitCounted(t, l, 47808, 3*nSources)
		waitResponder(t, resp, 47808, 30)
		total := 0
		for i, c := range conns {
			got := answers(t, c, 30*time.Millisecond)
			want := 0
			if i < 10 {
				want = 3
			}
			if got != want {
				t.Errorf("source %d: %d answers, want %d", i, got, want)
			}
			total += got
		}
		// A known source still gets the reserve: 7 per-source tokens left, 10 global.
		send(t, conns[0], 47808, 15)
		m := waitCounted(t, l, 47808, 3*nSources+15)
		if got := answers(t, conns[0], 300*time.Millisecond); got != 7 {
			t.Errorf("known source: %d answers, want 7", got)
		}
		want := map[string]uint64{"ok": 37, "global_new": 60, "per_source": 8}
		if fmt.Sprint(m) != fmt.Sprint(want) || resp.total(47808) != 37 {
			t.Errorf("counters %v, responder %d; want %v", m, resp.total(47808), want)
		}
	})

	t.Run("other traffic untouched", func(t *testing.T) {
		c := client(t, n, sourceIP(1))
		send(t, c, 9999, 50)
		if got := answers(t, c, 300*time.Millisecond); got != 50 {
			t.Errorf("unlimited port: %d of 50 answered", got)
		}
		if m := portCounts(t, l, 9999); len(m) != 0 {
			t.Errorf("unlimited port counted: %v", m)
		}
	})

	t.Run("legitimate source during spoofed flood", func(t *testing.T) {
		l.setClock(t, 0) // real time from here on
		legit := client(t, n, sourceIP(2))
		start := time.Now()
		send(t, legit, 623, 2) // answered twice before the flood: known
		if got := answers(t, legit, 500*time.Millisecond); got != 2 {
			t.Fatalf("%d of the first 2 requests answered", got)
		}
		var b *blaster
		n.in(t, n.client, func() (err error) {
			b, err = newBlaster(n.clientIf, n.clientMAC, n.serverMAC, net.ParseIP(serverIP), 623, 1<<20)
			return err
		})
		defer b.Close()
		var sent int
		var blastErr error
		done := make(chan struct{})
		go func() {
			defer close(done)
			sent, blastErr = b.blast(600_000, 2*time.Second, 200_000)
		}()
		answered, asked := 2, 2
		time.Sleep(100 * time.Millisecond)
		for i := 0; i < 8; i++ { // 5 requests a second, under both limits
			send(t, legit, 623, 1)
			asked++
			answered += answers(t, legit, 200*time.Millisecond)
		}
		<-done
		elapsed := time.Since(start)
		if blastErr != nil {
			t.Fatal(blastErr)
		}
		time.Sleep(100 * time.Millisecond)
		answered += answers(t, legit, 100*time.Millisecond)
		m := portCounts(t, l, 623)
		t.Logf("flood: %d spoofed frames in %v, legit %d/%d answered; counters %v; responder %d", sent, elapsed, answered, asked, m, resp.total(623))
		if answered != asked {
			t.Errorf("legitimate source: %d of %d answered during the flood", answered, asked)
		}
		if resp.count(623, sourceIP(2)) != asked {
			t.Errorf("responder got %d from the legitimate source, want %d", resp.count(623, sourceIP(2)), asked)
		}
		// Everything that passed fits the global bucket: 20/s plus one burst of 20.
		passed := m["ok"] + m["unadmitted"]
		limit := uint64(20*elapsed.Seconds()) + 20
		if passed > limit || m["ok"] < uint64(asked) {
			t.Errorf("passed %d (%d of them ok), want between %d and %d (20/s + burst over %v)", passed, m["ok"], asked, limit, elapsed)
		}
		if int(passed) != resp.total(623) {
			t.Errorf("responder answered %d, the program passed %d", resp.total(623), passed)
		}
		// While the global bucket limits, one in AdmitEvery spoofed sources that pass is
		// inserted; the rest pass untracked. Before the first drop (the burst) all are.
		spoofed, admitted := passed-uint64(asked), m["ok"]-uint64(asked)
		if m["unadmitted"] == 0 || admitted > 20+spoofed/ratelimit.AdmitEvery+1 {
			t.Errorf("%d spoofed sources passed, %d of them admitted to the table: want one in %d after the burst of 20", spoofed, admitted, ratelimit.AdmitEvery)
		}
		if m["global_new"] < uint64(sent)/2 {
			t.Errorf("only %d of %d spoofed frames dropped as new sources", m["global_new"], sent)
		}
	})

	// Close detaches: the interface has no XDP program afterwards.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	out, err := runIP("-n", n.server, "link", "show", n.serverIf)
	if err != nil || strings.Contains(out, "xdp") {
		t.Errorf("after Close: %v\n%s", err, out)
	}
}
