package sensor

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestMetricsListener checks /healthz, /readyz and that the series of the served protocols
// exist at zero before any traffic.
func TestMetricsListener(t *testing.T) {
	cfg := DefaultConfig()
	net24 := fmt.Sprintf("127.11.%d", rand.IntN(256))
	cfg.Hosts = []HostRule{{Addresses: []string{net24 + ".0/24"}, Profile: writeProfile(t, "m")}}
	cfg.Privileges.User = ""
	cfg.Metrics.Listen = ""
	ctx, cancel := context.WithCancel(context.Background())
	s, _ := newBound(t, ctx, cfg, func() int { return freePortPair(t) - 7 }, nil)
	ln, err := net.Listen("tcp", net24+".1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { s.Run(ctx, ln); close(done) }()
	defer func() { cancel(); <-done }()
	base := "http://" + ln.Addr().String()
	get := func(path string) (int, string) {
		t.Helper()
		c := &http.Client{Timeout: 5 * time.Second}
		for range 50 {
			resp, err := c.Get(base + path)
			if err != nil {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if path == "/readyz" && resp.StatusCode == http.StatusServiceUnavailable {
				time.Sleep(50 * time.Millisecond) // Run has not started serving yet
				continue
			}
			return resp.StatusCode, string(b)
		}
		t.Fatalf("GET %s: no answer", path)
		return 0, ""
	}
	for _, c := range []struct{ path, body string }{{"/healthz", "ok\n"}, {"/readyz", "ready\n"}} {
		if code, body := get(c.path); code != 200 || body != c.body {
			t.Errorf("GET %s = %d %q, want 200 %q", c.path, code, body, c.body)
		}
	}
	_, scrape := get("/metrics")
	for _, want := range []string{
		`icsnare_connections_rejected_total{protocol="echotest",reason="host_cap"} 0`,
		`icsnare_connections_rejected_total{protocol="echotest",reason="rate_limited"} 0`,
		`icsnare_connections_rejected_total{protocol="none",reason="unknown_host"} 0`,
		`icsnare_connections_evicted_total{protocol="echotest",reason="global_cap"} 0`,
		`icsnare_udp_flows_ended_total{protocol="echotest",reason="idle"} 0`,
		`icsnare_udp_answers_dropped_total{protocol="echotest",reason="amplification"} 0`,
		`icsnare_connections_total{protocol="echotest",transport="tcp"} 0`,
		`icsnare_connections_total{protocol="echotest",transport="udp"} 0`,
	} {
		if !strings.Contains(scrape, want+"\n") {
			t.Errorf("scrape lacks %s", want)
		}
	}
}
