// Package http is the web HMI of an emulated device: an HTTP/1.x server configured by the
// profile's <http> section (Conpot's http.xml format) that serves pages from the profile's
// htdocs with databus values substituted, status pages, aliases, chunked nodes, tarpits and
// an optional upstream proxy. It parses requests itself, bounded in size and time, so no
// Go net/http behaviour shows through.
package http

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	nethttp "net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/icsnare/icsnare/protocols"
)

// Port is the standard HTTP port.
const Port = 80

// Connection limits.
const (
	headerTimeout = 10 * time.Second // a whole request head, from the first wait on
	bodyTimeout   = 10 * time.Second // a whole request body
	maxRequests   = 100              // per connection (keep-alive)
)

type service struct {
	cfg           *config
	headerTimeout time.Duration
	bodyTimeout   time.Duration
	maxRequests   int
	proxyClient   *nethttp.Client
	seq           atomic.Uint64
}

// Endpoints implements protocols.Service.
func (s *service) Endpoints() []protocols.Endpoint {
	return []protocols.Endpoint{{Transport: protocols.TCP, Port: Port}}
}

// connBufs are one connection's reusable buffers.
type connBufs struct {
	head, body, out []byte
}

// connState is a connection's reader and buffers; connections take them from connStates
// and give them back, so a one-request connection (what scanners make) allocates neither
// the reader's 8 KiB nor its buffers. Buffers larger than keepMax are not kept.
type connState struct {
	br   *bufio.Reader
	bufs connBufs
}

var connStates = sync.Pool{New: func() any { return &connState{br: bufio.NewReaderSize(nil, maxLine)} }}

// ServeConn serves HTTP/1.x requests on conn until the client closes, a limit is reached
// or a request cannot be read in time.
func (s *service) ServeConn(ctx context.Context, sess *protocols.Session, conn net.Conn) {
	g := &guard{conn: conn}
	stop := context.AfterFunc(ctx, g.stop)
	defer stop()
	defer g.release()
	st := connStates.Get().(*connState)
	st.br.Reset(g)
	defer func() {
		st.br.Reset(nil) // nothing of this connection stays reachable from the pool
		st.bufs = connBufs{head: keep(st.bufs.head), body: keep(st.bufs.body), out: keep(st.bufs.out)}
		connStates.Put(st)
	}()
	br, bufs := st.br, &st.bufs
	for i := 1; ctx.Err() == nil; i++ {
		g.arm(s.headerTimeout)
		head, err := readHead(br, bufs.head)
		if err != nil {
			g.disarm()
			s.readFailed(ctx, sess, conn, err, head)
			return
		}
		bufs.head = head[:0]
		req, err := parseRequest(head)
		if err != nil {
			g.disarm()
			s.readFailed(ctx, sess, conn, err, head)
			return
		}
		if req.expect100 && req.minor == 1 && req.contentLength <= maxBody {
			if _, err := conn.Write([]byte("HTTP/1.1 100 Continue\r\n\r\n")); err != nil {
				g.disarm()
				return
			}
		}
		g.arm(s.bodyTimeout)
		body, err := readBody(br, req, bufs.body)
		g.disarm()
		if err != nil {
			var he *httpError
			if errors.As(err, &he) {
				s.answerError(ctx, sess, conn, he, req)
			}
			return
		}
		bufs.body = keep(body)
		last := req.closeConn || i >= s.maxRequests || s.cfg.version == "HTTP/1.0"
		out, ok := s.serve(ctx, sess, conn, req, body, last, bufs.out)
		if !ok || last {
			return
		}
		bufs.out = keep(out)
		bufs.head = keep(bufs.head)
	}
}

// keepMax bounds the buffers an idle keep-alive connection holds on to.
const keepMax = 64 << 10

// keep returns b emptied for reuse, or nil when it grew too large to hold while idle.
func keep(b []byte) []byte {
	if cap(b) > keepMax {
		return nil
	}
	return b[:0]
}

// readFailed answers a head that could not be read or parsed (or records a timeout).
// partial is what arrived of the head; a timeout with nothing received is an idle client.
func (s *service) readFailed(ctx context.Context, sess *protocols.Session, conn net.Conn, err error, partial []byte) {
	var he *httpError
	switch {
	case errors.As(err, &he):
		s.answerError(ctx, sess, conn, he, &request{raw: partial, minor: 1, contentLength: -1})
	case isTimeout(err) && len(bytes.TrimLeft(partial, "\r\n")) > 0:
		sess.Request("timeout", true)
		sess.EmitText("timeout", partial, nil, protocols.F("error", "request head not received in time"))
	}
}

// answerError sends the profile's page for an unreadable request and counts it.
func (s *service) answerError(ctx context.Context, sess *protocols.Session, conn net.Conn, he *httpError, req *request) {
	if req == nil {
		req = &request{method: "", minor: 1, contentLength: -1}
	}
	req.closeConn = true
	r := s.statusPage(ctx, sess, req, he.status, "", "", nil, false)
	r.closeConn = true
	out := s.write(nil, req, r, time.Now())
	if !protocols.Sleep(ctx, r.tarpit.delay()) {
		return
	}
	_, _ = conn.Write(out)
	kind := "invalid"
	if req.method != "" {
		kind = methodKind(req.method)
	}
	sess.Request(kind, true)
	sess.EmitText("request", req.raw, out[:r.headLen],
		protocols.F("status", he.status), protocols.F("error", he.msg))
}

// serve answers one parsed request; it reports whether the connection is still usable.
func (s *service) serve(ctx context.Context, sess *protocols.Session, conn net.Conn, req *request, body []byte, last bool, out []byte) ([]byte, bool) {
	rawPath, query := splitTarget(req.target)
	r := s.handle(ctx, sess, req, rawPath, query, body)
	r.closeConn = last || r.closeConn
	out = s.write(out, req, r, sess.RequestTime()) // the request's arrival: no clock read of its own
	if !protocols.Sleep(ctx, r.tarpit.delay()) {
		return out, false
	}
	_, err := conn.Write(out)
	sess.Request(methodKind(req.method), r.status >= 400)
	s.emit(sess, req, r, rawPath, query, body, out[:r.headLen])
	return out, err == nil && !r.closeConn
}
