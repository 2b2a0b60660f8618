package bacnet

import (
	"context"
	"encoding/hex"
	"errors"
	"net/netip"
	"sync"
	"time"

	"github.com/icsnare/icsnare/protocols"
)

// Bounds of one request.
const (
	maxRPMObjects    = 256  // read access specifications in one ReadPropertyMultiple
	maxRPMProperties = 4096 // property results in one ReadPropertyMultiple answer
	maxAnswer        = maxSegments * ourMaxAPDU
	maxIHave         = 8 // I-Have answers to one Who-Has
)

// service serves one profile's BACnet/IP devices.
type service struct {
	cfg   *config
	types [numObjectTypesBitLen]bool // protocol-object-types-supported
	held  held                       // octets of segmented requests in reassembly
}

func newService(c *config) *service {
	sv := &service{cfg: c}
	sv.types[objDevice] = true
	for _, o := range c.objects {
		if int(o.id.typ) < len(sv.types) {
			sv.types[o.id.typ] = true
		}
	}
	return sv
}

// Endpoints implements protocols.Service.
func (sv *service) Endpoints() []protocols.Endpoint {
	return []protocols.Endpoint{{Transport: protocols.UDP, Port: Port}}
}

// RepliesPromptly implements protocols.PromptReplier: answers go out while ServePacket
// runs; segment retransmissions and COV notifications go through Session.Send.
func (sv *service) RepliesPromptly() bool { return true }

// ServePacket implements protocols.PacketService.
func (sv *service) ServePacket(ctx context.Context, s *protocols.Session, req []byte, reply func([]byte)) {
	sv.serve(ctx, s, req, reply, false)
}

// ServeBroadcast implements protocols.BroadcastService: a datagram sent to the prefix's
// broadcast address. Only unconfirmed requests (Who-Is, Who-Has, time synchronisation) are
// served; the answers go to the requester, from this host's address.
func (sv *service) ServeBroadcast(ctx context.Context, s *protocols.Session, to netip.Addr, req []byte, reply func([]byte)) {
	sv.serve(ctx, s, req, reply, true)
}

// exchange collects what one request did, for its event. Exchanges are pooled with their
// buffers: a request that volume control summarises allocates nothing for its event.
type exchange struct {
	reqLen int
	kind   string
	failed bool
	fields []protocols.Field
	out    []byte // the first answer datagram (a copy in outBuf); nil: none
	outBuf []byte
	// object is the object the request named, rendered into the event's fields at objAt
	// only when the event is kept.
	object    objectID
	hasObject bool
	objAt     int

	st     *hostState   // the host's state, once handle looked it up
	reply  func([]byte) // the sensor's, for this request
	send   func([]byte) // x.answer, bound once
	data   []byte       // scratch: a ComplexACK's service data
	apdu   []byte       // scratch: an answer's APDU
	framed []byte       // scratch: an answer's APDU and its framing
}

func (x *exchange) add(k string, v any) { x.fields = append(x.fields, protocols.F(k, v)) }

// addObject records the object a request named, for the event's "object" field.
func (x *exchange) addObject(oid objectID) {
	x.object, x.hasObject, x.objAt = oid, true, len(x.fields)
}

// answer sends one answer datagram, keeping a copy of the first for the event.
func (x *exchange) answer(b []byte) {
	if x.out == nil {
		x.outBuf = append(x.outBuf[:0], b...)
		x.out = x.outBuf
	}
	x.reply(b)
}

// maxPooledBuf bounds the scratch an exchange keeps when it goes back to the pool.
const maxPooledBuf = 4 << 10

var exchangePool = sync.Pool{New: func() any {
	x := &exchange{}
	x.send = x.answer
	return x
}}

func (sv *service) serve(ctx context.Context, s *protocols.Session, req []byte, reply func([]byte), broadcast bool) {
	x := exchangePool.Get().(*exchange)
	defer x.release()
	x.reqLen, x.reply = len(req), reply
	sv.handle(ctx, s, req, x.send, broadcast, x)
	if x.kind == "" {
		x.kind = "ignored"
	}
	if broadcast {
		x.add("broadcast", true)
	}
	// The request is counted, and volume control decides on the service (it keeps writes
	// and state changes): the fields are built only for an event it keeps.
	if s.RequestSkip(x.kind, x.failed, "request", req, x.out, protocols.F("service", x.kind)) {
		return
	}
	fields := make([]protocols.Field, 0, len(x.fields)+2)
	fields = append(fields, protocols.F("service", x.kind))
	for i, f := range x.fields {
		if x.hasObject && i == x.objAt {
			fields = append(fields, protocols.F("object", x.object.String()))
		}
		fields = append(fields, f)
	}
	if x.hasObject && x.objAt == len(x.fields) {
		fields = append(fields, protocols.F("object", x.object.String()))
	}
	s.Emit("request", req, x.out, fields...)
}

// release resets x and returns it to the pool.
func (x *exchange) release() {
	clear(x.fields)
	*x = exchange{fields: x.fields[:0], send: x.send, outBuf: keepBuf(x.outBuf), data: keepBuf(x.data), apdu: keepBuf(x.apdu), framed: keepBuf(x.framed)}
	exchangePool.Put(x)
}

// keepBuf returns b emptied for reuse, or nil when it is too large to pool.
func keepBuf(b []byte) []byte {
	if cap(b) > maxPooledBuf {
		return nil
	}
	return b[:0]
}

func (sv *service) handle(ctx context.Context, s *protocols.Session, req []byte, reply func([]byte), broadcast bool, x *exchange) {
	m, err := decodeMessage(req)
	if err != nil {
		x.kind, x.failed = "invalid", true
		x.add("error", err.Error())
		if errors.Is(err, errAPDU) && !broadcast {
			sv.rejectMalformed(&m, reply)
		}
		return
	}
	if code, ok := nakFor[m.bvlc.function]; ok {
		x.kind = "bvlc"
		x.add("bvlc_function", int(m.bvlc.function))
		if !broadcast {
			reply(bvlcResultFrame(code))
		}
		return
	}
	if !m.hasAPDU {
		x.kind = "bvlc"
		x.add("bvlc_function", int(m.bvlc.function))
		if m.npdu.networkMessage() {
			x.kind = "network"
			x.add("network_message", int(m.npdu.msgType))
		}
		return // a device that is not a router ignores network layer messages
	}
	if !m.npdu.forUs() {
		x.kind = "routed"
		x.add("dnet", int(m.npdu.dnet))
		return
	}
	a := &m.apdu
	x.st = sv.state(s.Host) // once per request: confirmed's view reuses it
	if why, ok := x.st.silenced(a, s.RequestTime()); ok {
		x.kind = serviceName(a.typ == pduConfirmed, a.service)
		if a.typ != pduConfirmed && a.typ != pduUnconfirmed {
			x.kind = "ignored"
		}
		x.add("silenced", why)
		return
	}
	switch a.typ {
	case pduConfirmed:
		x.kind = serviceName(true, a.service)
		x.add("invoke_id", int(a.invokeID))
		if broadcast {
			return
		}
		sv.confirmed(ctx, s, &m, reply, x)
	case pduUnconfirmed:
		x.kind = serviceName(false, a.service)
		sv.unconfirmed(s, &m, reply, x)
	case pduSegmentACK:
		x.kind = "segment-ack"
		x.add("invoke_id", int(a.invokeID))
		x.add("sequence", int(a.seq))
		if !broadcast {
			sv.segmentACK(s, a, len(req), reply)
		}
	case pduAbort:
		x.kind = "abort"
		x.add("invoke_id", int(a.invokeID))
		x.add("abort_reason", int(a.reason))
		sv.cancel(s, a.invokeID)
	default:
		x.kind = "ack"
		x.add("pdu_type", int(a.typ))
	}
}

// rejectMalformed answers a confirmed request whose header decoded but whose body did not.
func (sv *service) rejectMalformed(m *message, reply func([]byte)) {
	b := m.npdu.apdu
	if m.bvlc.function == 0 || len(b) < 3 || b[0]>>4 != pduConfirmed {
		return
	}
	reply(frame(&m.npdu, appendReject(nil, b[2], rejectInvalidTag)))
}

// confirmed serves a confirmed request.
func (sv *service) confirmed(ctx context.Context, s *protocols.Session, m *message, reply func([]byte), x *exchange) {
	a := &m.apdu
	answer := func(apdu []byte) { reply(frame(&m.npdu, apdu)) }
	if a.segmented() {
		if !sv.cfg.receives() {
			x.failed = true
			x.add("abort_reason", abortSegmentationNotSupport)
			answer(appendAbort(nil, a.invokeID, abortSegmentationNotSupport))
			return
		}
		data, done := sv.receiveSegment(s, m, reply, x)
		if !done {
			return
		}
		a.data = data
		a.flags &^= flagSEG | flagMOR
	}
	vv := sv.viewOf(x.st, s.Host, s.RequestTime())
	v := &vv
	var res result
	switch a.service {
	case svcReadProperty:
		res = sv.readProperty(v, a.data, x)
	case svcReadPropertyMultiple:
		res = sv.readPropertyMultiple(v, a.data, x)
	case svcWriteProperty:
		res = sv.writeProperty(v, a.data, x)
	case svcDeviceCommControl:
		res = sv.deviceCommunicationControl(v, a.data, x)
	case svcReinitializeDevice:
		res = sv.reinitializeDevice(v, a.data, x)
	case svcSubscribeCOV:
		res = sv.subscribeCOV(s, v, m, x)
	default:
		res = rejected(rejectUnrecognizedService)
	}
	switch res.typ {
	case pduSimpleACK:
		answer(appendSimpleACK(nil, a.invokeID, a.service))
		if a.service == svcSubscribeCOV {
			sv.covInitial(s, m, reply)
		}
	case pduComplexACK:
		sv.sendComplexACK(s, m, res.data, reply, x)
	case pduError:
		x.failed = true
		x.add("error_class", int(res.err.class))
		x.add("error_code", int(res.err.code))
		answer(appendErrorPDU(nil, a.invokeID, a.service, res.err.class, res.err.code))
	case pduReject:
		x.failed = true
		x.add("reject_reason", int(res.reason))
		answer(appendReject(nil, a.invokeID, res.reason))
	case pduAbort:
		x.failed = true
		x.add("abort_reason", int(res.reason))
		answer(appendAbort(nil, a.invokeID, res.reason))
	}
}

// result is the outcome of a confirmed service.
type result struct {
	typ    byte
	data   []byte // ComplexACK service data
	err    *bacError
	reason byte
}

func rejected(reason byte) result   { return result{typ: pduReject, reason: reason} }
func failed(e *bacError) result     { return result{typ: pduError, err: e} }
func complexACK(data []byte) result { return result{typ: pduComplexACK, data: data} }
func simpleACK() result             { return result{typ: pduSimpleACK} }
func rejectFor(err error) result {
	if errors.Is(err, errMissing) {
		return rejected(rejectMissingParameter)
	}
	return rejected(rejectInvalidTag)
}

// propertyRef reads the object identifier [0], property identifier [1] and optional array
// index [2] (-1 when absent) that ReadProperty and WriteProperty begin with; on bad input it
// returns the Reject to send and false.
func (r *reader) propertyRef() (oid objectID, prop uint32, idx int64, rej result, ok bool) {
	oid, err := r.ctxObjectID(0)
	if err != nil {
		return oid, 0, 0, rejectFor(err), false
	}
	if prop, err = r.ctxUnsigned(1); err != nil {
		return oid, 0, 0, rejectFor(err), false
	}
	idx = -1
	if i, present, err := r.optCtxUnsigned(2); err != nil {
		return oid, 0, 0, rejected(rejectInvalidTag), false
	} else if present {
		idx = int64(i)
	}
	return oid, prop, idx, result{}, true
}

func (sv *service) readProperty(v *view, data []byte, x *exchange) result {
	r := reader{b: data}
	oid, prop, idx, rej, ok := r.propertyRef()
	if !ok {
		return rej
	}
	if !r.done() {
		return rejected(rejectTooManyArguments)
	}
	x.addObject(oid)
	x.add("property", int(prop))
	if idx >= 0 {
		x.add("array_index", idx)
	}
	o := v.lookup(oid)
	if o == nil {
		return failed(errUnknownObject)
	}
	b := appendCtxObjectID(x.data[:0], 0, v.idOf(o))
	b = appendCtxUnsigned(b, 1, prop)
	if idx >= 0 {
		b = appendCtxUnsigned(b, 2, uint32(idx))
	}
	b = appendOpen(b, 3)
	b, e := v.readProperty(b, o, prop, idx)
	if e != nil {
		return failed(e)
	}
	b = appendClose(b, 3)
	x.data = b // scratch: sendComplexACK frames a copy
	return complexACK(b)
}

func (sv *service) readPropertyMultiple(v *view, data []byte, x *exchange) result {
	r := reader{b: data}
	var b []byte
	specs, results := 0, 0
	var objs []string
	if r.done() {
		return rejected(rejectMissingParameter)
	}
	for !r.done() {
		if specs++; specs > maxRPMObjects {
			return result{typ: pduAbort, reason: abortBufferOverflow}
		}
		oid, err := r.ctxObjectID(0)
		if err != nil {
			return rejectFor(err)
		}
		if err := r.expectOpen(1); err != nil {
			return rejectFor(err)
		}
		objs = append(objs, oid.String())
		o := v.lookup(oid)
		id := oid
		if o != nil {
			id = v.idOf(o)
		}
		b = appendCtxObjectID(b, 0, id)
		b = appendOpen(b, 1)
		refs := 0
		for {
			t, ok := r.peek()
			if !ok {
				return rejectFor(errMissing)
			}
			if t.close && t.num == 1 {
				r.next()
				break
			}
			prop, err := r.ctxUnsigned(0)
			if err != nil {
				return rejectFor(err)
			}
			idx := int64(-1)
			if i, ok, err := r.optCtxUnsigned(1); err != nil {
				return rejected(rejectInvalidTag)
			} else if ok {
				idx = int64(i)
			}
			refs++
			var props []uint32
			switch {
			case o == nil:
				props = []uint32{prop}
			case prop == propAll:
				props = allProperties(o)
			case prop == propRequired:
				props = append([]uint32{propObjectIdentifier, propObjectName, propObjectType}, o.required...)
				props = append(props, propPropertyList)
			case prop == propOptional:
				props = o.optional
			default:
				props = []uint32{prop}
			}
			special := prop == propAll || prop == propRequired || prop == propOptional
			for _, p := range props {
				if results++; results > maxRPMProperties || len(b) > maxAnswer {
					return result{typ: pduAbort, reason: abortBufferOverflow}
				}
				b = appendCtxUnsigned(b, 2, p)
				if idx >= 0 && !special {
					b = appendCtxUnsigned(b, 3, uint32(idx))
				}
				var e *bacError
				if o == nil {
					e = errUnknownObject
				} else {
					b = appendOpen(b, 4)
					var nb []byte
					if nb, e = v.readProperty(b, o, p, idx); e == nil {
						b = appendClose(nb, 4)
						continue
					}
					b = b[:len(b)-1] // drop the opening tag 4
				}
				b = appendOpen(b, 5)
				b = appendEnumerated(appendEnumerated(b, e.class), e.code)
				b = appendClose(b, 5)
			}
		}
		if refs == 0 {
			return rejected(rejectMissingParameter)
		}
		b = appendClose(b, 1)
	}
	x.add("objects", objs)
	return complexACK(b)
}

func (sv *service) writeProperty(v *view, data []byte, x *exchange) result {
	r := reader{b: data}
	oid, prop, idx, rej, ok := r.propertyRef()
	if !ok {
		return rej
	}
	if err := r.expectOpen(3); err != nil {
		return rejectFor(err)
	}
	value, err := r.enclosed(3)
	if err != nil {
		return rejectFor(err)
	}
	priority := uint32(16)
	if p, ok, err := r.optCtxUnsigned(4); err != nil {
		return rejected(rejectInvalidTag)
	} else if ok {
		if p < 1 || p > 16 {
			return rejected(rejectParameterOutOfRange)
		}
		priority = p
	}
	if !r.done() {
		return rejected(rejectTooManyArguments)
	}
	x.addObject(oid)
	x.add("property", int(prop))
	x.add("value", hex.EncodeToString(value))
	x.add("priority", int(priority))
	if idx >= 0 {
		x.add("array_index", idx)
	}
	o := v.lookup(oid)
	if o == nil {
		return failed(errUnknownObject)
	}
	if e := v.writeProperty(o, prop, idx, value, priority); e != nil {
		return failed(e)
	}
	return simpleACK()
}

// Limits of DeviceCommunicationControl and ReinitializeDevice.
const (
	maxDCCMinutes = 65535            // time-duration is an Unsigned16
	restartTime   = 15 * time.Second // a cold or warm start answers nothing for this long
)

// deviceCommunicationControl checks the password (16.1): a wrong or missing one gets
// security/password-failure; the right one is obeyed as a device obeys it: disable
// silences the host to everything but DeviceCommunicationControl and ReinitializeDevice,
// disable-initiation stops what the host initiates (COV notifications), for time-duration
// minutes or until enabled or restarted.
func (sv *service) deviceCommunicationControl(v *view, data []byte, x *exchange) result {
	r := reader{b: data}
	minutes := uint32(0)
	if d, ok, err := r.optCtxUnsigned(0); err != nil {
		return rejected(rejectInvalidTag)
	} else if ok {
		if d > maxDCCMinutes {
			return rejected(rejectParameterOutOfRange)
		}
		minutes = d
		x.add("duration", int(d))
	}
	state, err := r.ctxUnsigned(1)
	if err != nil {
		return rejectFor(err)
	}
	if state > dccDisableInitiation {
		return rejected(rejectParameterOutOfRange)
	}
	x.add("enable_disable", int(state))
	pw, res, ok := password(&r, 2, x)
	if !ok {
		return res
	}
	if !sv.passwordOK(v, pw) {
		return failed(errPassword)
	}
	x.add("accepted", true)
	until := time.Time{} // no duration: until enabled or restarted
	if minutes > 0 {
		until = time.Now().Add(time.Duration(minutes) * time.Minute)
	}
	v.st.mu.Lock()
	v.st.dcc, v.st.dccUntil = state, until
	v.st.mu.Unlock()
	return simpleACK()
}

// reinitializeDevice checks the password like deviceCommunicationControl; a cold or warm
// start is acknowledged, then the host restarts: it answers nothing for restartTime and
// comes back with communication enabled (what was written stays, as in a controller's
// flash). Backup and restore need file objects this device does not have.
func (sv *service) reinitializeDevice(v *view, data []byte, x *exchange) result {
	r := reader{b: data}
	state, err := r.ctxUnsigned(0)
	if err != nil {
		return rejectFor(err)
	}
	if state > reinitActivateChanges {
		return rejected(rejectParameterOutOfRange)
	}
	x.add("reinitialized_state", int(state))
	pw, res, ok := password(&r, 1, x)
	if !ok {
		return res
	}
	if !sv.passwordOK(v, pw) {
		return failed(errPassword)
	}
	switch state {
	case reinitColdstart, reinitWarmstart:
		x.add("accepted", true)
		v.st.mu.Lock()
		v.st.dcc, v.st.dccUntil = dccEnable, time.Time{}
		v.st.restartUntil = time.Now().Add(restartTime)
		v.st.mu.Unlock()
	case reinitActivateChanges:
		x.add("accepted", true)
	default:
		return failed(errOptionalFunctionality)
	}
	return simpleACK()
}

// passwordOK compares a request's password with the device's (the profile's <password>); a
// device without one refuses every password, as a controller whose password nobody knows.
func (sv *service) passwordOK(v *view, pw *string) bool {
	src := sv.cfg.password
	want := src.literal
	if src.key != "" {
		if v.h.Databus == nil {
			return false
		}
		s, err := v.h.Databus.GetString(src.key)
		if err != nil {
			return false
		}
		want = s
	}
	return want != "" && pw != nil && *pw == want
}

// silenced reports whether the host answers nothing to this request: it is restarting, or
// communication is disabled and the request is neither DeviceCommunicationControl nor
// ReinitializeDevice.
func (st *hostState) silenced(a *apdu, now time.Time) (string, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if now.Before(st.restartUntil) {
		return "restarting", true
	}
	if st.dcc != dccEnable && !st.dccUntil.IsZero() && !now.Before(st.dccUntil) {
		st.dcc, st.dccUntil = dccEnable, time.Time{}
	}
	if st.dcc != dccDisable {
		return "", false
	}
	if a.typ == pduConfirmed && (a.service == svcDeviceCommControl || a.service == svcReinitializeDevice) {
		return "", false
	}
	return "communication-disabled", true
}

// initiates reports whether the host may initiate messages (DeviceCommunicationControl
// disable-initiation stops it).
func (st *hostState) initiates(now time.Time) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if now.Before(st.restartUntil) {
		return false
	}
	if st.dcc == dccEnable || (!st.dccUntil.IsZero() && !now.Before(st.dccUntil)) {
		return true
	}
	return false
}

// password reads an optional context-tagged password (1-20 characters) into the event; nil
// when the request has none.
func password(r *reader, n uint32, x *exchange) (*string, result, bool) {
	if r.done() {
		return nil, result{}, true
	}
	t, err := r.next()
	if err != nil || !t.isCtx(n) {
		return nil, rejected(rejectInvalidTag), false
	}
	v, err := decodeApp(tag{num: tagCharString, data: t.data})
	if err != nil {
		return nil, rejected(rejectInvalidParameterType), false
	}
	x.add("password", v.s)
	if len(v.s) < 1 || len(v.s) > 20 {
		return nil, rejected(rejectParameterOutOfRange), false
	}
	if !r.done() {
		return nil, rejected(rejectTooManyArguments), false
	}
	return &v.s, result{}, true
}

// unconfirmed serves an unconfirmed request.
func (sv *service) unconfirmed(s *protocols.Session, m *message, reply func([]byte), x *exchange) {
	a := &m.apdu
	vv := sv.view(s.Host, s.RequestTime())
	v := &vv
	r := reader{b: a.data}
	switch a.service {
	case svcWhoIs:
		low, hasLow, err1 := r.optCtxUnsigned(0)
		high, hasHigh, err2 := r.optCtxUnsigned(1)
		if err1 != nil || err2 != nil || hasLow != hasHigh || !r.done() {
			x.failed = true
			return
		}
		if hasLow {
			x.add("low", int(low))
			x.add("high", int(high))
			if v.st.instance < low || v.st.instance > high {
				return
			}
		}
		x.apdu = sv.appendIAm(x.apdu[:0], v) // the exchange's scratch: an answer allocates nothing
		x.framed = appendFrame(x.framed[:0], &m.npdu, x.apdu)
		reply(x.framed)
	case svcWhoHas:
		low, hasLow, err1 := r.optCtxUnsigned(0)
		high, hasHigh, err2 := r.optCtxUnsigned(1)
		if err1 != nil || err2 != nil || hasLow != hasHigh {
			x.failed = true
			return
		}
		if hasLow && (v.st.instance < low || v.st.instance > high) {
			return
		}
		t, err := r.next()
		if err != nil || !r.done() {
			x.failed = true
			return
		}
		var match func(o *objectConfig) bool
		switch {
		case t.isCtx(2) && len(t.data) == 4:
			oid := decodeObjectID(uint32(t.data[0])<<24 | uint32(t.data[1])<<16 | uint32(t.data[2])<<8 | uint32(t.data[3]))
			x.addObject(oid)
			match = func(o *objectConfig) bool { return v.idOf(o) == oid }
		case t.isCtx(3):
			name, err := decodeApp(tag{num: tagCharString, data: t.data})
			if err != nil {
				x.failed = true
				return
			}
			x.add("object_name", name.s)
			match = func(o *objectConfig) bool { return v.objectName(o) == name.s }
		default:
			x.failed = true
			return
		}
		sent := 0
		for _, o := range append([]*objectConfig{sv.cfg.device}, sv.cfg.objects...) {
			if sent < maxIHave && match(o) {
				sent++
				b := []byte{pduUnconfirmed << 4, svcIHave}
				b = appendObjectID(b, v.deviceID())
				b = appendObjectID(b, v.idOf(o))
				b = appendCharString(b, v.objectName(o))
				reply(frame(&m.npdu, b))
			}
		}
	case svcTimeSynchronization, svcUTCTimeSynchronizaton:
		set, ok := decodeDateTime(&r, a.service == svcUTCTimeSynchronizaton)
		if !ok {
			x.failed = true
			return
		}
		x.add("time", set.Format(time.RFC3339))
		off := time.Until(set)
		if off > 10*365*24*time.Hour || off < -10*365*24*time.Hour {
			return
		}
		v.st.mu.Lock()
		v.st.clock = off
		v.persistLocked()
		v.st.mu.Unlock()
	}
}

// objectName is an object's current name.
func (v *view) objectName(o *objectConfig) string {
	b, e := v.readProperty(nil, o, propObjectName, -1)
	if e != nil {
		return ""
	}
	t, _, err := decodeTag(b)
	if err != nil {
		return ""
	}
	val, err := decodeApp(t)
	if err != nil {
		return ""
	}
	return val.s
}

// appendIAm appends the host's I-Am APDU to b.
func (sv *service) appendIAm(b []byte, v *view) []byte {
	b = append(b, pduUnconfirmed<<4, svcIAm)
	b = appendObjectID(b, v.deviceID())
	b = appendUnsigned(b, uint32(sv.cfg.maxAPDU))
	b = appendEnumerated(b, sv.cfg.segmentation)
	// The vendor identifier is read straight into b (no buffer of its own) and carried as
	// view.unsigned reads it: its first value as an Unsigned, 0 when it has none.
	n := len(b)
	if out, e := v.readProperty(b, sv.cfg.device, propVendorIdentifier, -1); e == nil && len(out) > n {
		if t, used, err := decodeTag(out[n:]); err == nil {
			if val, err := decodeApp(t); err == nil {
				if t.isApp(tagUnsigned) && used == len(out)-n {
					return out // already the encoding I-Am carries
				}
				return appendUnsigned(out[:n], val.u)
			}
		}
	}
	return appendUnsigned(b[:n], 0)
}

// decodeDateTime reads an application date and time.
func decodeDateTime(r *reader, utc bool) (time.Time, bool) {
	d, err := r.next()
	if err != nil || !d.isApp(tagDate) || len(d.data) != 4 {
		return time.Time{}, false
	}
	t, err := r.next()
	if err != nil || !t.isApp(tagTime) || len(t.data) != 4 || !r.done() {
		return time.Time{}, false
	}
	if d.data[0] == 0xFF || d.data[1] < 1 || d.data[1] > 12 || d.data[2] < 1 || d.data[2] > 31 ||
		t.data[0] > 23 || t.data[1] > 59 || t.data[2] > 59 {
		return time.Time{}, false
	}
	loc := time.Local
	if utc {
		loc = time.UTC
	}
	cs := int(t.data[3])
	if cs > 99 {
		cs = 0
	}
	return time.Date(1900+int(d.data[0]), time.Month(d.data[1]), int(d.data[2]),
		int(t.data[0]), int(t.data[1]), int(t.data[2]), cs*1e7, loc), true
}
