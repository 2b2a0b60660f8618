// Package snmp is an SNMP v1/v2c/v3 agent (command responder) configured from Conpot's
// snmp.xml: MIB objects resolved through gosmi and backed by the host databus, community
// and USM access, per-host engine identity and counters, tarpit and evasion limits.
package snmp

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/icsnare/icsnare/protocols"
)

// Port is SNMP's standard agent port.
const Port = 161

// maxPendingTarpit bounds the replies waiting in a tarpit; requests beyond it are dropped.
const maxPendingTarpit = 1 << 14

// service is the agent for one profile; it serves every host of that profile.
type service struct {
	cfg     *config
	tree    *tree
	lim     *limiter
	pending atomic.Int64
	pool    sync.Pool
}

// Endpoints implements protocols.Service.
func (s *service) Endpoints() []protocols.Endpoint {
	return []protocols.Endpoint{{Transport: protocols.UDP, Port: Port}}
}

// reqState is the scratch memory of one request.
type reqState struct {
	m      message
	oid    []uint32
	inst   []uint32 // the host's address as an instance (tree.hostAddr objects)
	cur    []int
	vbs    []byte
	val    []byte
	tmp    []byte
	scoped []byte
	out    []byte
	info   info
	maxMsg int // the largest answer this request may get (the sensor's amplification bound)
}

// info collects what the request's event reports.
type info struct {
	version   string
	userKey   string // "community" or "user"
	principal []byte
	class     int
	errStatus int
	dropped   string
	report    int
	evaded    bool
	tarpit    time.Duration
}

// RepliesPromptly implements protocols.PromptReplier: the answer goes out before
// ServePacket returns unless a tarpit delays some class of request.
func (s *service) RepliesPromptly() bool {
	for _, tp := range s.cfg.tarpit {
		if tp.hi > 0 {
			return false
		}
	}
	return true
}

// ServePacket implements protocols.PacketService.
func (s *service) ServePacket(ctx context.Context, sess *protocols.Session, req []byte, reply func([]byte)) {
	hs := s.host(sess.Host)
	hs.inc(snmpInPkts)
	st := s.pool.Get().(*reqState)
	defer s.pool.Put(st)
	st.info = info{class: -1}
	now := sess.RequestTime() // the datagram's arrival, as the sensor marked it
	resp := s.handle(st, hs, sess, req, now)
	in := &st.info
	s.count(sess, in)
	if resp == nil {
		s.emit(sess, st, req, nil)
		return
	}
	hs.inc(snmpOutPkts)
	if in.class >= 0 {
		if tp := s.cfg.tarpit[in.class]; tp.hi > 0 {
			d := tp.lo
			if tp.hi > tp.lo {
				d += rand.N(tp.hi - tp.lo)
			}
			in.tarpit = d
			if s.pending.Add(1) > maxPendingTarpit {
				s.pending.Add(-1)
				in.dropped = "tarpit full"
				s.emit(sess, st, req, nil)
				return
			}
			out := append([]byte(nil), resp...)
			time.AfterFunc(d, func() {
				defer s.pending.Add(-1)
				if ctx.Err() == nil {
					reply(out)
				}
			})
			s.emit(sess, st, req, resp)
			return
		}
	}
	reply(resp)
	s.emit(sess, st, req, resp)
}

// handle decodes and answers one message; nil means no reply.
func (s *service) handle(st *reqState, hs *hostState, sess *protocols.Session, req []byte, now time.Time) []byte {
	m := &st.m
	// A GETBULK answer shrinks to fit (RFC 3416 §4.2.3) and a GET that cannot fit gets
	// tooBig, so the answer stays within the amplification bound for unverified sources.
	st.maxMsg = max(64, min(s.cfg.maxMsg, sess.MaxReply(len(req))))
	if err := decodeMessage(req, m); err != nil {
		if err == errVersion {
			hs.inc(snmpInBadVersions)
			st.info.dropped = "bad version"
		} else {
			hs.inc(snmpInASNParseErrs)
			st.info.dropped = "malformed"
		}
		return nil
	}
	switch m.version {
	case version1, version2c:
		return s.serveCommunity(st, hs, sess, now)
	}
	if s.cfg.noV3 {
		hs.inc(snmpInBadVersions)
		st.info.dropped = "bad version"
		return nil
	}
	return s.serveV3(st, hs, sess, req, now)
}

func (s *service) serveCommunity(st *reqState, hs *hostState, sess *protocols.Session, now time.Time) []byte {
	m := &st.m
	in := &st.info
	in.version = "v2c"
	if m.version == version1 {
		in.version = "v1"
	}
	in.userKey, in.principal = "community", m.community
	canWrite, ok := s.cfg.communities[string(m.community)]
	if !ok {
		hs.inc(snmpInBadCommunityNames)
		in.dropped = "bad community"
		return nil
	}
	p := &m.pdu
	in.class = classOf(p.typ)
	if in.class < 0 || (m.version == version1 && p.typ == pduGetBulk) {
		in.class = -1
		in.dropped = "not a request"
		return nil
	}
	if !s.lim.allow(in.class, sess.Remote.Addr()) {
		in.evaded = true
		return nil
	}
	es, ei, ok := s.process(st, hs, sess.Host, p, canWrite, m.version == version1, st.maxMsg-len(m.community)-32, now)
	if !ok {
		hs.inc(snmpInASNParseErrs)
		in.dropped = "malformed"
		return nil
	}
	in.errStatus = es
	st.out = appendCommunityMessage(st.out[:0], m.version, m.community, pduResponse, p.reqID, es, ei, st.vbs)
	if len(st.out) > st.maxMsg {
		st.vbs = st.vbs[:0]
		if m.version == version1 {
			for _, vb := range p.vbs {
				st.vbs = append(st.vbs, vb.raw...)
			}
		}
		in.errStatus = errTooBig
		hs.inc(snmpOutTooBigs)
		st.out = appendCommunityMessage(st.out[:0], m.version, m.community, pduResponse, p.reqID, errTooBig, 0, st.vbs)
		if len(st.out) > st.maxMsg {
			hs.inc(snmpSilentDrops)
			in.dropped = "too big"
			return nil
		}
	}
	hs.inc(snmpOutGetResponses)
	return st.out
}

// count records the request in the session metrics.
func (s *service) count(sess *protocols.Session, in *info) {
	kind := "other"
	switch {
	case in.report > 0:
		kind = "report"
	case in.dropped == "bad community":
		kind = "bad_community"
	case in.dropped == "malformed" || in.dropped == "bad version":
		kind = "malformed"
	case in.class >= 0:
		kind = classNames[in.class]
	}
	sess.Request(kind, in.dropped != "" || in.errStatus != 0 || in.evaded || in.report > 0)
}
