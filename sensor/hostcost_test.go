package sensor

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/icsnare/icsnare/protocols"
	_ "github.com/icsnare/icsnare/protocols/all"
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// TestHostCostWithinEstimate touches hosts of the embedded default profile through every
// protocol it serves (Modbus reads of each table, an S7 SZL read, an SNMP GET, an HTTP
// page) and checks that the live heap per host stays within what HostCost (the figure
// max_hosts derives from) allows for it: half, the rest being the collector's headroom.
func TestHostCostWithinEstimate(t *testing.T) {
	if testing.Short() {
		t.Skip("touches 500 hosts through four protocols")
	}
	// The personas' latency model would only make the test slow; memory is what it measures.
	protocols.SetTiming(false)
	defer protocols.SetTiming(true)
	cfg := DefaultConfig()
	net23 := fmt.Sprintf("127.52.%d", 2*rand.IntN(128))
	cfg.Hosts = []HostRule{{Addresses: []string{net23 + ".0/23"}, Profile: "default"}}
	cfg.Privileges.User = ""
	cfg.Metrics.Listen = ""
	cfg.Events.File = ""
	cfg.Limits.UDPAmplification = 0
	cfg.Limits.MaxConnsPerSource, cfg.Limits.MaxConnsPerSourcePrefix = 4096, 4096
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var s *Sensor
	for range 8 {
		cfg.Bind.PortOffset = protocoltest.FreeOffset(t, 80, 102, 161, 502)
		var err error
		if s, err = New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
			t.Fatal(err)
		}
		if err = s.Bind(ctx); err == nil {
			break
		}
		s = nil
	}
	if s == nil {
		t.Fatal("no free port offset")
	}
	done := make(chan struct{})
	go func() { s.Run(ctx, nil); close(done) }()
	defer func() { cancel(); <-done }()
	off := cfg.Bind.PortOffset

	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	touch := func(ip string) {
		t.Helper()
		touchModbus(t, fmt.Sprintf("%s:%d", ip, 502+off))
		if err := protocoltest.S7ReadSZL(fmt.Sprintf("%s:%d", ip, 102+off)); err != nil {
			t.Fatal(err)
		}
		g := &gosnmp.GoSNMP{Target: ip, Port: uint16(161 + off), Community: "public", Version: gosnmp.Version2c,
			Timeout: 3 * time.Second, Retries: 2}
		if err := g.Connect(); err != nil {
			t.Fatal(err)
		}
		if _, err := g.Get([]string{"1.3.6.1.2.1.1.1.0", "1.3.6.1.2.1.1.3.0", "1.3.6.1.2.1.2.2.1.6.1"}); err != nil {
			t.Fatalf("snmp %s: %v", ip, err)
		}
		g.Conn.Close()
		resp, err := client.Get(fmt.Sprintf("http://%s:%d/", ip, 80+off))
		if err != nil {
			t.Fatalf("http %s: %v", ip, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	// One host first, so that what every host shares (compiled profile, buffers, pools)
	// is not counted against the rest.
	touch(net23 + ".1")
	time.Sleep(100 * time.Millisecond)
	before := heap()
	const n = 500
	for i := 2; i < n+2; i++ {
		touch(fmt.Sprintf("127.52.%d.%d", must3rd(net23)+i/256, i%256))
	}
	// Let the sessions' goroutines finish (closed connections, UDP flows keep their state:
	// they are part of what a touched host costs).
	time.Sleep(200 * time.Millisecond)
	after := heap()
	per := float64(int64(after)-int64(before)) / n
	t.Logf("%d hosts touched by Modbus, S7, SNMP and HTTP: %.0f bytes of live heap each (HostCost allows %d resident)", n, per, HostCost)
	if per > HostCost/2 {
		t.Fatalf("a touched host costs %.0f bytes of live heap, more than HostCost/2 = %d: raise HostCost or find the growth", per, HostCost/2)
	}
}

func must3rd(net23 string) int {
	var a, b, c int
	fmt.Sscanf(net23, "%d.%d.%d", &a, &b, &c)
	return c
}

func touchModbus(t *testing.T, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 512)
	for fc := byte(1); fc <= 4; fc++ {
		req := []byte{0, byte(fc), 0, 0, 0, 6, 1, fc, 0, 0, 0, 8}
		if _, err := c.Write(req); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf[:7]); err != nil {
			t.Fatalf("modbus %s fc %d: %v", addr, fc, err)
		}
		n := int(binary.BigEndian.Uint16(buf[4:6])) - 1
		if _, err := io.ReadFull(c, buf[:n]); err != nil {
			t.Fatal(err)
		}
	}
}
