package sensor

import (
	"bufio"
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
	s, bound := newBound(t, ctx, cfg, func() int { return freePortPair(t) - 7 }, nil)
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
		`icsnare_response_latency_seconds_count{protocol="echotest",transport="tcp"} 0`,
		`icsnare_response_latency_seconds_count{protocol="echotest",transport="udp"} 0`,
	} {
		if !strings.Contains(scrape, want+"\n") {
			t.Errorf("scrape lacks %s", want)
		}
	}

	// Two TCP requests on one connection and one datagram: three answers observed, each
	// from its request's first byte to its answer.
	port := fmt.Sprint(7 + bound.Bind.PortOffset)
	c, err := net.DialTimeout("tcp", net24+".5:"+port, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	for _, line := range []string{"one\n", "two\n"} {
		if _, err := c.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
		if _, err := br.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	u, err := net.Dial("udp", net24+".5:"+port)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	u.SetDeadline(time.Now().Add(10 * time.Second))
	u.Write([]byte("three"))
	if _, err := u.Read(make([]byte, 512)); err != nil {
		t.Fatal(err)
	}
	// The server observes an answer's latency once its write returned, which can be just
	// after the client read the answer: scrape until the observations are in (bounded).
	wants := []string{
		`icsnare_response_latency_seconds_count{protocol="echotest",transport="tcp"} 2`,
		`icsnare_response_latency_seconds_count{protocol="echotest",transport="udp"} 1`,
		`icsnare_response_latency_seconds_bucket{protocol="echotest",transport="tcp",le="+Inf"} 2`,
	}
	var lacking []string
	for range 100 {
		_, scrape = get("/metrics")
		lacking = lacking[:0]
		for _, want := range wants {
			if !strings.Contains(scrape, want+"\n") {
				lacking = append(lacking, want)
			}
		}
		if len(lacking) == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, want := range lacking {
		t.Errorf("scrape lacks %s", want)
	}
}
