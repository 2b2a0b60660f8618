package http

import (
	"context"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// loopConn answers reads with the same request n times, then EOF; writes are counted.
type loopConn struct {
	memConn
	req     []byte
	left    int
	pending []byte
	written int64
}

func (c *loopConn) Read(p []byte) (int, error) {
	if len(c.pending) == 0 {
		if c.left == 0 {
			return 0, errEOF
		}
		c.left--
		c.pending = c.req
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

func (c *loopConn) Write(p []byte) (int, error) { c.written += int64(len(p)); return len(p), nil }

// BenchmarkServeIndex serves the start page (via the /index.html alias) over a keep-alive
// connection: request parsing, databus substitution and response encoding.
func BenchmarkServeIndex(b *testing.B) {
	svc, sess := memService(b)
	req := []byte("GET /index.html HTTP/1.1\r\nHost: 192.0.2.10\r\nUser-Agent: Mozilla/5.0\r\nAccept: */*\r\n\r\n")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		svc.maxRequests = 100
		c := &loopConn{req: req, left: 100}
		svc.ServeConn(context.Background(), sess, c)
	}
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "req/s")
}

// BenchmarkParseRequest parses curl's request head.
func BenchmarkParseRequest(b *testing.B) {
	head := []byte("GET /index.html HTTP/1.1\r\nHost: 127.0.0.1:8800\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseRequest(head); err != nil {
			b.Fatal(err)
		}
	}
}

// TestWrk runs wrk against the default profile's start page for the report; it runs only
// with ICSNARE_HTTP_WRK=1 (it takes a few seconds of both cores).
func TestWrk(t *testing.T) {
	if os.Getenv("ICSNARE_HTTP_WRK") == "" {
		t.Skip("set ICSNARE_HTTP_WRK=1 to run wrk")
	}
	protocoltest.NeedTool(t, "wrk")
	srv, _ := start(t)
	out, err := protocoltest.Run(t, 30*time.Second, "wrk", "-t1", "-c32", "-d5s", "--latency", baseURL(srv)+"/index.html")
	if err != nil {
		t.Fatal(err)
	}
	if m := regexp.MustCompile(`Requests/sec:\s+([\d.]+)`).FindStringSubmatch(out); m == nil || strings.Contains(out, "Non-2xx") {
		t.Fatalf("wrk output:\n%s", out)
	}
}

var errEOF = io.EOF
