package ipmi

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"time"

	"github.com/icsnare/icsnare/protocols"
)

// service is the BMC of one profile; it serves every host of that profile.
type service struct {
	cfg    *config
	counts counters
}

func newService(c *config) *service {
	return &service{cfg: c, counts: counters{source: map[[16]byte]int{}}}
}

// Endpoints implements protocols.Service.
func (s *service) Endpoints() []protocols.Endpoint {
	return []protocols.Endpoint{{Transport: protocols.UDP, Port: Port}}
}

const flowStateKey = "ipmi.flow"

func (s *service) flow(sess *protocols.Session) *flow {
	f := sess.State(flowStateKey, func() any { return &flow{sessions: map[uint32]*rsession{}} }).(*flow)
	f.once.Do(func() {
		if !sess.OnClose(func() { s.closeFlow(sess, f) }) && sess.Log != nil {
			sess.Log.Warn("ipmi: no close hook left; sessions of this flow end by timeout only")
		}
	})
	return f
}

// closeFlow ends every RMCP+ session of a flow whose UDP flow has ended.
func (s *service) closeFlow(sess *protocols.Session, f *flow) {
	hs := s.host(sess.Host)
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, rs := range f.sessions {
		s.removeLocked(sess, hs, f, rs, "flow ended")
	}
	if f.dropped > 0 {
		sess.Emit("summary", nil, nil, protocols.F("events_suppressed", f.dropped))
		f.dropped = 0
	}
}

// request is what one datagram carried, for its event.
type request struct {
	kind   string // metric kind: ping, open_session, rakp1, rakp3, command name …
	failed bool
	drop   string // why no answer was sent
	must   bool   // always emit the event (authentication, state changes, errors)
	fields []protocols.Field
}

func (r *request) add(f ...protocols.Field) { r.fields = append(r.fields, f...) }

// RepliesPromptly implements protocols.PromptReplier: a datagram is answered while
// ServePacket runs.
func (s *service) RepliesPromptly() bool { return true }

// ServePacket implements protocols.PacketService.
func (s *service) ServePacket(ctx context.Context, sess *protocols.Session, pkt []byte, reply func([]byte)) {
	if ctx.Err() != nil {
		return
	}
	hs := s.host(sess.Host)
	f := s.flow(sess)
	now := time.Now()
	var r request
	f.mu.Lock()
	s.expireLocked(sess, hs, f, now)
	var resp []byte
	h, rest, err := parseRMCP(pkt)
	switch {
	case err != nil:
		r.kind, r.drop = "invalid", "not RMCP: "+err.Error()
	case h.class&rmcpClassMask == rmcpClassASF:
		resp = s.serveASF(&r, h, rest, reply)
	case h.class&rmcpClassMask == rmcpClassIPMI && h.class&rmcpAckBit == 0:
		if len(rest) > 0 && rest[0]&0x0F == authRMCPPlus {
			resp = s.serveV2(&r, sess, hs, f, rest, now)
		} else {
			resp = s.serveV15(&r, sess, hs, f, rest, now)
		}
	default:
		r.kind, r.drop = "invalid", "RMCP class not served"
	}
	if r.kind == "" {
		r.kind = "invalid"
	}
	if r.drop != "" {
		r.failed = true
		r.add(protocols.F("dropped", r.drop))
	}
	sess.Request(r.kind, r.failed)
	s.eventLocked(sess, f, "request", pkt, resp, &r)
	f.mu.Unlock()
	if resp != nil {
		reply(resp)
	}
}

// eventLocked emits the request's event, or counts it once the flow has had its share.
func (s *service) eventLocked(sess *protocols.Session, f *flow, typ string, req, resp []byte, r *request) {
	if !r.must && f.events >= maxEventsPerFlow {
		f.dropped++
		return
	}
	f.events++
	fields := append([]protocols.Field{protocols.F("kind", r.kind)}, r.fields...)
	sess.Emit(typ, req, resp, fields...)
}

// serveASF answers an ASF presence ping with a pong (and an RMCP ACK when the ping asks
// for one).
func (s *service) serveASF(r *request, h rmcpHeader, b []byte, reply func([]byte)) []byte {
	if h.class&rmcpAckBit != 0 {
		r.kind, r.drop = "ack", "RMCP ACK"
		return nil
	}
	m, err := parseASF(b)
	if err != nil {
		r.kind, r.drop = "asf", "ASF: "+err.Error()
		return nil
	}
	if m.iana != asfIANA || m.typ != asfPresPing {
		r.kind, r.drop = "asf", "ASF message not served"
		return nil
	}
	r.kind = "ping"
	if h.seq != rmcpNoAck {
		reply(appendRMCP(nil, h.seq, rmcpAckBit|rmcpClassASF))
	}
	return appendPong(nil, h.seq, m.tag)
}

// serveV15 answers an IPMI v1.5 packet: a session-less command, or a message of a v1.5
// session when the profile enables v1.5 authentication types.
func (s *service) serveV15(r *request, sess *protocols.Session, hs *hostState, f *flow, b []byte, now time.Time) []byte {
	h, msg, err := parseV15(b)
	if err != nil {
		r.drop = "IPMI v1.5: " + err.Error()
		return nil
	}
	if h.id != 0 {
		r.kind = "v15_session"
		return s.serveV15Session(r, sess, hs, f, h, msg, now)
	}
	if h.authType != authNone {
		r.kind, r.drop = "v15_session", "session-less message with an authentication code"
		return nil
	}
	out := s.sessionless(r, sess, hs, f, msg)
	if out == nil {
		return nil
	}
	return appendV15NoAuth(nil, out)
}

// serveV2 answers an RMCP+ packet.
func (s *service) serveV2(r *request, sess *protocols.Session, hs *hostState, f *flow, b []byte, now time.Time) []byte {
	h, err := parseV2(b, func(id uint32) (int, bool) {
		rs := f.sessions[id]
		if rs == nil || rs.v15 || rs.state != stateActive {
			return 0, false
		}
		return rs.keys.integLen, true
	})
	if err != nil {
		r.drop = "RMCP+: " + err.Error()
		return nil
	}
	switch h.typ() {
	case payloadOpenReq, payloadRAKP1, payloadRAKP3:
		if h.id != 0 || h.authentic() || h.encrypted() {
			r.kind, r.drop = "handshake", "handshake payload inside a session"
			return nil
		}
		switch h.typ() {
		case payloadOpenReq:
			return s.openSession(r, sess, hs, f, h.payload, now)
		case payloadRAKP1:
			return s.rakp1(r, sess, hs, f, h.payload, now)
		default:
			return s.rakp3(r, sess, hs, f, h.payload, now)
		}
	case payloadIPMI:
		if h.sessionless() {
			if h.authentic() || h.encrypted() {
				r.drop = "session-less message with integrity or confidentiality"
				return nil
			}
			out := s.sessionless(r, sess, hs, nil, h.payload)
			if out == nil {
				return nil
			}
			return appendV2(nil, payloadIPMI, 0, 0, out, nil)
		}
		return s.inSession(r, sess, hs, f, &h, now)
	case payloadSOL:
		r.kind, r.drop = "sol", "SOL payload not activated"
		return nil
	}
	r.drop = "payload type not served"
	return nil
}

// inSession checks and opens a message of an active session and answers it.
func (s *service) inSession(r *request, sess *protocols.Session, hs *hostState, f *flow, h *v2Session, now time.Time) []byte {
	rs := f.sessions[h.id]
	if rs == nil || rs.v15 || rs.state != stateActive {
		r.drop = "no such session"
		r.add(protocols.F("session", h.id))
		return nil
	}
	r.add(protocols.F("session", rs.bmcID), protocols.F("user", string(rs.name)))
	if (rs.suite.integ != integNone) != h.authentic() {
		r.drop = "integrity expected but absent, or absent but present"
		r.must = true
		return nil
	}
	if h.authentic() && !rs.keys.verify(h.signed, h.authCode) {
		r.drop = "bad integrity code"
		r.must = true
		return nil
	}
	if (rs.suite.conf != confNone) != h.encrypted() {
		r.drop = "confidentiality expected but absent, or absent but present"
		r.must = true
		return nil
	}
	if !rs.win.accept(h.seq) {
		r.drop = "sequence number replayed or outside the window"
		r.must = true
		r.add(protocols.F("seq", h.seq))
		return nil
	}
	payload := h.payload
	if h.encrypted() {
		if payload = rs.keys.decrypt(payload); payload == nil {
			r.drop = "payload does not decrypt"
			r.must = true
			return nil
		}
	}
	rs.last = now
	msg, err := parseLANRequest(payload)
	if err != nil {
		r.drop = "IPMI message: " + err.Error()
		return nil
	}
	c := cmdCtx{s: s, sess: sess, hs: hs, f: f, rs: rs, now: now, r: r}
	cc, data := c.run(&msg)
	out := appendLANResponse(nil, &msg, cc, data)
	rs.commands++
	if rs.keys.block != nil {
		out = rs.keys.encrypt(out, randRead)
	}
	rs.outSeq++
	if rs.outSeq == 0 {
		rs.outSeq = 1
	}
	pt := byte(payloadIPMI)
	var sign func(dst, signed []byte) []byte
	if rs.keys.integ != nil {
		pt |= payloadAuthentic
		sign = rs.keys.sign
	}
	if rs.keys.block != nil {
		pt |= payloadEncrypted
	}
	resp := appendV2(nil, pt, rs.consoleID, rs.outSeq, out, sign)
	if c.closeAfter {
		s.removeLocked(sess, hs, f, rs, "closed by the client")
	}
	return resp
}

// sessionless answers the commands a BMC takes outside a session; it drops the others.
func (s *service) sessionless(r *request, sess *protocols.Session, hs *hostState, f *flow, b []byte) []byte {
	msg, err := parseLANRequest(b)
	if err != nil {
		r.drop = "IPMI message: " + err.Error()
		return nil
	}
	c := cmdCtx{s: s, sess: sess, hs: hs, f: f, r: r, now: time.Now()}
	cmd, ok := commands[uint16(msg.netFn)<<8|uint16(msg.cmd)]
	if !ok || cmd.priv != 0 || msg.netFn&1 != 0 {
		r.kind = "sessionless"
		r.drop = "command needs a session"
		r.add(protocols.F("netfn", msg.netFn), protocols.F("cmd", msg.cmd))
		return nil
	}
	cc, data := c.run(&msg)
	return appendLANResponse(nil, &msg, cc, data)
}

// removeLocked ends an RMCP+ session and releases its slots.
func (s *service) removeLocked(sess *protocols.Session, hs *hostState, f *flow, rs *rsession, why string) {
	if _, ok := f.sessions[rs.bmcID]; !ok {
		return
	}
	delete(f.sessions, rs.bmcID)
	hs.mu.Lock()
	hs.sessions--
	hs.mu.Unlock()
	s.counts.release(srcKey(sess))
	if rs.state == stateRAKP2 {
		// The client took RAKP 2 and went: it could not verify the HMAC with its password,
		// or it came only for the hash (ipmi_dumphashes and the like).
		sess.Emit("auth", nil, nil, protocols.F("user", string(rs.name)), protocols.F("user_known", true),
			protocols.F("password_ok", false), protocols.F("result", "abandoned after RAKP 2"),
			protocols.F("hash_disclosed", rs.suite.auth != authRAKPNone), protocols.F("cipher_suite", rs.suite.id))
	}
	if rs.state == stateActive {
		sess.Emit("session_close", nil, nil, protocols.F("session", rs.bmcID), protocols.F("user", string(rs.name)),
			protocols.F("reason", why), protocols.F("commands", rs.commands))
	}
}

// expireLocked ends the flow's sessions idle longer than the session timeout.
func (s *service) expireLocked(sess *protocols.Session, hs *hostState, f *flow, now time.Time) {
	for _, rs := range f.sessions {
		limit := s.cfg.timeout
		if rs.state != stateActive {
			limit = min(limit, handshakeTimeout)
		}
		if now.Sub(rs.last) > limit {
			s.removeLocked(sess, hs, f, rs, "timeout")
		}
	}
}

func srcKey(sess *protocols.Session) [16]byte { return sess.Remote.Addr().As16() }

func randRead(b []byte) { _, _ = rand.Read(b) }

func le32(b []byte) uint32 { return binary.LittleEndian.Uint32(b) }
