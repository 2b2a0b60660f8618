package http

import (
	"context"
	"io"
	"testing"
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

var errEOF = io.EOF
