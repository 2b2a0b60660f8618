package http

import (
	"bytes"
	"context"
	"testing"
)

// FuzzServeConn runs whole connections (heads, bodies, pipelined requests) through the
// server and checks every answer is a well-formed HTTP/1.1 response.
func FuzzServeConn(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: 127.0.0.1:8800\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n",
		"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\nHEAD /DiagBuffer.htm HTTP/1.1\r\n\r\nOPTIONS * HTTP/1.1\r\n\r\n",
		"POST /FormLogin HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 29\r\n\r\nLogin=admin&Password=s3cret!!",
		"POST /FormLogin HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nLogin\r\n3;x=y\r\n=ab\r\n0\r\nT: v\r\n\r\n",
		"GET /DiagBuffer.htm HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /nope HTTP/1.0\r\n\r\n",
		"TRACE / HTTP/1.1\r\n\r\n",
		"DELETE /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx",
		"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
		"GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	svc, sess := memService(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		c := &memConn{in: bytes.NewReader(in)}
		svc.ServeConn(context.Background(), sess, c)
		out := c.out.Bytes()
		for len(out) > 0 {
			if bytes.HasPrefix(out, []byte("HTTP/1.1 100 Continue\r\n\r\n")) {
				out = out[len("HTTP/1.1 100 Continue\r\n\r\n"):]
				continue
			}
			if !bytes.HasPrefix(out, []byte("HTTP/1.1 ")) {
				t.Fatalf("answer does not start with a status line: %q", out[:min(len(out), 80)])
			}
			i := bytes.Index(out, []byte("\r\n\r\n"))
			if i < 0 {
				t.Fatalf("answer head not terminated: %q", out)
			}
			n := bodyLen(t, out[:i+4], out[i+4:])
			out = out[i+4+n:]
		}
	})
}

// bodyLen returns the length of the body that follows head in rest (Content-Length or chunked).
func bodyLen(t *testing.T, head, rest []byte) int {
	h := string(head)
	if len(rest) == 0 || bytes.HasPrefix(rest, []byte("HTTP/1.1 ")) {
		return 0 // a HEAD answer: the headers without the body (pages never start so)
	}
	if headerOf(h, "Transfer-Encoding") == "chunked" {
		i := bytes.Index(rest, []byte("0\r\n\r\n"))
		if i < 0 {
			t.Fatalf("chunked body not terminated")
		}
		return i + 5
	}
	cl := headerOf(h, "Content-Length")
	if cl == "" {
		return 0
	}
	n := 0
	for _, c := range cl {
		n = n*10 + int(c-'0')
	}
	if n > len(rest) {
		t.Fatalf("body shorter (%d) than Content-Length %d", len(rest), n)
	}
	return n
}
