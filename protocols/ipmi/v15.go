package ipmi

import (
	"bytes"
	"crypto/md5"
	"crypto/subtle"
	"encoding/binary"
	"time"

	"github.com/icsnare/icsnare/protocols"
)

// IPMI v1.5 sessions (IPMI v2.0 §6.12, §22.15–22.17): Get Session Challenge, Activate
// Session with a challenge-response of the chosen authentication type, then messages with
// per-message authentication codes. They are off unless the profile lists auth_types.

const (
	activateSessionLen = 22 // auth type, privilege, challenge, initial outbound sequence
	ccInvalidUserName  = 0x81
	ccNullUserName     = 0x82
	ccPrivLimit        = 0x86 // Activate Session: above the user's or channel's limit
)

// v15AuthBits maps the enabled v1.5 authentication types to their capability bits.
func (c *config) v15AuthBits() byte {
	var b byte
	for _, t := range c.v15Auth {
		b |= 1 << t
	}
	return b
}

func (c *config) v15Enabled(t byte) bool {
	for _, e := range c.v15Auth {
		if e == t {
			return true
		}
	}
	return false
}

var v15AuthNames = map[byte]string{authNone: "none", authMD5: "md5", authPassword: "password"}

// authCode computes a v1.5 authentication code (IPMI v2.0 §22.17.1).
func authCode(t byte, password []byte, id uint32, msg []byte, seq uint32) []byte {
	var pw [16]byte
	copy(pw[:], password)
	switch t {
	case authPassword:
		return pw[:]
	case authMD5:
		h := md5.New()
		h.Write(pw[:])
		h.Write(binary.LittleEndian.AppendUint32(nil, id))
		h.Write(msg)
		h.Write(binary.LittleEndian.AppendUint32(nil, seq))
		h.Write(pw[:])
		return h.Sum(nil)
	}
	return nil
}

// appendV15 appends an IPMI v1.5 session packet carrying msg.
func appendV15(b []byte, t byte, id, seq uint32, code, msg []byte) []byte {
	b = appendRMCP(b, rmcpNoAck, rmcpClassIPMI)
	b = append(b, t)
	b = binary.LittleEndian.AppendUint32(b, seq)
	b = binary.LittleEndian.AppendUint32(b, id)
	if t != authNone {
		b = append(b, code...)
	}
	b = append(b, byte(len(msg)))
	return append(b, msg...)
}

// getSessionChallenge starts a v1.5 session: it draws the temporary session id (kept as the
// session's id) and the challenge the console must answer.
func (c *cmdCtx) getSessionChallenge(d []byte) (byte, []byte) {
	t := d[0] & 0x0F
	name := bytes.TrimRight(d[1:], "\x00")
	c.r.must = true
	c.r.add(protocols.F("auth_type", v15AuthNames[t]), protocols.F("user", string(name)))
	if !c.s.cfg.v15Enabled(t) || c.f == nil {
		return ccInvalidField, nil
	}
	if len(name) == 0 {
		return ccNullUserName, nil
	}
	u, known := c.hs.lookupUser(name)
	c.r.add(protocols.F("user_known", known))
	if !known || !u.active || u.priv == privNoAccess {
		c.sess.Emit("auth", nil, nil, protocols.F("user", string(name)), protocols.F("user_known", known),
			protocols.F("password_ok", false), protocols.F("result", "invalid user name (IPMI v1.5)"),
			protocols.F("auth_type", v15AuthNames[t]))
		return ccInvalidUserName, nil
	}
	if !c.s.admit(c.sess, c.hs, c.f) {
		// Get Session Challenge has no code for a full session table; BMCs answer 81h.
		return ccInvalidUserName, nil
	}
	rs := &rsession{bmcID: c.s.newSessionID(c.f), v15: true, v15Auth: t, state: stateOpened, user: u,
		name: append([]byte(nil), name...), last: c.now}
	randRead(rs.rc[:])
	c.f.sessions[rs.bmcID] = rs
	return ccOK, append(binary.LittleEndian.AppendUint32(nil, rs.bmcID), rs.rc[:]...)
}

// serveV15Session answers a v1.5 packet that names a session.
func (s *service) serveV15Session(r *request, sess *protocols.Session, hs *hostState, f *flow, h v15Session, msg []byte, now time.Time) []byte {
	rs := f.sessions[h.id]
	if rs == nil || !rs.v15 || h.authType != rs.v15Auth {
		r.drop = "no such IPMI v1.5 session"
		r.add(protocols.F("session", h.id))
		return nil
	}
	r.add(protocols.F("session", rs.bmcID), protocols.F("user", string(rs.name)))
	if rs.v15Auth != authNone && subtle.ConstantTimeCompare(h.authCode, authCode(rs.v15Auth, rs.user.password, h.id, msg, h.seq)) != 1 {
		r.must, r.drop = true, "bad authentication code"
		if rs.state == stateOpened {
			r.kind = "activate_session"
			r.add(protocols.F("password_ok", false))
			sess.Emit("auth", nil, nil, protocols.F("user", string(rs.name)), protocols.F("user_known", true),
				protocols.F("password_ok", false), protocols.F("result", "wrong password (IPMI v1.5)"),
				protocols.F("auth_type", v15AuthNames[rs.v15Auth]))
			s.removeLocked(sess, hs, f, rs, "bad Activate Session")
		}
		return nil
	}
	m, err := parseLANRequest(msg)
	if err != nil {
		r.drop = "IPMI message: " + err.Error()
		return nil
	}
	if rs.state == stateOpened {
		return s.activateSession(r, sess, hs, f, rs, &m, now)
	}
	if !rs.win.accept(h.seq) {
		r.must, r.drop = true, "sequence number replayed or outside the window"
		r.add(protocols.F("seq", h.seq))
		return nil
	}
	rs.last = now
	c := cmdCtx{s: s, sess: sess, hs: hs, f: f, rs: rs, now: now, r: r}
	cc, data := c.run(&m)
	out := appendLANResponse(nil, &m, cc, data)
	rs.commands++
	seq := rs.outSeq
	rs.outSeq++
	resp := appendV15(nil, rs.v15Auth, rs.bmcID, seq, authCode(rs.v15Auth, rs.user.password, rs.bmcID, out, seq), out)
	if c.closeAfter {
		s.removeLocked(sess, hs, f, rs, "closed by the client")
	}
	return resp
}

// activateSession answers Activate Session, whose authentication code has just proved the
// password.
func (s *service) activateSession(r *request, sess *protocols.Session, hs *hostState, f *flow, rs *rsession, m *lanRequest, now time.Time) []byte {
	r.kind, r.must = "activate_session", true
	r.add(protocols.F("netfn", m.netFn), protocols.F("cmd", m.cmd))
	if m.netFn != netFnApp || m.cmd != 0x3A {
		r.drop = "a challenged session takes only Activate Session"
		return nil
	}
	cc, data := byte(ccOK), []byte(nil)
	d := m.data
	switch {
	case len(d) != activateSessionLen:
		cc = ccBadLength
	case d[0]&0x0F != rs.v15Auth || !bytes.Equal(d[2:18], rs.rc[:]):
		cc = ccInvalidField
	case d[1]&0x0F < privCallback || d[1]&0x0F > privOEM:
		cc = ccInvalidField
	case d[1]&0x0F > rs.user.priv:
		cc = ccPrivLimit
	}
	r.add(protocols.F("completion_code", cc))
	if cc != ccOK {
		r.failed = true
		out := appendLANResponse(nil, m, cc, nil)
		resp := appendV15(nil, rs.v15Auth, rs.bmcID, 0, authCode(rs.v15Auth, rs.user.password, rs.bmcID, out, 0), out)
		s.removeLocked(sess, hs, f, rs, "Activate Session refused")
		return resp
	}
	rs.limit = d[1] & 0x0F
	rs.priv = min(privUser, rs.limit)
	rs.outSeq = le32(d[18:])
	var in [4]byte
	randRead(in[:])
	inSeq := le32(in[:])&0x3FFFFFFF | 0x100
	rs.win = window{high: inSeq - 1}
	rs.state, rs.last, rs.handle = stateActive, now, hs.nextHandle()
	sess.Verify() // it echoed the challenge this BMC drew
	data = []byte{rs.v15Auth}
	data = binary.LittleEndian.AppendUint32(data, rs.bmcID)
	data = binary.LittleEndian.AppendUint32(data, inSeq)
	data = append(data, rs.limit)
	checked := rs.v15Auth != authNone
	r.add(protocols.F("password_ok", checked), protocols.F("privilege_limit", rs.limit))
	result := "session established (IPMI v1.5)"
	if !checked {
		result = "session established without a password (IPMI v1.5 auth type none)"
	}
	sess.Emit("auth", nil, nil, protocols.F("user", string(rs.name)), protocols.F("user_known", true),
		protocols.F("password_ok", checked), protocols.F("result", result), protocols.F("auth_type", v15AuthNames[rs.v15Auth]))
	sess.Emit("session_open", nil, nil, protocols.F("session", rs.bmcID), protocols.F("user", string(rs.name)),
		protocols.F("auth_type", v15AuthNames[rs.v15Auth]), protocols.F("privilege_limit", rs.limit))
	out := appendLANResponse(nil, m, cc, data)
	return appendV15(nil, rs.v15Auth, rs.bmcID, 0, authCode(rs.v15Auth, rs.user.password, rs.bmcID, out, 0), out)
}
