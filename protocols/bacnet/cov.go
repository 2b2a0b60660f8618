package bacnet

import (
	"encoding/binary"
	"math"
	"sync"
	"time"

	"github.com/icsnare/icsnare/protocols"
)

// Change of value (13.1, 13.14): SubscribeCOV sets up a subscription of the requester to an
// object's present-value and status-flags; the device sends a notification at once, then
// one whenever the present value changes (by the object's cov-increment for analog objects)
// or the status flags change, until the lifetime ends or the subscription is cancelled.
// Subscriptions belong to the flow (the subscriber's address): they end with it, and the
// notifications go through Session.Send, so they are bounded by the sensor's unsolicited
// budget and by the amplification bound of the subscriber's last datagram.
const (
	maxSubscriptions   = 16              // per flow
	covCheckInterval   = 2 * time.Second // how often values are compared
	defaultCOVIncrment = 0.5             // analog objects without a cov-increment
	maxLifetime        = 28800           // seconds a subscription may ask for (8 h)
)

// covSub is one subscription.
type covSub struct {
	process   uint32
	obj       *objectConfig
	confirmed bool
	expires   time.Time // zero: no lifetime
	route     npdu      // the subscriber's network layer header (routed answers)
	last      []byte    // present-value and status-flags last notified
	lastReal  float64
}

type covKey struct {
	process uint32
	obj     objectID
}

// covTable is a flow's subscriptions.
type covTable struct {
	mu     sync.Mutex
	subs   map[covKey]*covSub
	timer  *time.Timer
	invoke byte
	closed bool
}

func (sv *service) covTable(s *protocols.Session) *covTable {
	return s.State("bacnet.cov", func() any {
		ct := &covTable{subs: map[covKey]*covSub{}}
		s.OnClose(func() {
			ct.mu.Lock()
			defer ct.mu.Unlock()
			ct.closed = true
			if ct.timer != nil {
				ct.timer.Stop()
			}
			clear(ct.subs)
		})
		return ct
	}).(*covTable)
}

// covObject reports whether objects of type t report changes of value.
func covObject(t uint16) bool {
	switch t {
	case objAnalogInput, objAnalogOutput, objAnalogValue, objBinaryInput, objBinaryOutput, objBinaryValue,
		objMultiStateInput, objMultiStateOutput, objMultiStateValue:
		return true
	}
	return false
}

// subscribeCOV serves SubscribeCOV.
func (sv *service) subscribeCOV(s *protocols.Session, v *view, m *message, x *exchange) result {
	r := reader{b: m.apdu.data}
	process, err := r.ctxUnsigned(0)
	if err != nil {
		return rejectFor(err)
	}
	oid, err := r.ctxObjectID(1)
	if err != nil {
		return rejectFor(err)
	}
	confirmed, cancel := false, true
	if t, ok := r.peek(); ok && t.isCtx(2) {
		r.next()
		if len(t.data) != 1 || t.data[0] > 1 {
			return rejected(rejectInvalidParameterType)
		}
		confirmed, cancel = t.data[0] == 1, false
	}
	lifetime, hasLifetime, err := r.optCtxUnsigned(3)
	if err != nil {
		return rejected(rejectInvalidTag)
	}
	if !r.done() {
		return rejected(rejectTooManyArguments)
	}
	if hasLifetime && cancel {
		return rejected(rejectMissingParameter) // a lifetime without issue-confirmed-notifications
	}
	x.add("process_id", int64(process))
	x.addObject(oid)
	if !cancel {
		x.add("confirmed", confirmed)
		x.add("lifetime", int64(lifetime))
	}
	o := v.lookup(oid)
	if o == nil {
		return failed(errUnknownObject)
	}
	if !covObject(o.id.typ) {
		return failed(errCOVNotSupported)
	}
	ct := sv.covTable(s)
	key := covKey{process, o.id}
	ct.mu.Lock()
	defer ct.mu.Unlock()
	if cancel {
		delete(ct.subs, key) // cancelling what does not exist succeeds too (13.14.1.1.4)
		x.add("cancel", true)
		return simpleACK()
	}
	if lifetime > maxLifetime {
		return failed(errValueOutOfRange)
	}
	if _, ok := ct.subs[key]; !ok && len(ct.subs) >= maxSubscriptions {
		return failed(errNoSpace)
	}
	if ct.closed {
		return failed(errNoSpace)
	}
	sub := &covSub{process: process, obj: o, confirmed: confirmed, route: m.npdu}
	sub.route.apdu = nil
	if lifetime > 0 {
		sub.expires = time.Now().Add(time.Duration(lifetime) * time.Second)
	}
	ct.subs[key] = sub
	if ct.timer == nil {
		ct.timer = time.AfterFunc(covCheckInterval, func() { sv.covCheck(s, ct) })
	}
	return simpleACK()
}

// covInitial sends the notification that follows a new subscription.
func (sv *service) covInitial(s *protocols.Session, m *message, reply func([]byte)) {
	ct := sv.covTable(s)
	r := reader{b: m.apdu.data}
	process, _ := r.ctxUnsigned(0)
	oid, _ := r.ctxObjectID(1)
	vv := sv.view(s.Host, s.RequestTime())
	v := &vv
	o := v.lookup(oid)
	if o == nil {
		return
	}
	ct.mu.Lock()
	sub, ok := ct.subs[covKey{process, o.id}]
	var out []byte
	if ok && v.st.initiates(time.Now()) {
		out = sv.notification(v, ct, sub, time.Now())
	}
	ct.mu.Unlock()
	if out != nil {
		reply(out)
	}
}

// covCheck compares every subscription's values with what was last notified and sends a
// notification for each that changed; it runs every covCheckInterval while the flow has
// subscriptions.
func (sv *service) covCheck(s *protocols.Session, ct *covTable) {
	now := time.Now()
	vv := sv.view(s.Host, s.RequestTime())
	v := &vv
	var out [][]byte
	ct.mu.Lock()
	if ct.closed {
		ct.mu.Unlock()
		return
	}
	for k, sub := range ct.subs {
		if !sub.expires.IsZero() && !now.Before(sub.expires) {
			delete(ct.subs, k)
			continue
		}
		if v.st.initiates(now) && sv.changed(v, sub) {
			out = append(out, sv.notification(v, ct, sub, now))
		}
	}
	if len(ct.subs) == 0 {
		ct.timer = nil
	} else {
		ct.timer.Reset(covCheckInterval)
	}
	ct.mu.Unlock()
	for _, b := range out {
		if s.Send(b) != nil {
			return
		}
	}
}

// covValues encodes the subscription's present-value and status-flags, and the present
// value as a number for analog objects.
func (v *view) covValues(o *objectConfig) (pv, flags []byte, real float64) {
	pv, e := v.readProperty(nil, o, propPresentValue, -1)
	if e != nil {
		pv = appendNull(nil)
	}
	if len(pv) == 5 && pv[0] == 0x44 {
		real = float64(math.Float32frombits(binary.BigEndian.Uint32(pv[1:])))
	}
	flags, e = v.readProperty(nil, o, propStatusFlags, -1)
	if e != nil {
		flags = appendBitString(nil, 4, func(int) bool { return false })
	}
	return pv, flags, real
}

// changed reports whether the values moved enough since the last notification.
func (sv *service) changed(v *view, sub *covSub) bool {
	pv, flags, real := v.covValues(sub.obj)
	cur := append(append([]byte(nil), pv...), flags...)
	if string(cur) == string(sub.last) {
		return false
	}
	switch sub.obj.id.typ {
	case objAnalogInput, objAnalogOutput, objAnalogValue:
		lastFlags := sub.last[len(sub.last)-len(flags):]
		if string(flags) == string(lastFlags) && math.Abs(real-sub.lastReal) < v.covIncrement(sub.obj) {
			return false
		}
	}
	return true
}

// covIncrement is an analog object's cov-increment.
func (v *view) covIncrement(o *objectConfig) float64 {
	if _, ok := o.props[propCOVIncrement]; !ok {
		return defaultCOVIncrment
	}
	b, e := v.readProperty(nil, o, propCOVIncrement, -1)
	if e != nil || len(b) != 5 || b[0] != 0x44 {
		return defaultCOVIncrment
	}
	return float64(math.Float32frombits(binary.BigEndian.Uint32(b[1:])))
}

// notification builds a COV notification for sub and records what it reports; ct.mu is
// held.
func (sv *service) notification(v *view, ct *covTable, sub *covSub, now time.Time) []byte {
	pv, flags, real := v.covValues(sub.obj)
	sub.last = append(append([]byte(nil), pv...), flags...)
	sub.lastReal = real
	var b []byte
	if sub.confirmed {
		ct.invoke++
		b = []byte{pduConfirmed << 4, 0x05, ct.invoke, svcConfirmedCOVNotification}
	} else {
		b = []byte{pduUnconfirmed << 4, svcUnconfirmedCOVNotification}
	}
	b = appendCtxUnsigned(b, 0, sub.process)
	b = appendCtxObjectID(b, 1, v.deviceID())
	b = appendCtxObjectID(b, 2, sub.obj.id)
	remaining := uint32(0)
	if !sub.expires.IsZero() {
		remaining = uint32(max(0, sub.expires.Sub(now)/time.Second))
	}
	b = appendCtxUnsigned(b, 3, remaining)
	b = appendOpen(b, 4)
	b = appendCtxUnsigned(b, 0, propPresentValue)
	b = append(appendOpen(b, 2), pv...)
	b = appendClose(b, 2)
	b = appendCtxUnsigned(b, 0, propStatusFlags)
	b = append(appendOpen(b, 2), flags...)
	b = appendClose(b, 2)
	b = appendClose(b, 4)
	out := frame(&sub.route, b)
	if sub.confirmed {
		out[bvlcHeaderLen+1] |= npduExpectReply
	}
	return out
}
