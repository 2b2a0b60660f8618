package sensor

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// dialFrom connects from a loopback source address of the test's choosing.
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// tryFrom dials from src and makes one round trip; a refused or reset dial is an error too.
func tryFrom(t *testing.T, src, addr, line string) (string, error) {
	t.Helper()
	d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp4", addr)
	if err != nil {
		return "", err
	}
	t.Cleanup(func() { c.Close() })
	return roundTrip(c, line)
}

// roundTrip sends a line and reads the answer.
func roundTrip(c net.Conn, line string) (string, error) {
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := fmt.Fprintf(c, "%s\n", line); err != nil {
		return "", err
	}
	resp, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(resp), err
}

// waitClosed reads until the sensor closes c (bounded by 5 s).
func waitClosed(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 256)
	for {
		if _, err := c.Read(buf); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatal("connection still open after 5 s")
			}
			return
		}
	}
}

func TestTrickledRequestIsClosed(t *testing.T) {
	r := startSensor(t, func(c *Config) { c.Limits.RequestTimeout = Duration{300 * time.Millisecond} })
	c := dialFrom(t, "127.0.0.1", r.addr(t, 40))
	if resp, err := roundTrip(c, "whole"); err != nil || !strings.HasSuffix(resp, "whole") {
		t.Fatalf("a whole request: %q, %v", resp, err)
	}
	// One byte at a time, never a whole line: closed at the request deadline, long before
	// the idle timeout (60 s), which each byte would otherwise renew.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 100 {
			if _, err := c.Write([]byte("x")); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	waitClosed(t, c)
	<-done
	if got := testutil.ToFloat64(r.s.m.closed.WithLabelValues("echotest", "request_timeout")); got != 1 {
		t.Fatalf("request_timeout closes %v, want 1", got)
	}
	r.stop()
	if !strings.Contains(r.events.String(), `"closed_by":"request_timeout"`) {
		t.Fatal("no disconnect event with closed_by request_timeout")
	}
}

func TestIdleConnectionsGiveWayWhenFull(t *testing.T) {
	r := startSensor(t, func(c *Config) {
		c.Limits.MaxConnections = 8
		c.Limits.MaxConnsPerSource = 2
		c.Limits.EvictIdleAfter = Duration{200 * time.Millisecond}
	})
	// Four sources hold two idle connections each: the sensor is full.
	var held []net.Conn
	for i := range 4 {
		for range 2 {
			c := dialFrom(t, fmt.Sprintf("127.0.%d.1", 10+i), r.addr(t, 50+i))
			if _, err := roundTrip(c, "hold"); err != nil {
				t.Fatal(err)
			}
			held = append(held, c)
		}
	}
	if _, err := tryFrom(t, "127.0.9.1", r.addr(t, 60), "ninth"); err == nil {
		t.Fatal("a ninth connection was served before the others went idle")
	}
	time.Sleep(300 * time.Millisecond) // let the held connections pass evict_idle_after
	if _, err := roundTrip(held[7], "still here"); err != nil {
		t.Fatal(err)
	}
	// A fifth source gets answers from the same host and from another one.
	for _, last := range []int{50, 61} {
		c := dialFrom(t, "127.0.20.1", r.addr(t, last))
		if resp, err := roundTrip(c, "newcomer"); err != nil || !strings.HasSuffix(resp, "newcomer") {
			t.Fatalf("new source to .%d: %q, %v", last, resp, err)
		}
	}
	if got := testutil.ToFloat64(r.s.m.evicted.WithLabelValues("echotest", "global_cap")); got != 2 {
		t.Fatalf("evictions %v, want 2", got)
	}
	// The connection that was active just now survived.
	if _, err := roundTrip(held[7], "survivor"); err != nil {
		t.Fatalf("the most recently active connection was evicted: %v", err)
	}
}

func TestBusyConnectionsAreNotEvicted(t *testing.T) {
	r := startSensor(t, func(c *Config) {
		c.Limits.MaxConnsPerHost = 2
		c.Limits.EvictIdleAfter = Duration{time.Hour}
	})
	for range 2 {
		if _, err := roundTrip(dialFrom(t, "127.0.0.1", r.addr(t, 70)), "hold"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tryFrom(t, "127.0.0.1", r.addr(t, 70), "third"); err == nil {
		t.Fatal("a third connection to a host capped at 2 was served while both were recent")
	}
	if got := testutil.ToFloat64(r.s.m.rejected.WithLabelValues("echotest", "host_cap")); got != 1 {
		t.Fatalf("host_cap rejections %v, want 1", got)
	}
}

func TestSourcePrefixCap(t *testing.T) {
	r := startSensor(t, func(c *Config) { c.Limits.MaxConnsPerSourcePrefix = 3 })
	for i := range 3 {
		if _, err := roundTrip(dialFrom(t, fmt.Sprintf("127.0.30.%d", i+1), r.addr(t, 80)), "in"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tryFrom(t, "127.0.30.9", r.addr(t, 81), "same /24"); err == nil {
		t.Fatal("a fourth connection from the same /24 was served")
	}
	if _, err := roundTrip(dialFrom(t, "127.0.31.1", r.addr(t, 81)), "other /24"); err != nil {
		t.Fatalf("another /24 refused: %v", err)
	}
	if got := testutil.ToFloat64(r.s.m.rejected.WithLabelValues("echotest", "source_prefix_cap")); got != 1 {
		t.Fatalf("source_prefix_cap rejections %v, want 1", got)
	}
}
