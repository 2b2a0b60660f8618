package snmp

import (
	"bytes"
	"encoding/binary"
	"time"

	"github.com/icsnare/icsnare/protocols"
)

// timeWindow is the USM time window in seconds (RFC 3414 3.2 step 7).
const timeWindow = 150

// serveV3 runs the USM checks of RFC 3414 3.2 and answers the PDU, or a REPORT.
func (s *service) serveV3(st *reqState, hs *hostState, sess *protocols.Session, req []byte, now time.Time) []byte {
	m := &st.m
	in := &st.info
	in.version, in.userKey, in.principal = "v3", "user", m.usm.user
	if m.secModel != 3 {
		in.dropped = "unknown security model"
		return nil
	}
	if m.flags&flagPriv != 0 && m.flags&flagAuth == 0 {
		in.dropped = "invalid msgFlags"
		return nil
	}
	if !bytes.Equal(m.usm.engineID, hs.engineID) {
		return s.report(st, hs, nil, usmUnknownEngineIDs, now)
	}
	u := s.cfg.users[string(m.usm.user)]
	if u == nil {
		return s.report(st, hs, nil, usmUnknownUserNames, now)
	}
	wantAuth, wantPriv := m.flags&flagAuth != 0, m.flags&flagPriv != 0
	if wantAuth != (u.auth != nil) || (wantPriv && u.priv == privNone) {
		return s.report(st, hs, nil, usmUnsupportedSecLevels, now)
	}
	var keys *localKeys
	if wantAuth {
		keys = hs.localKeys(u)
		if !u.verify(keys.auth, req, m.authOffset, m.usm.authParams) {
			return s.report(st, hs, nil, usmWrongDigests, now)
		}
		et := hs.engineTime(now)
		if d := int64(m.usm.time) - int64(et); m.usm.boots != hs.boots || d > timeWindow || d < -timeWindow {
			return s.report(st, hs, u, usmNotInTimeWindows, now)
		}
	}
	if wantPriv {
		plain, err := u.decrypt(keys.priv, m.usm.boots, m.usm.time, m.usm.privParams, m.encrypted)
		if err != nil || decodeScoped(plain, m) != nil {
			return s.report(st, hs, nil, usmDecryptionErrors, now)
		}
	} else if m.encrypted != nil {
		in.dropped = "malformed"
		return nil
	}
	p := &m.pdu
	in.class = classOf(p.typ)
	if in.class < 0 {
		in.dropped = "not a request"
		return nil
	}
	if !s.lim.allow(in.class, sess.Remote.Addr()) {
		in.evaded = true
		return nil
	}
	limit := min(int(m.maxSize), st.maxMsg)
	overhead := 64 + 2*len(hs.engineID) + len(m.usm.user) + len(m.ctxEngine) + len(m.ctxName) + 16
	if u.auth != nil {
		overhead += u.auth.macLen
	}
	es, ei, ok := s.process(st, hs, sess.Host, p, u.canWrite, false, limit-overhead, now)
	if !ok {
		hs.inc(snmpInASNParseErrs)
		in.dropped = "malformed"
		return nil
	}
	in.errStatus = es
	out := s.respondV3(st, hs, u, keys, pduResponse, p.reqID, es, ei, now)
	if len(out) > limit {
		st.vbs = st.vbs[:0]
		in.errStatus = errTooBig
		hs.inc(snmpOutTooBigs)
		out = s.respondV3(st, hs, u, keys, pduResponse, p.reqID, errTooBig, 0, now)
		if len(out) > limit {
			hs.inc(snmpSilentDrops)
			in.dropped = "too big"
			return nil
		}
	}
	hs.inc(snmpOutGetResponses)
	return out
}

// respondV3 encodes a v3 message at the request's security level carrying st.vbs.
func (s *service) respondV3(st *reqState, hs *hostState, u *user, keys *localKeys, typ byte, reqID int32, es, ei int, now time.Time) []byte {
	m := &st.m
	ctxEngine := m.ctxEngine
	if len(ctxEngine) == 0 {
		ctxEngine = hs.engineID
	}
	st.scoped = appendScoped(st.scoped[:0], ctxEngine, m.ctxName, typ, reqID, es, ei, st.vbs)
	h := v3Header{msgID: m.msgID, maxSize: int32(s.cfg.maxMsg), flags: m.flags & (flagAuth | flagPriv),
		engineID: hs.engineID, boots: hs.boots, time: hs.engineTime(now), user: m.usm.user}
	data := st.scoped
	if u != nil && u.auth != nil && m.flags&flagAuth != 0 {
		h.authLen = u.auth.macLen
	}
	if u != nil && u.priv != privNone && m.flags&flagPriv != 0 {
		salt := make([]byte, 8)
		n := hs.salt.Add(1)
		if u.priv == privDES {
			binary.BigEndian.PutUint32(salt, uint32(hs.boots))
			binary.BigEndian.PutUint32(salt[4:], uint32(n))
		} else {
			binary.BigEndian.PutUint64(salt, n)
		}
		h.privSalt = salt
		enc := u.encrypt(keys.priv, h.boots, h.time, salt, st.scoped)
		st.tmp = appendOctets(st.tmp[:0], tagOctetString, enc)
		data = st.tmp
	}
	out, off := appendV3Message(st.out[:0], &h, data)
	st.out = out
	if off >= 0 {
		copy(out[off:], u.mac(keys.auth, out, off))
	}
	return out
}

// report counts a USM failure and answers it with a REPORT PDU when the message asked for
// one. Only usmStatsNotInTimeWindows is authenticated (u set), so the manager can resync.
func (s *service) report(st *reqState, hs *hostState, u *user, stat int, now time.Time) []byte {
	m := &st.m
	st.info.report = stat
	n := hs.usm[stat].Add(1)
	if m.flags&flagReportable == 0 {
		return nil
	}
	st.val = appendUint(st.val[:0], tagCounter32, uint64(n))
	st.vbs = appendVB(st.vbs[:0], usmStatsOID[stat], st.val)
	// The report's scoped PDU is in plaintext, at noAuthNoPriv or authNoPriv.
	saved := m.flags
	m.flags &^= flagPriv
	if u == nil {
		m.flags &^= flagAuth
	}
	ctx := m.ctxEngine
	m.ctxEngine = hs.engineID
	var keys *localKeys
	if u != nil {
		keys = hs.localKeys(u)
	}
	out := s.respondV3(st, hs, u, keys, pduReport, m.pdu.reqID, 0, 0, now)
	m.flags, m.ctxEngine = saved, ctx
	return out
}

var usmStatsOID = func() (o [7][]byte) {
	for i := 1; i < len(o); i++ {
		o[i] = usmStatsOIDTLV(i)
	}
	return o
}()
