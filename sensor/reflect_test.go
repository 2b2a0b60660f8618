package sensor

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"

	_ "github.com/icsnare/icsnare/protocols/snmp"
)

// TestNoReflectorForSpoofedGetBulk sends GETBULK from 300 source addresses (loopback
// addresses stand in for spoofed victims: every answer lands where the test counts it):
// each answer stays within the amplification bound of its request, each source gets at
// most its byte budget, and the port sends at most its budget in all.
func TestNoReflectorForSpoofedGetBulk(t *testing.T) {
	const (
		sources    = 300
		perSource  = 4
		amp        = 10
		srcBudget  = 2 << 10
		portBudget = 48 << 10
	)
	cfg := DefaultConfig()
	net24 := fmt.Sprintf("127.11.%d", rand.IntN(256))
	cfg.Hosts = []HostRule{{Addresses: []string{net24 + ".0/24"}, Profile: "default"}}
	cfg.Privileges.User, cfg.Metrics.Listen = "", ""
	cfg.Limits.UDPAmplification = amp
	cfg.Limits.UDPBytesPerSource = srcBudget
	cfg.Limits.UDPBytesPerPort = portBudget
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, cfg := newBound(t, ctx, cfg, func() int { return freePortPair(t) - 161 }, nil)
	done := make(chan struct{})
	go func() { s.Run(ctx, nil); close(done) }()
	defer func() { cancel(); <-done }()

	pkt := gosnmp.SnmpPacket{Version: gosnmp.Version2c, Community: "public", PDUType: gosnmp.GetBulkRequest,
		MaxRepetitions: 50, Variables: []gosnmp.SnmpPDU{{Name: ".1.3.6.1.2.1", Type: gosnmp.Null}}, RequestID: 7}
	req, err := pkt.MarshalMsg()
	if err != nil {
		t.Fatal(err)
	}
	dst := netip.AddrPortFrom(netip.MustParseAddr(net24+".5"), uint16(161+cfg.Bind.PortOffset))
	var total, maxAnswer atomic.Int64
	var overSource atomic.Int32
	var wg sync.WaitGroup
	start := time.Now()
	for i := range sources {
		src := netip.AddrFrom4([4]byte{127, 12, byte(i / 250), byte(i%250 + 1)})
		c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)))
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			for range perSource {
				c.WriteToUDPAddrPort(req, dst)
			}
			var got int64
			buf := make([]byte, 4096)
			for {
				c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
				n, err := c.Read(buf)
				if err != nil {
					break
				}
				got += int64(n)
				total.Add(int64(n))
				for m := maxAnswer.Load(); int64(n) > m && !maxAnswer.CompareAndSwap(m, int64(n)); m = maxAnswer.Load() {
				}
			}
			// The budgets are token buckets refilled at their per-minute rate: over the
			// test's run a source may get its budget plus the refill.
			if float64(got) > srcBudget*(1+time.Since(start).Minutes()) {
				overSource.Add(1)
			}
		}()
	}
	wg.Wait()
	if m := maxAnswer.Load(); m > amp*int64(len(req)) || m == 0 {
		t.Fatalf("largest answer %d bytes to a %d-byte request (bound %d×)", m, len(req), amp)
	}
	if n := overSource.Load(); n > 0 {
		t.Fatalf("%d sources got more than their %d-byte budget", n, srcBudget)
	}
	elapsed := time.Since(start)
	if tot := total.Load(); float64(tot) > portBudget*(1+elapsed.Minutes()) {
		t.Fatalf("%d answer bytes from the port in %v, budget %d a minute (a bucket of a minute's worth)", tot, elapsed, portBudget)
	}
	t.Logf("request %d bytes, largest answer %d, %d answer bytes in all for %d requests", len(req), maxAnswer.Load(),
		total.Load(), sources*perSource)
}
