package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/icsnare/icsnare/protocols"
)

// chunkSize is the most one read relays (Conpot reads 1024 bytes at a time).
const chunkSize = 4096

// maxResolved bounds the addresses of a backend's DNS name that are tried.
const maxResolved = 8

// proxy is one configured <proxy> ready to serve.
type proxy struct {
	*proxyConf
	cert *tls.Certificate // from the template's files; nil: a generated per-host one
	sem  chan struct{}    // bounds the open backend connections
	// logDown keeps a backend that is down from filling the log: one line per interval.
	logDown logLimiter
}

// logInterval is the least time between two log lines about one proxy's backend.
const logInterval = 30 * time.Second

// logLimiter lets one log line through per logInterval and counts the rest.
type logLimiter struct {
	last, held atomic.Int64
}

// allow reports whether to log now, and how many lines were held back since the last one.
func (l *logLimiter) allow() (int64, bool) {
	now := time.Now().UnixNano()
	last := l.last.Load()
	if (last == 0 || now-last >= int64(logInterval)) && l.last.CompareAndSwap(last, now) {
		return l.held.Swap(0), true
	}
	l.held.Add(1)
	return 0, false
}

// service relays every proxy of one profile.
type service struct {
	proxies []*proxy
	byPort  map[int]*proxy
	opts    Options
	certs   *certCache

	// dialed, when set (tests), is told every address a backend connection is about to
	// connect to, before the connect system call.
	dialed func(addr netip.AddrPort)
	// running counts the goroutines relaying connections (tests check it drains).
	running atomic.Int64
}

// Endpoints implements protocols.Service: one TCP port per proxy.
func (s *service) Endpoints() []protocols.Endpoint {
	out := make([]protocols.Endpoint, 0, len(s.proxies))
	for _, p := range s.proxies {
		out = append(out, protocols.Endpoint{Transport: protocols.TCP, Port: p.Port})
	}
	return out
}

// RequestTimeout implements protocols.RequestTimeouter: what a relayed protocol calls a
// request is unknown here (the Kamstrup console is typed by a person), so only the idle
// timeout and max_duration apply.
func (s *service) RequestTimeout(time.Duration) time.Duration { return 0 }

// proxyFor finds the proxy a session came in for: by the endpoint the sensor matched, or,
// where no endpoint is set (a test harness), by the local port or the only proxy.
func (s *service) proxyFor(sess *protocols.Session) *proxy {
	if p, ok := s.byPort[sess.Endpoint.Port]; ok && sess.Endpoint.Transport == protocols.TCP {
		return p
	}
	if sess.Endpoint.Port == 0 {
		if p, ok := s.byPort[int(sess.Local.Port())]; ok {
			return p
		}
		if len(s.proxies) == 1 {
			return s.proxies[0]
		}
	}
	return nil
}

// ServeConn implements protocols.StreamService: terminate TLS if the proxy does, connect
// to the backend and relay both ways until either side ends, a bound is reached or the
// sensor stops.
func (s *service) ServeConn(ctx context.Context, sess *protocols.Session, conn net.Conn) {
	p := s.proxyFor(sess)
	if p == nil {
		sess.Log.Warn("proxy: no proxy for this endpoint", "endpoint", sess.Endpoint.String(), "local", sess.Local.String())
		return
	}
	s.running.Add(1)
	defer s.running.Add(-1)
	ctx, cancel := context.WithTimeout(ctx, s.opts.MaxDuration.Duration)
	defer cancel()
	ids := []protocols.Field{protocols.F("proxy", p.Name), protocols.F("proxy_id", p.ID)}
	emit := func(typ string, req, resp []byte, fields ...protocols.Field) {
		sess.Emit(typ, req, resp, append(append([]protocols.Field(nil), ids...), fields...)...)
	}

	client := conn
	if p.TLS {
		tc, ok := s.handshake(ctx, sess, p, conn, emit)
		if !ok {
			return
		}
		defer tc.Close() // close_notify before the sensor closes the socket
		client = tc
	}

	if !p.Confirmed {
		sess.Request("backend", true)
		s.refuse(sess, client, emit, protocols.F("backend", p.Backend.String()), protocols.F("stage", "unconfirmed"),
			protocols.F("error", "backend named by the template only (not in [protocols.proxy] backends)"))
		return
	}
	select {
	case p.sem <- struct{}{}:
		defer func() { <-p.sem }()
	default:
		sess.Request("backend", true)
		s.refuse(sess, client, emit, protocols.F("backend", p.Backend.String()), protocols.F("stage", "limit"),
			protocols.F("error", fmt.Sprintf("%d backend connections open (max_backend_connections)", cap(p.sem))))
		return
	}
	started := time.Now()
	back, addr, stage, err := s.dial(ctx, p)
	if err != nil {
		sess.Request("backend", true)
		s.refuse(sess, client, emit, protocols.F("backend", p.Backend.String()), protocols.F("stage", stage),
			protocols.F("error", dialError(err)))
		if n, ok := p.logDown.allow(); ok {
			sess.Log.Warn("proxy: backend unreachable", "proxy", p.Name, "backend", p.Backend.String(), "err", err, "since_last_logged", n)
		}
		return
	}
	defer back.Close()
	emit("backend_connect", nil, nil, protocols.F("backend", p.Backend.String()), protocols.F("backend_addr", addr.String()),
		protocols.F("backend_tls", p.BackendTLS), protocols.F("connect_ms", time.Since(started).Milliseconds()))

	r := &relay{s: s, sess: sess, p: p, client: client, back: back, emit: emit, budget: int64(s.opts.MaxChunkEvents)}
	if p.Decoder != nil {
		r.dec = p.Decoder()
	}
	r.lastActive.Store(time.Now().UnixNano())
	r.ctx = ctx
	stop := context.AfterFunc(ctx, func() { r.finish(r.ctxReason()) })
	defer stop()
	var wg sync.WaitGroup
	wg.Add(1)
	s.running.Add(1)
	go func() {
		defer s.running.Add(-1)
		defer wg.Done()
		r.pump(true)
	}()
	r.pump(false)
	wg.Wait()
	r.mu.Lock()
	reason := r.reason
	r.mu.Unlock()
	emit("end", nil, nil, protocols.F("closed_by", reason),
		protocols.F("bytes_in", r.bytes[0].Load()), protocols.F("bytes_out", r.bytes[1].Load()),
		protocols.F("chunks_in", r.chunks[0].Load()), protocols.F("chunks_out", r.chunks[1].Load()),
		protocols.F("events_skipped", r.skipped.Load()))
}

// handshake terminates TLS on conn with the proxy's certificate. A failed handshake is an
// event carrying the first bytes the client sent (a scanner speaking plain text to a TLS
// port shows what it asked).
func (s *service) handshake(ctx context.Context, sess *protocols.Session, p *proxy, conn net.Conn,
	emit func(string, []byte, []byte, ...protocols.Field)) (*tls.Conn, bool) {
	rec := &recordingConn{Conn: conn, max: max(sess.MaxPayload, 64)}
	var hello struct {
		sni   string
		alpn  []string
		certs string
	}
	cfg := &tls.Config{
		GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
			hello.sni, hello.alpn = h.ServerName, h.SupportedProtos
			if p.cert != nil {
				hello.certs = "template"
				return p.cert, nil
			}
			hello.certs = "generated"
			return s.certs.get(sess.Local.Addr(), hostSeed(sess), h.Context().Done())
		},
	}
	tc := tls.Server(rec, cfg)
	hctx, cancel := context.WithTimeout(ctx, s.opts.HandshakeTimeout.Duration)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		sess.Request("tls", true)
		emit("tls_error", rec.first(), nil, protocols.F("error", clip(err.Error(), 256)), protocols.F("server_name", hello.sni))
		return nil, false
	}
	rec.stop()
	st := tc.ConnectionState()
	fields := []protocols.Field{protocols.F("server_name", st.ServerName), protocols.F("tls_version", tls.VersionName(st.Version)),
		protocols.F("cipher_suite", tls.CipherSuiteName(st.CipherSuite)), protocols.F("certificate", hello.certs)}
	if len(hello.alpn) > 0 {
		fields = append(fields, protocols.F("alpn_offered", hello.alpn[:min(len(hello.alpn), 8)]))
	}
	emit("tls", nil, nil, fields...)
	return tc, true
}

// lingerTime bounds how long a refused client is read from after the FIN.
const lingerTime = time.Second

// refuse ends a connection the proxy cannot relay: it sends the client a FIN, reads what
// the client sent (bounded in bytes and time) and reports it with a backend_error event,
// so the client sees an orderly close rather than a reset, and its payload is kept.
func (s *service) refuse(sess *protocols.Session, client net.Conn, emit func(string, []byte, []byte, ...protocols.Field), fields ...protocols.Field) {
	var got []byte
	if cw, ok := client.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		limit := max(sess.MaxPayload, 64)
		buf := make([]byte, chunkSize)
		deadline := time.Now().Add(min(lingerTime, s.opts.IdleTimeout.Duration))
		client.SetReadDeadline(deadline)
		for drained := 0; drained < 64<<10; {
			n, err := client.Read(buf)
			drained += n
			if room := limit - len(got); room > 0 {
				got = append(got, buf[:min(n, room)]...)
			}
			if err != nil {
				break
			}
		}
	}
	emit("backend_error", got, nil, fields...)
}

// hostSeed is the seed a host's generated certificate derives from.
func hostSeed(sess *protocols.Session) uint64 {
	if sess.Host == nil {
		return 0
	}
	return sess.Host.Seed
}

// errNotConfigured is returned when a connection would go to an address the proxy's
// configuration does not name (it never should: the check is the last guard).
var errNotConfigured = errors.New("address is not the configured backend")

// dial connects to the proxy's backend, and only there: a DNS name is resolved first and
// the connect system call is refused for any address that is not one of its addresses at
// the configured port. stage says which step failed ("resolve", "connect", "tls").
func (s *service) dial(ctx context.Context, p *proxy) (net.Conn, netip.AddrPort, string, error) {
	dctx, cancel := context.WithTimeout(ctx, s.opts.DialTimeout.Duration)
	defer cancel()
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(p.Backend.Host); err == nil {
		addrs = []netip.Addr{a.Unmap()}
	} else {
		res, err := net.DefaultResolver.LookupNetIP(dctx, "ip", p.Backend.Host)
		if err != nil {
			return nil, netip.AddrPort{}, "resolve", err
		}
		for _, a := range res {
			if a = a.Unmap(); !a.IsUnspecified() && !a.IsMulticast() && len(addrs) < maxResolved {
				addrs = append(addrs, a)
			}
		}
		if len(addrs) == 0 {
			return nil, netip.AddrPort{}, "resolve", fmt.Errorf("%s has no usable address", p.Backend.Host)
		}
	}
	allowed := func(ap netip.AddrPort) bool {
		if int(ap.Port()) != p.Backend.Port {
			return false
		}
		for _, a := range addrs {
			if a == ap.Addr().Unmap() {
				return true
			}
		}
		return false
	}
	d := net.Dialer{Control: func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil || !allowed(ap) {
			return fmt.Errorf("%s: %w", address, errNotConfigured)
		}
		if s.dialed != nil {
			s.dialed(ap)
		}
		return nil
	}}
	var lastErr error
	for _, a := range addrs {
		ap := netip.AddrPortFrom(a, uint16(p.Backend.Port))
		c, err := d.DialContext(dctx, "tcp", ap.String())
		if err != nil {
			lastErr = err
			continue
		}
		if !p.BackendTLS {
			return c, ap, "", nil
		}
		cfg := &tls.Config{
			// Like Conpot, the backend's certificate is not checked: the backend is a device
			// the operator named, and devices present self-signed certificates.
			InsecureSkipVerify: true,
		}
		if net.ParseIP(p.Backend.Host) == nil {
			cfg.ServerName = p.Backend.Host
		}
		if p.cert != nil {
			cfg.Certificates = []tls.Certificate{*p.cert} // Conpot presents its pair to the backend too
		}
		tc := tls.Client(c, cfg)
		if err := tc.HandshakeContext(dctx); err != nil {
			c.Close()
			return nil, ap, "tls", err
		}
		return tc, ap, "", nil
	}
	return nil, netip.AddrPort{}, "connect", lastErr
}

// dialError words a backend failure for an event, without the addresses Go adds.
func dialError(err error) string {
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, errNotConfigured):
		return "refused: " + errNotConfigured.Error()
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "no route to backend"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return "timed out"
	case errors.As(err, &dnsErr):
		return "name lookup failed: " + clip(dnsErr.Err, 128)
	}
	return clip(err.Error(), 256)
}

// relay is one relayed connection.
type relay struct {
	ctx          context.Context // ends at max_duration or the sensor's shutdown
	s            *service
	sess         *protocols.Session
	p            *proxy
	client, back net.Conn
	emit         func(string, []byte, []byte, ...protocols.Field)

	decMu sync.Mutex
	dec   protocols.StreamDecoder // nil: none, or disabled after it panicked

	budget     int64 // chunk events left
	spent      atomic.Int64
	skipped    atomic.Int64
	bytes      [2]atomic.Int64 // [0] client → backend, [1] backend → client
	chunks     [2]atomic.Int64
	lastActive atomic.Int64
	linger     atomic.Int64 // after the backend's end: when to stop reading the client (unix ns)

	mu     sync.Mutex
	reason string
	closed bool
}

// finish records why the relay ends (the first reason wins) and closes both sides, which
// ends both pumps.
func (r *relay) finish(reason string) {
	r.mu.Lock()
	if r.reason == "" {
		r.reason = reason
	}
	done := r.closed
	r.closed = true
	r.mu.Unlock()
	if !done {
		r.client.Close()
		r.back.Close()
	}
}

// ctxReason says why the relay's context ended.
func (r *relay) ctxReason() string {
	if errors.Is(r.ctx.Err(), context.DeadlineExceeded) {
		return "max_duration"
	}
	return "shutdown"
}

// ended reports whether finish has run.
func (r *relay) ended() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

// pump copies one direction: in is client → backend.
func (r *relay) pump(in bool) {
	src, dst, dir, limit := r.back, r.client, 1, r.s.opts.MaxBytesOut
	side, typ := "backend", "response"
	if in {
		src, dst, dir, limit = r.client, r.back, 0, r.s.opts.MaxBytesIn
		side, typ = "client", "request"
	}
	idle := r.s.opts.IdleTimeout.Duration
	buf := make([]byte, chunkSize)
	for {
		deadline := time.Now().Add(idle)
		if l := r.linger.Load(); l != 0 && in && l < deadline.UnixNano() {
			deadline = time.Unix(0, l)
		}
		src.SetReadDeadline(deadline)
		n, err := src.Read(buf)
		if n > 0 {
			r.lastActive.Store(time.Now().UnixNano())
			total := r.bytes[dir].Add(int64(n))
			over := total > limit
			if over {
				n -= int(total - limit)
				r.bytes[dir].Add(-int64(total - limit))
			}
			if n > 0 {
				r.chunks[dir].Add(1)
				if in {
					r.sess.Request("relay", false)
				} else {
					r.sess.Touch()
				}
				r.record(in, typ, buf[:n])
				dst.SetWriteDeadline(time.Now().Add(idle))
				if _, werr := dst.Write(buf[:n]); werr != nil {
					r.finish(map[bool]string{true: "backend_write_error", false: "client_write_error"}[in])
					return
				}
			}
			if over {
				r.finish("byte_limit_" + map[bool]string{true: "in", false: "out"}[in])
				return
			}
		}
		if err == nil {
			continue
		}
		var ne net.Error
		switch {
		case r.ctx != nil && r.ctx.Err() != nil:
			r.finish(r.ctxReason()) // the sensor closing the socket may come first
			return
		case r.ended():
			return
		case errors.As(err, &ne) && ne.Timeout():
			if l := r.linger.Load(); l != 0 && in && time.Now().UnixNano() >= l {
				r.finish("backend") // the client did not close after the backend's end
				return
			}
			if time.Since(time.Unix(0, r.lastActive.Load())) < idle {
				continue // the other direction is busy: not idle yet
			}
			r.finish("idle")
			return
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			// This side is done sending: pass its end on (a FIN, or TLS close_notify) and
			// keep relaying the other way: the backend's answer to a client that shut its
			// side, or, for a short while, what a client still sends (its close_notify, its
			// FIN) after the backend's end, so the client sees an orderly close, not a reset.
			if cw, ok := dst.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
				r.mu.Lock()
				if r.reason == "" {
					r.reason = side
				}
				r.mu.Unlock()
				if !in {
					until := time.Now().Add(min(lingerTime, idle))
					r.linger.Store(until.UnixNano())
					r.client.SetReadDeadline(until) // cut short a read in progress
				}
				return
			}
			r.finish(side)
			return
		default:
			r.finish(side + "_error")
			return
		}
	}
}

// record emits a chunk event, with the decoder's text, while the budget lasts.
func (r *relay) record(in bool, typ string, b []byte) {
	if r.spent.Add(1) > r.budget {
		r.skipped.Add(1)
		return
	}
	var fields []protocols.Field
	if text, ok := r.decode(in, b); ok {
		fields = append(fields, protocols.F("decoded", clip(text, r.maxText())), protocols.F("decoder", r.p.DecoderName))
	}
	if in {
		r.emit(typ, b, nil, fields...)
	} else {
		r.emit(typ, nil, b, fields...)
	}
}

func (r *relay) maxText() int {
	if r.sess.MaxPayload > 0 {
		return r.sess.MaxPayload
	}
	return 4096
}

// decode runs the connection's decoder on one chunk. A decoder that panics is switched off
// for the rest of the connection (an event says so); the relay goes on.
func (r *relay) decode(in bool, b []byte) (text string, ok bool) {
	r.decMu.Lock()
	defer r.decMu.Unlock()
	if r.dec == nil {
		return "", false
	}
	defer func() {
		if v := recover(); v != nil {
			r.dec = nil
			text, ok = "", false
			r.emit("decoder_error", nil, nil, protocols.F("decoder", r.p.DecoderName), protocols.F("error", clip(fmt.Sprint(v), 256)))
		}
	}()
	if in {
		text = r.dec.DecodeIn(b)
	} else {
		text = r.dec.DecodeOut(b)
	}
	return text, text != ""
}

// clip cuts s to at most n bytes at a character boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// recordingConn keeps the first bytes read through it, until stop.
type recordingConn struct {
	net.Conn
	max  int
	mu   sync.Mutex
	buf  []byte
	done bool
}

func (c *recordingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.mu.Lock()
	if !c.done && len(c.buf) < c.max {
		c.buf = append(c.buf, b[:min(n, c.max-len(c.buf))]...)
	}
	c.mu.Unlock()
	return n, err
}

func (c *recordingConn) stop() {
	c.mu.Lock()
	c.done, c.buf = true, nil
	c.mu.Unlock()
}

func (c *recordingConn) first() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.buf...)
}

// CloseWrite passes a half-close through to the wrapped connection.
func (c *recordingConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}
