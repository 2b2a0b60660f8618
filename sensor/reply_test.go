package sensor

import (
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/internal/racedetector"
)

// TestLateReplyKeepsItsRequest: a service that is not a prompt replier (spinetest) answers
// after ServePacket returned, and the answer goes to its own request's source from its own
// host, while the reader serves other requests meanwhile.
func TestLateReplyKeepsItsRequest(t *testing.T) {
	r := startSpine(t, nil)
	h, other := r.host(7), r.host(8)
	a, b := newUDPClient(t), newUDPClient(t)
	a.send(h, "late 200")
	for i := range 5 { // served by the reader while a's answer waits
		if got := b.ask(other, "count").text; got != fmt.Sprint(i+1) {
			t.Fatalf("b's request %d: %q", i, got)
		}
	}
	got := a.recv(1, 300*time.Millisecond)
	if len(got) != 1 || got[0].text != "late" || got[0].from != h {
		t.Fatalf("a's late answer: %+v, want one \"late\" from %s", got, h)
	}
	if extra := b.recv(0, 100*time.Millisecond); len(extra) != 0 {
		t.Fatalf("b got %+v besides its answers", extra)
	}
}

// TestPromptRepliesPerRequest: a prompt replier (echotest) gets the reader's reused reply;
// requests from two sources to two hosts, sent before any is read so that batches mix
// them, are each answered once, to their own source, from their own host.
func TestPromptRepliesPerRequest(t *testing.T) {
	r := startSensor(t, nil)
	hosts := []netip.AddrPort{netip.MustParseAddrPort(r.addr(t, 11)), netip.MustParseAddrPort(r.addr(t, 140))}
	type client struct {
		c    *net.UDPConn
		name string
	}
	var clients []client
	for _, name := range []string{"a", "b"} {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients = append(clients, client{c, name})
	}
	const perHost = 20
	for i := range perHost {
		for _, cl := range clients {
			for _, h := range hosts {
				msg := fmt.Sprintf("%s-%d-%s", cl.name, i, h.Addr())
				if _, err := cl.c.WriteToUDPAddrPort([]byte(msg), h); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	buf := make([]byte, 512)
	for _, cl := range clients {
		seen := map[string]bool{}
		cl.c.SetReadDeadline(time.Now().Add(3 * time.Second))
		for len(seen) < perHost*len(hosts) {
			n, from, err := cl.c.ReadFromUDPAddrPort(buf)
			if err != nil {
				t.Fatalf("client %s: %d of %d answers: %v", cl.name, len(seen), perHost*len(hosts), err)
			}
			f := strings.Fields(string(buf[:n]))
			if len(f) != 4 {
				t.Fatalf("client %s: answer %q", cl.name, buf[:n])
			}
			msg := f[3]
			if !strings.HasPrefix(msg, cl.name+"-") || !strings.HasSuffix(msg, "-"+from.Addr().Unmap().String()) || f[1] != from.Addr().Unmap().String() {
				t.Fatalf("client %s got %q from %s", cl.name, buf[:n], from)
			}
			if seen[msg] {
				t.Fatalf("client %s: %q answered twice", cl.name, msg)
			}
			seen[msg] = true
		}
	}
}

// TestDatagramPathNoAllocs: past its first requests a flow's datagram to a prompt replier
// that allocates nothing (echotest's "nop") costs the sensor no allocation: the reader's
// batch, flow lookup, session, budgets, metrics and reply are all reused. Measured from the
// process's allocation count around round trips by a client that allocates nothing itself.
func TestDatagramPathNoAllocs(t *testing.T) {
	if racedetector.Enabled {
		t.Skip("allocation counts of pooled paths mean nothing under the race detector (make test runs this test again without it)")
	}
	r := startSensor(t, nil)
	c, err := net.DialUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(r.addr(t, 21))))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req, buf := []byte("nop"), make([]byte, 64)
	if err := c.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	trip := func() {
		if _, err := c.Write(req); err != nil {
			t.Fatal(err)
		}
		if n, err := c.Read(buf); err != nil || string(buf[:n]) != "nop" {
			t.Fatalf("answer %q, %v", buf[:n], err)
		}
	}
	for range 200 { // past the events volume control keeps, pools warm
		trip()
	}
	const trips = 2000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range trips {
		trip()
	}
	runtime.ReadMemStats(&after)
	// The sensor's timers and the Go runtime allocate now and then; a datagram path that
	// allocated would show at least one per trip.
	if per := float64(after.Mallocs-before.Mallocs) / trips; per >= 0.1 {
		t.Fatalf("%.2f allocations per datagram, want 0", per)
	}
}
