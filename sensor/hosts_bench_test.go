//go:build bench

// The eviction harness materialises a million hosts; `make bench` runs it (-tags bench).

package sensor

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestEvictionStallAt1MHosts fills the registry to max_hosts = 1,048,576, then keeps
// creating new hosts (each one evicts another) and runs an idle sweep over all of them,
// while a Modbus/TCP client polls a host of the same sensor over loopback. It reports the
// client's request latencies before and during eviction; it asserts nothing about time
// (the machine is shared), only that eviction happened and the client was served.
func TestEvictionStallAt1MHosts(t *testing.T) {
	const maxHosts = 1 << 20
	const evictRate = 100_000 // new hosts a second while the clients poll
	cfg := DefaultConfig()
	cfg.Hosts = []HostRule{{Addresses: []string{"10.0.0.0/8", "127.40.3.1"}, Profile: "default"}}
	cfg.Bind.Address = "127.40.3.1"
	cfg.Bind.PortOffset = 20000 + rand.IntN(30000)
	cfg.Limits.MaxHosts = maxHosts
	cfg.Metrics.Listen = ""
	cfg.State.Dir = t.TempDir()
	s, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.Bind(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, nil) }()
	defer func() {
		cancel()
		<-done
	}()

	// Fill to the cap on every core.
	fillStart := time.Now()
	// fill creates hosts from..to-1 on workers goroutines, at most perSecond hosts a second
	// in all (0: as fast as they can).
	fill := func(from, to, workers, perSecond int) {
		var wg sync.WaitGroup
		t0 := time.Now()
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := from + w; i < to; i += workers {
					if i%256 == 0 {
						// A packet path blocks on its socket between hosts; this loop sleeps
						// now and then instead. Without it, two such loops on two cores would
						// keep the scheduler from polling the network until sysmon does (up
						// to 10 ms): the test would measure that, not the registry.
						wait := time.Microsecond
						if perSecond > 0 {
							wait = max(wait, time.Until(t0.Add(time.Duration(i-from)*time.Second/time.Duration(perSecond))))
						}
						time.Sleep(wait)
					}
					if _, ok := s.hosts.get(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})); !ok {
						t.Error("no host")
						return
					}
				}
			}()
		}
		wg.Wait()
	}
	fill(1, maxHosts+1, runtime.GOMAXPROCS(0), 0) // 10.0.0.1 up: only 10/8's own network and broadcast are not hosts
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t.Logf("filled %d hosts in %v; heap %.0f MiB (%.0f bytes per host)", s.hosts.count(), time.Since(fillStart).Round(time.Millisecond),
		float64(ms.HeapAlloc)/(1<<20), float64(ms.HeapAlloc)/float64(s.hosts.count()))
	if s.hosts.evicted.Load() != 0 {
		t.Fatalf("%d hosts evicted below the cap", s.hosts.evicted.Load())
	}

	addr := fmt.Sprintf("127.40.3.1:%d", 502+cfg.Bind.PortOffset)
	// client polls until stop: over one connection, or (reconnect) over a new connection
	// per request as mbpoll does, which goes through the registry's get each time.
	client := func(addr string, reconnect bool, stop <-chan struct{}, out *[]time.Duration) {
		req := []byte{0, 0, 0, 0, 0, 6, 1, 3, 0, 0, 0, 4}
		resp := make([]byte, 260)
		var c net.Conn
		defer func() {
			if c != nil {
				c.Close()
			}
		}()
		for i := 0; len(*out) < 1<<20; i++ {
			select {
			case <-stop:
				return
			default:
			}
			t0 := time.Now()
			if c == nil {
				var err error
				if c, err = net.DialTimeout("tcp", addr, 5*time.Second); err != nil {
					t.Error(err)
					return
				}
			}
			binary.BigEndian.PutUint16(req, uint16(i))
			c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Write(req); err != nil {
				t.Error(err)
				return
			}
			if _, err := io.ReadFull(c, resp[:7]); err != nil {
				t.Error(err)
				return
			}
			n := int(binary.BigEndian.Uint16(resp[4:]))
			if n < 2 || n > 254 {
				t.Errorf("bad Modbus length %d", n)
				return
			}
			if _, err := io.ReadFull(c, resp[7:7+n-1]); err != nil {
				t.Error(err)
				return
			}
			*out = append(*out, time.Since(t0))
			if reconnect {
				c.(*net.TCPConn).SetLinger(0)
				c.Close()
				c = nil
			}
		}
	}
	// A control: a plain echo server in the same process, outside the sensor, polled the
	// same way. Its latencies are the machine's noise floor (a shared machine, the Go
	// scheduler, the garbage collector), which no registry design removes.
	echoLn, err := net.Listen("tcp", "127.40.3.2:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echoLn.Close()
	go func() {
		for {
			c, err := echoLn.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 12)
				for {
					if _, err := io.ReadFull(c, buf); err != nil {
						return
					}
					// a Modbus-sized answer: MBAP saying 11 bytes follow, then 11 bytes
					if _, err := c.Write([]byte{buf[0], buf[1], 0, 0, 0, 11, 1, 3, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}[:17]); err != nil {
						return
					}
				}
			}()
		}
	}()
	// phase runs the clients while work runs.
	phase := func(work func()) (kept, fresh, control []time.Duration) {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(3)
		go func() { defer wg.Done(); client(addr, false, stop, &kept) }()
		go func() { defer wg.Done(); client(addr, true, stop, &fresh) }()
		go func() { defer wg.Done(); client(echoLn.Addr().String(), false, stop, &control) }()
		work()
		close(stop)
		wg.Wait()
		return kept, fresh, control
	}
	report := func(name string, lat []time.Duration) {
		if len(lat) == 0 {
			t.Fatalf("%s: no Modbus answer", name)
		}
		slices.Sort(lat)
		q := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
		var over int
		for _, l := range lat {
			if l > 5*time.Millisecond {
				over++
			}
		}
		t.Logf("%s: %d requests, p50 %v, p99 %v, p99.9 %v, max %v, %d over 5 ms", name, len(lat),
			q(0.50), q(0.99), q(0.999), lat[len(lat)-1], over)
	}
	kept, fresh, control := phase(func() { time.Sleep(2 * time.Second) })
	report("Modbus latency, no eviction, one connection", kept)
	report("Modbus latency, no eviction, a connection per request", fresh)
	report("control echo latency, no eviction", control)

	var evictStart time.Time
	var created int64
	var sweepTook time.Duration
	kept, fresh, control = phase(func() {
		evictStart = time.Now()
		before := s.hosts.evicted.Load()
		var sweeping sync.WaitGroup
		sweeping.Add(1)
		go func() { // an idle sweep over every host, concurrent with the evictions
			defer sweeping.Done()
			t0 := time.Now()
			s.hosts.sweep(context.Background())
			sweepTook = time.Since(t0)
		}()
		// Half a million new hosts, each evicting one, at 100,000 a second: a fast scan.
		fill(1<<21, 1<<21+1<<19, 1, evictRate)
		sweeping.Wait()
		created = s.hosts.evicted.Load() - before
	})
	t.Logf("eviction: %d hosts evicted (each by a new one, %d a second asked) in %v; idle sweep over %d hosts took %v",
		created, evictRate, time.Since(evictStart).Round(time.Millisecond), maxHosts, sweepTook.Round(time.Millisecond))
	report("Modbus latency during eviction, one connection", kept)
	report("Modbus latency during eviction, a connection per request", fresh)
	report("control echo latency during eviction", control)
	if created < 1<<19 || s.hosts.count() > maxHosts {
		t.Fatalf("evicted %d, holding %d", created, s.hosts.count())
	}
}

func BenchmarkHostGet(b *testing.B) {
	dev := defaultDev(b)
	rules := []rule{{prefix: netip.MustParsePrefix("10.0.0.0/8"), dev: dev}}
	b.Run("hit", func(b *testing.B) {
		r := newHostRegistry(rules, 1, 1<<16, time.Hour)
		for i := range 1 << 16 {
			r.get(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}))
		}
		var n atomic.Uint32
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			i := n.Add(1 << 12)
			for pb.Next() {
				i++
				r.get(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}))
			}
		})
	})
	b.Run("miss-evicting", func(b *testing.B) {
		r := newHostRegistry(rules, 1, 1<<12, time.Hour)
		var n atomic.Uint32
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := n.Add(1)
				r.get(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}))
			}
		})
	})
}
