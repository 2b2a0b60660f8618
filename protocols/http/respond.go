package http

import (
	"context"
	nethttp "net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/icsnare/icsnare/protocols"
)

// response is what the server sends for one request.
type response struct {
	status   int
	headers  []header // the profile's (or upstream's) headers; computed ones are added on write
	body     []byte
	chunks   []int
	trailers []header
	noBody   bool // HEAD
	tarpit   tarpit
	node     string  // the node or status page that answered, for events
	reason   *string // the node's reason phrase; nil: the standard one
	proxied  string  // the upstream that answered
	// set by write
	closeConn bool
	headLen   int
}

// handle maps a request to a response.
func (s *service) handle(ctx context.Context, sess *protocols.Session, req *request, rawPath, query string, body []byte) *response {
	c := s.cfg
	switch req.method {
	case "GET", "POST", "HEAD":
		if req.method == "HEAD" && c.disableHead {
			return s.disabled(ctx, sess, req, rawPath, query, body)
		}
		var n *node
		if p, ok := resolvePath(rawPath); ok {
			n = c.nodes[p]
		}
		if n == nil {
			return s.statusPage(ctx, sess, req, 404, rawPath, query, body, true)
		}
		if n.target != nil {
			n = n.target
		}
		return s.serveNode(ctx, sess, req, n, rawPath, query, body)
	case "OPTIONS":
		if c.disableOptions {
			return s.disabled(ctx, sess, req, rawPath, query, body)
		}
		return &response{status: 200, headers: mergeHeaders(c.headers, []header{{name: "Allow", value: s.allow()}}), tarpit: c.tarpit, node: "OPTIONS"}
	case "TRACE":
		if c.disableTrace {
			return s.disabled(ctx, sess, req, rawPath, query, body)
		}
		// RFC 9110 §9.3.8: the request as received, as a message/http body.
		echo := append([]byte(nil), req.raw...)
		return &response{status: 200, headers: mergeHeaders(c.headers, []header{{name: "Content-Type", value: "message/http"}}),
			body: echo, tarpit: c.tarpit, node: "TRACE"}
	}
	return s.statusPage(ctx, sess, req, 501, rawPath, query, body, true)
}

// allow lists the enabled methods the way Conpot's OPTIONS does.
func (s *service) allow() string {
	m := []string{"GET"}
	if !s.cfg.disableHead {
		m = append(m, "HEAD")
	}
	m = append(m, "POST")
	if !s.cfg.disableOptions {
		m = append(m, "OPTIONS")
	}
	if !s.cfg.disableTrace {
		m = append(m, "TRACE")
	}
	return strings.Join(m, ",")
}

// disabled answers a method the profile switched off: its 405 page (with Allow) when it has
// one, else its 501 page.
func (s *service) disabled(ctx context.Context, sess *protocols.Session, req *request, rawPath, query string, body []byte) *response {
	if _, ok := s.cfg.status[405]; ok {
		r := s.statusPage(ctx, sess, req, 405, rawPath, query, body, true)
		r.headers = mergeHeaders(r.headers, []header{{name: "Allow", value: s.allow()}})
		return r
	}
	return s.statusPage(ctx, sess, req, 501, rawPath, query, body, true)
}

func (s *service) renderEnv(sess *protocols.Session) *renderEnv {
	env := &renderEnv{now: time.Now(), seed: s.seq.Add(1) * 0x9e3779b97f4a7c15}
	if sess != nil && sess.Host != nil {
		env.db = sess.Host.Databus
		env.seed ^= sess.Host.Seed
	}
	return env
}

func (s *service) serveNode(ctx context.Context, sess *protocols.Session, req *request, n *node, rawPath, query string, body []byte) *response {
	if n.proxy != nil {
		r, err := n.proxy.forward(ctx, req, rawPath, query, body)
		if err == nil {
			r.node, r.noBody, r.tarpit = n.name, req.method == "HEAD", s.tarpitOf(n)
			r.chunks, r.trailers = n.chunks, n.trailers
			return r
		}
		if sess != nil && sess.Log != nil {
			sess.Log.Debug("http proxy failed", "node", n.name, "err", err)
		}
		return s.statusPage(ctx, sess, req, 503, rawPath, query, body, false)
	}
	pg := n.body
	if len(n.triggers) > 0 && query != "" {
		q, _ := url.ParseQuery(query)
		for _, t := range n.triggers {
			if t.matches(q) {
				pg = t.body
				break
			}
		}
	}
	status := n.status
	if status == 0 {
		status = 200
	}
	return &response{status: status, headers: n.merged, body: pg.render(nil, s.renderEnv(sess)),
		chunks: n.chunks, trailers: n.trailers, noBody: req.method == "HEAD", tarpit: s.tarpitOf(n), node: n.name, reason: n.reasonPhrase()}
}

// statusPage answers with the profile's page for code: its headers, tarpit, chunks and
// proxy (unless allowProxy is false, which stops a failing proxy from looping). A code the
// profile has no page for gets the global headers and an empty body.
func (s *service) statusPage(ctx context.Context, sess *protocols.Session, req *request, code int, rawPath, query string, body []byte, allowProxy bool) *response {
	n := s.cfg.status[code]
	if n == nil {
		return &response{status: code, headers: s.cfg.headers, tarpit: s.cfg.tarpit, noBody: req.method == "HEAD", node: strconv.Itoa(code)}
	}
	if n.proxy != nil && allowProxy {
		r, err := n.proxy.forward(ctx, req, rawPath, query, body)
		if err == nil {
			r.node, r.noBody, r.tarpit = n.name, req.method == "HEAD", s.tarpitOf(n)
			return r
		}
		return s.statusPage(ctx, sess, req, 503, rawPath, query, body, false)
	}
	return &response{status: code, headers: n.merged, body: n.body.render(nil, s.renderEnv(sess)),
		chunks: n.chunks, trailers: n.trailers, noBody: req.method == "HEAD", tarpit: s.tarpitOf(n), node: n.name, reason: n.reasonPhrase()}
}

func (s *service) tarpitOf(n *node) tarpit {
	if n.tarpit != nil {
		return *n.tarpit
	}
	return s.cfg.tarpit
}

// bodiless reports whether a status never carries a body (RFC 9110 §6.4.1).
func bodiless(code int) bool { return code < 200 || code == 204 || code == 304 }

// write appends the encoded response to dst and records the head's length in r.headLen.
func (s *service) write(dst []byte, req *request, r *response, now time.Time) []byte {
	dst = append(dst, s.cfg.version...)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, int64(r.status), 10)
	switch {
	case r.reason == nil:
		dst = append(dst, ' ')
		dst = append(dst, reason(r.status)...)
	case *r.reason != "":
		dst = append(dst, ' ')
		dst = append(dst, *r.reason...)
	}
	dst = append(dst, "\r\n"...)
	wroteDate := false
	date := func() string { return now.UTC().Format(nethttp.TimeFormat) }
	if s.cfg.updateDate && !hasHeader(r.headers, "Date") {
		dst = appendHeader(dst, "Date", date())
		wroteDate = true
	}
	chunked := len(r.chunks) > 0 && req.minor == 1 && s.cfg.version == "HTTP/1.1"
	wroteLen, wroteConn := false, false
	for _, h := range r.headers {
		switch {
		case h.slot && strings.EqualFold(h.name, "Content-Length"):
			dst, wroteLen = appendFraming(dst, r, chunked, h.sep), true
			continue
		case h.slot:
			dst, wroteConn = s.appendConnection(dst, req, r, h), true
			continue
		}
		v := h.value
		if !wroteDate && s.cfg.updateDate && strings.EqualFold(h.name, "Date") {
			v, wroteDate = date(), true
		}
		dst = appendHeaderSep(dst, h.name, h.sep, v)
	}
	if !wroteLen {
		dst = appendFraming(dst, r, chunked, "")
	}
	if !wroteConn {
		dst = s.appendConnection(dst, req, r, header{})
	}
	dst = append(dst, "\r\n"...)
	r.headLen = len(dst)
	if r.noBody || bodiless(r.status) {
		return dst
	}
	if !chunked {
		return append(dst, r.body...)
	}
	return appendChunks(dst, r.body, r.chunks, r.trailers)
}

// appendChunks frames body in chunks of the given sizes, then one chunk with the rest, then
// the last chunk and the trailers.
func appendChunks(dst, body []byte, sizes []int, trailers []header) []byte {
	chunk := func(b []byte) {
		dst = strconv.AppendInt(dst, int64(len(b)), 16)
		dst = append(dst, "\r\n"...)
		dst = append(dst, b...)
		dst = append(dst, "\r\n"...)
	}
	for _, n := range sizes {
		if len(body) == 0 {
			break
		}
		n = min(n, len(body))
		chunk(body[:n])
		body = body[n:]
	}
	if len(body) > 0 {
		chunk(body)
	}
	dst = append(dst, "0\r\n"...)
	for _, t := range trailers {
		dst = appendHeader(dst, t.name, t.value)
	}
	return append(dst, "\r\n"...)
}

// appendFraming writes how the body is framed: nothing for a bodiless status,
// Transfer-Encoding (and Trailer) when chunked, else Content-Length (name and value
// separated by sep, "" for ": ").
func appendFraming(dst []byte, r *response, chunked bool, sep string) []byte {
	switch {
	case bodiless(r.status):
	case chunked:
		dst = appendHeader(dst, "Transfer-Encoding", "chunked")
		if len(r.trailers) > 0 {
			names := make([]string, len(r.trailers))
			for i, t := range r.trailers {
				names[i] = t.name
			}
			dst = appendHeader(dst, "Trailer", strings.Join(names, ", "))
		}
	default:
		dst = append(dst, "Content-Length"...)
		dst = appendSep(dst, sep)
		dst = strconv.AppendInt(dst, int64(len(r.body)), 10)
		dst = append(dst, "\r\n"...)
	}
	return dst
}

// appendConnection writes the Connection header the exchange needs: close when an
// HTTP/1.1 connection ends, keep-alive for an HTTP/1.0 client that asked for it. A
// profile's slot (value close) says close whenever the connection ends, as devices
// answering HTTP/1.0 do.
func (s *service) appendConnection(dst []byte, req *request, r *response, slot header) []byte {
	switch {
	case r.closeConn && (slot.value != "" || req.minor == 1 && s.cfg.version == "HTTP/1.1"):
		dst = appendHeaderSep(dst, "Connection", slot.sep, "close")
	case !r.closeConn && req.keepAlive10:
		dst = appendHeaderSep(dst, "Connection", slot.sep, "keep-alive")
	}
	return dst
}

func appendSep(dst []byte, sep string) []byte {
	if sep == "" {
		return append(dst, ": "...)
	}
	return append(dst, sep...)
}

func appendHeader(dst []byte, name, value string) []byte {
	return appendHeaderSep(dst, name, "", value)
}

// appendHeaderSep writes one header line, name and value separated by sep ("" for ": ").
func appendHeaderSep(dst []byte, name, sep, value string) []byte {
	dst = append(dst, name...)
	dst = appendSep(dst, sep)
	dst = append(dst, value...)
	return append(dst, "\r\n"...)
}

// reasonPhrase is the node's own reason phrase, or nil for the standard one.
func (n *node) reasonPhrase() *string {
	if n == nil || !n.hasReason {
		return nil
	}
	return &n.reason
}

func reason(code int) string {
	if t := nethttp.StatusText(code); t != "" {
		return t
	}
	return "Unknown"
}
