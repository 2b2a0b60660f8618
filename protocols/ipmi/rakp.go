package ipmi

import (
	"bytes"
	"crypto/hmac"
	"encoding/binary"
	"time"

	"github.com/icsnare/icsnare/protocols"
)

// RMCP+ status codes (IPMI v2.0 table 13-15).
const (
	rmcpOK                 = 0x00
	rmcpNoResources        = 0x01
	rmcpInvalidSession     = 0x02
	rmcpInvalidAuthAlg     = 0x04
	rmcpInvalidIntegAlg    = 0x05
	rmcpInvalidRole        = 0x09
	rmcpUnauthorizedRole   = 0x0A
	rmcpInvalidNameLen     = 0x0C
	rmcpUnauthorizedName   = 0x0D
	rmcpInvalidICV         = 0x0F
	rmcpInvalidConfAlg     = 0x10
	rmcpNoSuiteMatch       = 0x11
	rmcpIllegalParameter   = 0x12
	openSessionReqLen      = 32
	rakp1MinLen            = 28
	rakp3MinLen            = 8
	roleNameOnly           = 0x10 // RAKP 1: look the user up by name only
	roleMask               = 0x0F
	algorithmRecordLen     = 8
	maxHandshakeRetransmit = 512 // bytes of a request kept to recognise its retransmission
)

var statusNames = map[byte]string{
	rmcpOK: "ok", rmcpNoResources: "insufficient resources", rmcpInvalidSession: "invalid session id",
	rmcpInvalidAuthAlg: "invalid authentication algorithm", rmcpInvalidIntegAlg: "invalid integrity algorithm",
	rmcpInvalidRole: "invalid role", rmcpUnauthorizedRole: "unauthorized role", rmcpInvalidNameLen: "invalid name length",
	rmcpUnauthorizedName: "unauthorized name", rmcpInvalidICV: "invalid integrity check value",
	rmcpInvalidConfAlg: "invalid confidentiality algorithm", rmcpNoSuiteMatch: "no cipher suite match",
	rmcpIllegalParameter: "illegal parameter",
}

// retransmitted returns the stored answer when req repeats the handshake request last
// answered for rs.
func retransmitted(rs *rsession, req []byte) []byte {
	if rs.lastResp != nil && bytes.Equal(rs.lastReq, req) {
		return rs.lastResp
	}
	return nil
}

func remember(rs *rsession, req, resp []byte) []byte {
	if len(req) <= maxHandshakeRetransmit {
		rs.lastReq, rs.lastResp = append(rs.lastReq[:0], req...), resp
	}
	return resp
}

// openSession answers an RMCP+ Open Session Request (IPMI v2.0 §13.17).
func (s *service) openSession(r *request, sess *protocols.Session, hs *hostState, f *flow, p []byte, now time.Time) []byte {
	r.kind, r.must = "open_session", true
	if len(p) < openSessionReqLen {
		r.drop = "short Open Session Request"
		return nil
	}
	tag, reqPriv, consoleID := p[0], p[1]&roleMask, le32(p[4:])
	for _, rs := range f.sessions {
		if !rs.v15 && rs.consoleID == consoleID && rs.state == stateOpened {
			if resp := retransmitted(rs, p); resp != nil {
				r.add(protocols.F("retransmission", true))
				return resp
			}
		}
	}
	var alg [3]byte
	status := byte(rmcpOK)
	for i := range 3 {
		rec := p[8+i*algorithmRecordLen:]
		if rec[0] != byte(i) || (rec[3] != algorithmRecordLen && rec[3] != 0) {
			status = rmcpIllegalParameter
		}
		alg[i] = rec[4] & 0x3F
	}
	r.add(protocols.F("auth_alg", alg[0]), protocols.F("integrity_alg", alg[1]),
		protocols.F("confidentiality_alg", alg[2]), protocols.F("requested_privilege", reqPriv))
	var chosen suite
	if status == rmcpOK {
		chosen, status = s.negotiate(alg)
	}
	if status == rmcpOK && reqPriv > privOEM {
		status = rmcpInvalidRole
	}
	if status == rmcpOK && consoleID == 0 {
		status = rmcpInvalidSession
	}
	if status == rmcpOK && !s.admit(sess, hs, f) {
		status = rmcpNoResources
	}
	r.add(protocols.F("status", statusNames[status]))
	resp := []byte{tag, status, 0, 0}
	resp = binary.LittleEndian.AppendUint32(resp, consoleID)
	if status != rmcpOK {
		r.failed = true
		// Refusals still carry a (zero) managed system session id: nmap's ipmi-cipher-zero
		// reads 12 bytes and fails on fewer.
		resp = append(resp, 0, 0, 0, 0)
		return appendV2(nil, payloadOpenResp, 0, 0, resp, nil)
	}
	r.add(protocols.F("cipher_suite", chosen.id))
	rs := &rsession{bmcID: s.newSessionID(f), consoleID: consoleID, suite: chosen, state: stateOpened,
		reqPriv: reqPriv, last: now}
	f.sessions[rs.bmcID] = rs
	granted := reqPriv
	if granted == 0 {
		granted = privAdmin
	}
	resp[2] = granted
	resp = binary.LittleEndian.AppendUint32(resp, rs.bmcID)
	for i, a := range []byte{chosen.auth, chosen.integ, chosen.conf} {
		resp = append(resp, byte(i), 0, 0, algorithmRecordLen, a, 0, 0, 0)
	}
	r.add(protocols.F("session", rs.bmcID))
	return remember(rs, p, appendV2(nil, payloadOpenResp, 0, 0, resp, nil))
}

// authEvent reports how a RAKP exchange with a known user ended.
func (s *service) authEvent(sess *protocols.Session, rs *rsession, passwordOK bool, result string) {
	sess.Emit("auth", nil, nil, protocols.F("user", string(rs.name)), protocols.F("user_known", true),
		protocols.F("password_ok", passwordOK), protocols.F("result", result),
		protocols.F("hash_disclosed", rs.suite.auth != authRAKPNone), protocols.F("cipher_suite", rs.suite.id))
}

// negotiate finds the enabled cipher suite made of the proposed algorithms.
func (s *service) negotiate(alg [3]byte) (suite, byte) {
	var authOK, integOK, confOK bool
	for _, su := range s.cfg.suites {
		authOK = authOK || su.auth == alg[0]
		integOK = integOK || su.auth == alg[0] && su.integ == alg[1]
		confOK = confOK || su.conf == alg[2]
		if su.auth == alg[0] && su.integ == alg[1] && su.conf == alg[2] {
			return su, rmcpOK
		}
	}
	switch {
	case !authOK:
		return suite{}, rmcpInvalidAuthAlg
	case !integOK:
		return suite{}, rmcpInvalidIntegAlg
	case !confOK:
		return suite{}, rmcpInvalidConfAlg
	}
	return suite{}, rmcpNoSuiteMatch
}

// admit takes a session slot of the flow, the host and the source address.
func (s *service) admit(sess *protocols.Session, hs *hostState, f *flow) bool {
	if len(f.sessions) >= maxSessionsPerFlow {
		return false
	}
	hs.mu.Lock()
	if hs.sessions >= s.cfg.maxPerHost {
		hs.mu.Unlock()
		return false
	}
	hs.sessions++
	hs.mu.Unlock()
	if !s.counts.acquire(srcKey(sess)) {
		hs.mu.Lock()
		hs.sessions--
		hs.mu.Unlock()
		return false
	}
	return true
}

func (s *service) newSessionID(f *flow) uint32 {
	var b [4]byte
	for range 64 {
		randRead(b[:])
		id := le32(b[:])
		if _, dup := f.sessions[id]; id != 0 && !dup {
			return id
		}
	}
	for id := uint32(1); ; id++ { // unreachable in practice: 64 random draws all collided
		if _, dup := f.sessions[id]; !dup {
			return id
		}
	}
}

// rakp1 answers RAKP Message 1 with RAKP Message 2 (IPMI v2.0 §13.20, §13.21). For a known
// user RAKP 2 carries the HMAC keyed with the user's password, as every BMC must.
func (s *service) rakp1(r *request, sess *protocols.Session, hs *hostState, f *flow, p []byte, now time.Time) []byte {
	r.kind, r.must = "rakp1", true
	if len(p) < rakp1MinLen {
		r.drop = "short RAKP 1"
		return nil
	}
	tag, bmcID, role, nlen := p[0], le32(p[4:]), p[24], int(p[27])
	var name []byte
	if len(p) >= rakp1MinLen+min(nlen, maxNameLen) {
		name = p[rakp1MinLen : rakp1MinLen+min(nlen, maxNameLen)]
	}
	r.add(protocols.F("session", bmcID), protocols.F("user", string(name)), protocols.F("role", role&roleMask),
		protocols.F("name_only_lookup", role&roleNameOnly != 0))
	rs := f.sessions[bmcID]
	if rs != nil && rs.v15 {
		rs = nil // an IPMI v1.5 session has no RAKP
	}
	fail := func(status byte, consoleID uint32) []byte {
		r.failed = true
		r.add(protocols.F("status", statusNames[status]), protocols.F("hash_disclosed", false))
		resp := []byte{tag, status, 0, 0}
		resp = binary.LittleEndian.AppendUint32(resp, consoleID)
		if rs != nil {
			s.removeLocked(sess, hs, f, rs, "RAKP 1 refused")
		}
		return appendV2(nil, payloadRAKP2, 0, 0, resp, nil)
	}
	if rs == nil {
		return fail(rmcpInvalidSession, 0)
	}
	if rs.state == stateRAKP2 {
		if resp := retransmitted(rs, p); resp != nil {
			r.add(protocols.F("retransmission", true))
			return resp
		}
	}
	if rs.state != stateOpened {
		return fail(rmcpInvalidSession, rs.consoleID)
	}
	// The client echoed the session id this BMC drew: its source address is real.
	sess.Verify()
	r.add(protocols.F("cipher_suite", rs.suite.id))
	if nlen > maxNameLen || len(p) < rakp1MinLen+nlen {
		return fail(rmcpInvalidNameLen, rs.consoleID)
	}
	priv := role & roleMask
	if priv < privCallback || priv > privOEM {
		return fail(rmcpInvalidRole, rs.consoleID)
	}
	u, known := hs.lookupUser(name)
	if !known || !u.active {
		r.add(protocols.F("user_known", known))
		sess.Emit("auth", nil, nil, protocols.F("user", string(name)), protocols.F("user_known", known),
			protocols.F("user_active", u.active), protocols.F("password_ok", false),
			protocols.F("result", "unauthorized name"), protocols.F("hash_disclosed", false),
			protocols.F("cipher_suite", rs.suite.id))
		return fail(rmcpUnauthorizedName, rs.consoleID)
	}
	r.add(protocols.F("user_known", true))
	if u.priv == privNoAccess || priv > u.priv && role&roleNameOnly == 0 {
		return fail(rmcpUnauthorizedRole, rs.consoleID)
	}
	if rs.reqPriv != 0 && priv > rs.reqPriv {
		return fail(rmcpUnauthorizedRole, rs.consoleID)
	}
	rs.user, rs.role, rs.name = u, role, append([]byte(nil), name...)
	rs.limit = min(priv, u.priv)
	copy(rs.rc[:], p[8:24])
	randRead(rs.rm[:])
	rs.state, rs.last = stateRAKP2, now
	resp := []byte{tag, rmcpOK, 0, 0}
	resp = binary.LittleEndian.AppendUint32(resp, rs.consoleID)
	resp = append(resp, rs.rm[:]...)
	resp = append(resp, hs.guid[:]...)
	if h := authHash(rs.suite.auth); h != nil {
		var ids [8]byte
		binary.LittleEndian.PutUint32(ids[:], rs.consoleID)
		binary.LittleEndian.PutUint32(ids[4:], rs.bmcID)
		resp = append(resp, hmacSum(h, u.password, ids[:], rs.rc[:], rs.rm[:], hs.guid[:], []byte{role, byte(len(name))}, name)...)
	}
	r.add(protocols.F("status", "ok"), protocols.F("hash_disclosed", rs.suite.auth != authRAKPNone))
	return remember(rs, p, appendV2(nil, payloadRAKP2, 0, 0, resp, nil))
}

// rakp3 checks RAKP Message 3 and answers RAKP Message 4 (IPMI v2.0 §13.22, §13.23):
// the moment the BMC learns whether the client knew the password.
func (s *service) rakp3(r *request, sess *protocols.Session, hs *hostState, f *flow, p []byte, now time.Time) []byte {
	r.kind, r.must = "rakp3", true
	if len(p) < rakp3MinLen {
		r.drop = "short RAKP 3"
		return nil
	}
	tag, status, bmcID := p[0], p[1], le32(p[4:])
	r.add(protocols.F("session", bmcID))
	rs := f.sessions[bmcID]
	if rs != nil && rs.v15 {
		rs = nil
	}
	if rs != nil && rs.state == stateActive {
		if resp := retransmitted(rs, p); resp != nil {
			r.add(protocols.F("retransmission", true))
			return resp
		}
	}
	reply := func(st byte, icv []byte) []byte {
		resp := []byte{tag, st, 0, 0}
		var cid uint32
		if rs != nil {
			cid = rs.consoleID
		}
		resp = binary.LittleEndian.AppendUint32(resp, cid)
		return appendV2(nil, payloadRAKP4, 0, 0, append(resp, icv...), nil)
	}
	if rs == nil || rs.state != stateRAKP2 {
		r.failed = true
		r.add(protocols.F("status", statusNames[rmcpInvalidSession]))
		return reply(rmcpInvalidSession, nil)
	}
	r.add(protocols.F("user", string(rs.name)), protocols.F("cipher_suite", rs.suite.id))
	if status != rmcpOK {
		// The client found RAKP 2's HMAC wrong: its password is not the user's.
		r.failed = true
		r.add(protocols.F("password_ok", false), protocols.F("client_status", statusNames[status]))
		r.drop = "client aborted the handshake"
		s.authEvent(sess, rs, false, "client rejected RAKP 2")
		rs.state = stateOpened // reported here, not again on removal
		s.removeLocked(sess, hs, f, rs, "handshake aborted")
		return nil
	}
	h := authHash(rs.suite.auth)
	if h != nil {
		var sid [4]byte
		binary.LittleEndian.PutUint32(sid[:], rs.consoleID)
		want := hmacSum(h, rs.user.password, rs.rm[:], sid[:], []byte{rs.role, byte(len(rs.name))}, rs.name)
		if !hmac.Equal(want, p[8:]) {
			r.failed = true
			r.add(protocols.F("password_ok", false), protocols.F("status", statusNames[rmcpInvalidICV]))
			s.authEvent(sess, rs, false, "wrong password in RAKP 3")
			rs.state = stateOpened
			s.removeLocked(sess, hs, f, rs, "bad RAKP 3")
			return reply(rmcpInvalidICV, nil)
		}
	}
	k, err := deriveKeys(rs.suite, rs.user.password, rs.rc[:], rs.rm[:], rs.role, rs.name)
	if err != nil {
		r.drop = "key derivation: " + err.Error()
		s.removeLocked(sess, hs, f, rs, "key derivation failed")
		return nil
	}
	rs.keys, rs.state, rs.last = k, stateActive, now
	rs.handle = hs.nextHandle()
	rs.priv = min(privUser, rs.limit)
	var icv []byte
	if h != nil {
		var sid [4]byte
		binary.LittleEndian.PutUint32(sid[:], rs.bmcID)
		icv = hmacSum(h, k.sik, rs.rc[:], sid[:], hs.guid[:])[:rakp4Len(rs.suite.auth)]
	}
	r.add(protocols.F("privilege_limit", rs.limit), protocols.F("status", "ok"))
	if h != nil {
		r.add(protocols.F("password_ok", true))
		s.authEvent(sess, rs, true, "session established")
	} else {
		// Cipher suite 0 checks no password at all: whoever names a user gets in.
		r.add(protocols.F("password_checked", false))
		s.authEvent(sess, rs, false, "session established without a password (cipher suite 0)")
	}
	sess.Emit("session_open", nil, nil, protocols.F("session", rs.bmcID), protocols.F("user", string(rs.name)),
		protocols.F("cipher_suite", rs.suite.id), protocols.F("privilege_limit", rs.limit))
	return remember(rs, p, reply(rmcpOK, icv))
}
