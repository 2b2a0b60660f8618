package main

import (
	"bytes"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"
)

func TestCheckTarget(t *testing.T) {
	cases := []struct {
		target string
		ok     bool
	}{
		{"127.0.0.1:502", true}, {"[::1]:161", true}, {"127.9.8.7:102", true},
		{"198.18.0.1:502", true}, {"198.19.255.1:502", true}, {"[fd00::5]:161", true},
		{"10.0.0.1:502", false}, {"192.168.1.1:502", false}, {"8.8.8.8:161", false}, {"localhost:502", false}, {"127.0.0.1", false},
	}
	for _, c := range cases {
		if err := checkTarget(c.target); (err == nil) != c.ok {
			t.Errorf("%s: err=%v, want ok=%v", c.target, err, c.ok)
		}
	}
}

// TestGetRequestDecodes checks the hand-built GET against gosnmp's decoder, and that
// responseID reads the id of a GetResponse gosnmp encodes.
func TestGetRequestDecodes(t *testing.T) {
	oid, err := encodeOID("1.3.6.1.2.1.1.1.0")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []int32{1, 127, 128, 65535, 1 << 30} {
		pkt := getRequest("public", id, oid)
		g := &gosnmp.GoSNMP{Version: gosnmp.Version2c}
		p, err := g.SnmpDecodePacket(pkt)
		if err != nil {
			t.Fatalf("id %d: gosnmp cannot decode % x: %v", id, pkt, err)
		}
		if p.PDUType != gosnmp.GetRequest || p.RequestID != uint32(id) || p.Community != "public" ||
			len(p.Variables) != 1 || p.Variables[0].Name != ".1.3.6.1.2.1.1.1.0" {
			t.Fatalf("id %d decoded as %+v", id, p)
		}
		resp := &gosnmp.SnmpPacket{Version: gosnmp.Version2c, Community: "public", PDUType: gosnmp.GetResponse,
			RequestID: uint32(id), Variables: []gosnmp.SnmpPDU{{Name: ".1.3.6.1.2.1.1.1.0", Type: gosnmp.OctetString, Value: []byte("x")}}}
		b, err := resp.MarshalMsg()
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := responseID(b); !ok || got != id {
			t.Fatalf("responseID = %d, %v; want %d", got, ok, id)
		}
	}
	if _, ok := responseID([]byte{0x30, 0x05, 0x02}); ok {
		t.Fatal("truncated packet accepted")
	}
}

func TestRecorderPercentiles(t *testing.T) {
	r := newRecorder(time.Time{})
	for i := 1; i <= 100; i++ {
		r.observe(time.Duration(i) * time.Microsecond)
		r.ok++
	}
	if p := r.percentile(0.5); p != 50*time.Microsecond {
		t.Fatalf("p50 = %s", p)
	}
	if p := r.percentile(0.99); p != 99*time.Microsecond {
		t.Fatalf("p99 = %s", p)
	}
	// Slow answers (a meter's 0.3 s, a console's seconds) keep their percentiles: within 1 %.
	slow := newRecorder(time.Time{})
	for i := 1; i <= 100; i++ {
		slow.observe(time.Duration(i) * 30 * time.Millisecond)
	}
	if p, want := slow.percentile(0.5), 1500*time.Millisecond; p < want*99/100 || p > want*101/100 {
		t.Fatalf("p50 of 30 ms..3 s = %s, want about %s", p, want)
	}
	if p := slow.percentile(0.99); p < 2950*time.Millisecond || p > 3000*time.Millisecond*101/100 {
		t.Fatalf("p99 of 30 ms..3 s = %s", p)
	}
	merged := newRecorder(time.Time{})
	merged.merge(r)
	merged.merge(slow)
	if p := merged.percentile(0.25); p != 50*time.Microsecond {
		t.Fatalf("merged p25 = %s, want 50µs", p)
	}
	if !bytes.Equal([]byte(result{ok: 1, elapsed: time.Second}.String()[:10]), []byte("requests=1")) {
		t.Fatal("result line")
	}
}

// TestPacer: a paced connection waits for its next slot, takes one request from the shared
// budget per call, and after falling behind by more than an interval starts afresh instead
// of catching up in a burst. The clock is the test's.
func TestPacer(t *testing.T) {
	t0 := time.Unix(1000, 0)
	now := t0
	var slept []time.Duration
	var left atomic.Int64
	left.Store(10)
	p := &pacer{left: &left, every: 10 * time.Millisecond, now: func() time.Time { return now },
		sleep: func(d time.Duration) { slept = append(slept, d); now = now.Add(d) }}
	steps := []struct {
		advance time.Duration // the clock moves this much before the call
		sleep   time.Duration // the wait the call must make (0: none)
	}{
		{0, 0},                     // the first request goes at once
		{0, 10 * time.Millisecond}, // the next waits a whole interval
		{4 * time.Millisecond, 6 * time.Millisecond},
		{15 * time.Millisecond, 0}, // late by 5 ms: goes at once, the slot after is due 5 ms later
		{0, 5 * time.Millisecond},
		{50 * time.Millisecond, 0}, // behind by more than an interval: starts afresh
		{0, 10 * time.Millisecond},
	}
	for i, s := range steps {
		now = now.Add(s.advance)
		slept = slept[:0]
		if got := p.Add(-1); got != int64(9-i) {
			t.Fatalf("step %d: %d left, want %d", i, got, 9-i)
		}
		var waited time.Duration
		for _, d := range slept {
			waited += d
		}
		if waited != s.sleep {
			t.Fatalf("step %d: waited %v, want %v", i, waited, s.sleep)
		}
	}
	unpaced := &pacer{left: &left, now: func() time.Time { t.Fatal("an unpaced connection read the clock"); return t0 }}
	if got := unpaced.Add(-1); got != 2 {
		t.Fatalf("%d left, want 2", got)
	}
}

// TestLostConnectionReported: a connection the server closes mid-run is reported with its
// error, beside the requests that were answered before.
func TestLostConnectionReported(t *testing.T) {
	ln, err := net.Listen("tcp", netip.AddrPortFrom(testAddr(), 0).String())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		req := make([]byte, 12)
		for range 5 { // five FC3 answers of 10 registers, then the connection closes
			if _, err := io.ReadFull(c, req); err != nil {
				return
			}
			resp := append([]byte{req[0], req[1], 0, 0, 0, 23, req[6], 3, 20}, make([]byte, 20)...)
			if _, err := c.Write(resp); err != nil {
				return
			}
		}
	}()
	var out, errb bytes.Buffer
	code := run([]string{"-mode", "modbus", "-target", ln.Addr().String(), "-conns", "1", "-warmup", "0s",
		"-duration", "20s", "-max-requests", "1000"}, &out, &errb)
	if code != 0 || !strings.Contains(out.String(), "requests=5 errors=0") || !strings.Contains(out.String(), "connections_lost=1 first_error=") {
		t.Fatalf("exit %d:\n%s%s", code, out.String(), errb.String())
	}
}
