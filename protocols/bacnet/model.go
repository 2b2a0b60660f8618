package bacnet

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
)

// Bounds of the state a host keeps for what attackers wrote.
const (
	maxWrittenValues = 1024
	maxWrittenLen    = 512
)

const protocolRevision = 14

// bacError is an Error PDU's class and code.
type bacError struct{ class, code uint32 }

func (e *bacError) Error() string { return fmt.Sprintf("error class %d code %d", e.class, e.code) }

var (
	errUnknownObject         = &bacError{errClassObject, errCodeUnknownObject}
	errUnknownProperty       = &bacError{errClassProperty, errCodeUnknownProperty}
	errNotArray              = &bacError{errClassProperty, errCodePropertyNotArray}
	errBadIndex              = &bacError{errClassProperty, errCodeInvalidArrayIndex}
	errWriteDenied           = &bacError{errClassProperty, errCodeWriteAccessDenied}
	errBadDataType           = &bacError{errClassProperty, errCodeInvalidDataType}
	errOutOfRange            = &bacError{errClassProperty, errCodeValueOutOfRange}
	errPassword              = &bacError{errClassSecurity, errCodePasswordFailure}
	errOptionalFunctionality = &bacError{errClassServices, errCodeOptionalFunctionalityNotSupported}
	errCOVNotSupported       = &bacError{errClassObject, errCodeOptionalFunctionalityNotSupported}
	errNoSpace               = &bacError{errClassResources, errCodeNoSpaceToAddListElement}
	errValueOutOfRange       = &bacError{errClassServices, errCodeValueOutOfRange}
	errOtherDevice           = &bacError{errClassDevice, errCodeOther}
)

type propKey struct {
	obj  objectID
	prop uint32
}

// hostState is one host's BACnet identity and what was written to it.
type hostState struct {
	instance uint32
	name     string // object-name when the profile sets none
	firmware string
	serial   string

	mu       sync.Mutex
	written  map[propKey][]byte // encoded application values
	priority map[objectID]*[16][]byte
	dbRev    uint32
	clock    time.Duration // offset set by TimeSynchronization

	// Not kept across restarts, as a device forgets them when it restarts.
	dcc          uint32    // DeviceCommunicationControl state (dccEnable …)
	dccUntil     time.Time // when a timed disable ends (zero: until enabled or restarted)
	restartUntil time.Time // a ReinitializeDevice restart answers nothing until then
}

// mix is SplitMix64, to spread a host seed into identity values.
func mix(x uint64) uint64 {
	x += 0x9E3779B97F4A7C15
	x = (x ^ x>>30) * 0xBF58476D1CE4E5B9
	x = (x ^ x>>27) * 0x94D049BB133111EB
	return x ^ x>>31
}

func (sv *service) state(h *protocols.Host) *hostState {
	return h.State("bacnet", func() any {
		r := mix(h.Seed ^ 0xBAC0)
		st := &hostState{written: map[propKey][]byte{}, priority: map[objectID]*[16][]byte{}, dbRev: uint32(r>>40)%400 + 1}
		switch {
		case sv.cfg.instanceKey != "" && h.Databus != nil:
			if v, err := h.Databus.GetInt(sv.cfg.instanceKey); err == nil && v >= 0 && v < wildcardInstance {
				st.instance = uint32(v)
			}
		case sv.cfg.fixedInstance >= 0:
			st.instance = uint32(sv.cfg.fixedInstance)
		default:
			st.instance = 1000 + uint32(r%399000)
		}
		st.name = fmt.Sprintf("BAC-%d", st.instance)
		st.firmware = fmt.Sprintf("%d.%d.%d", 1+r>>8%4, r>>16%10, r>>24%40)
		st.serial = fmt.Sprintf("%d%07d", 1+r>>4%9, r>>32%10000000)
		if b, ok := h.Persisted(stateKey); ok {
			sv.restore(st, b)
		}
		return st
	}).(*hostState)
}

// view is one request's look at a host.
type view struct {
	sv  *service
	h   *protocols.Host
	st  *hostState
	now time.Time
}

// view returns host h's view at now (the request's time), by value: a request's view
// lives on its stack.
func (sv *service) view(h *protocols.Host, now time.Time) view {
	return sv.viewOf(nil, h, now)
}

// viewOf is view with the host's state, when the caller has it (nil: looked up).
func (sv *service) viewOf(st *hostState, h *protocols.Host, now time.Time) view {
	if st == nil {
		st = sv.state(h)
	}
	st.mu.Lock()
	off := st.clock
	st.mu.Unlock()
	return view{sv: sv, h: h, st: st, now: now.Add(off)}
}

func (v *view) deviceID() objectID { return objectID{typ: objDevice, inst: v.st.instance} }

// lookup finds an object; the device answers to its instance and to the wildcard.
func (v *view) lookup(id objectID) *objectConfig {
	if id.typ == objDevice {
		if id.inst == v.st.instance || id.inst == wildcardInstance {
			return v.sv.cfg.device
		}
		return nil
	}
	return v.sv.cfg.byID[id]
}

func (v *view) idOf(o *objectConfig) objectID {
	if o == v.sv.cfg.device {
		return v.deviceID()
	}
	return o.id
}

// propertyList is the object's property-list (every property but the four every object has).
func propertyList(o *objectConfig) []uint32 {
	return append(slices.Clone(o.required), o.optional...)
}

// allProperties lists what ALL returns.
func allProperties(o *objectConfig) []uint32 {
	out := []uint32{propObjectIdentifier, propObjectName, propObjectType}
	out = append(out, o.required...)
	out = append(out, o.optional...)
	return append(out, propPropertyList)
}

// readProperty encodes property p (array index idx, -1 for none) of object o as the
// application values that go between the opening and closing tags.
func (v *view) readProperty(b []byte, o *objectConfig, p uint32, idx int64) ([]byte, *bacError) {
	if !o.has(p) {
		return nil, errUnknownProperty
	}
	switch p {
	case propObjectList:
		ids := make([]objectID, 0, 1+len(v.sv.cfg.objects))
		ids = append(ids, v.deviceID())
		for _, x := range v.sv.cfg.objects {
			ids = append(ids, x.id)
		}
		return encodeArray(b, len(ids), idx, func(b []byte, i int) []byte { return appendObjectID(b, ids[i]) })
	case propPropertyList:
		pl := propertyList(o)
		return encodeArray(b, len(pl), idx, func(b []byte, i int) []byte { return appendEnumerated(b, pl[i]) })
	case propPriorityArray:
		slots := v.priorities(o)
		return encodeArray(b, 16, idx, func(b []byte, i int) []byte {
			if slots[i] == nil {
				return appendNull(b)
			}
			return append(b, slots[i]...)
		})
	}
	if kindOf(o.id.typ, p) == kindCharsArray {
		return v.textArray(b, o, p, idx)
	}
	if idx >= 0 {
		return nil, errNotArray
	}
	if p == propPresentValue && o.commandable {
		for _, s := range v.priorities(o) {
			if s != nil {
				return append(b, s...), nil
			}
		}
	}
	v.st.mu.Lock()
	w, ok := v.st.written[propKey{o.id, p}]
	v.st.mu.Unlock()
	if ok {
		return append(b, w...), nil
	}
	if src, ok := o.props[p]; ok {
		text := src.literal
		if src.key != "" && v.h.Databus != nil {
			s, err := v.h.Databus.GetString(src.key)
			if err != nil {
				return nil, errOtherDevice
			}
			text = s
		}
		out, err := encodeText(b, kindOf(o.id.typ, p), text)
		if err != nil {
			return nil, errOtherDevice
		}
		return out, nil
	}
	if p == propPresentValue && o.commandable {
		return v.readProperty(b, o, propRelinquishDefault, -1)
	}
	return v.defaultValue(b, o, p), nil
}

// encodeArray encodes a BACnetARRAY: all elements, the size (index 0) or one element.
func encodeArray(b []byte, n int, idx int64, elem func([]byte, int) []byte) ([]byte, *bacError) {
	switch {
	case idx < 0:
		for i := range n {
			b = elem(b, i)
		}
		return b, nil
	case idx == 0:
		return appendUnsigned(b, uint32(n)), nil
	case idx > int64(n):
		return nil, errBadIndex
	}
	return elem(b, int(idx-1)), nil
}

// textArray encodes a configured array of texts (state-text), whole or one element.
func (v *view) textArray(b []byte, o *objectConfig, p uint32, idx int64) ([]byte, *bacError) {
	src, ok := o.props[p]
	if !ok {
		return nil, errUnknownProperty
	}
	text := src.literal
	if src.key != "" && v.h.Databus != nil {
		s, err := v.h.Databus.GetString(src.key)
		if err != nil {
			return nil, errOtherDevice
		}
		text = s
	}
	parts := splitTexts(text)
	return encodeArray(b, len(parts), idx, func(b []byte, i int) []byte { return appendCharString(b, parts[i]) })
}

func (v *view) priorities(o *objectConfig) [16][]byte {
	v.st.mu.Lock()
	defer v.st.mu.Unlock()
	if p := v.st.priority[o.id]; p != nil {
		return *p
	}
	return [16][]byte{}
}

// defaultValue encodes what a property holds when neither the profile nor a write set it.
func (v *view) defaultValue(b []byte, o *objectConfig, p uint32) []byte {
	sv := v.sv
	switch p {
	case propObjectIdentifier:
		return appendObjectID(b, v.idOf(o))
	case propObjectName:
		if o == sv.cfg.device {
			return appendCharString(b, v.st.name)
		}
		return appendCharString(b, o.name)
	case propObjectType:
		return appendEnumerated(b, uint32(o.id.typ))
	case propSystemStatus, propEventState, propReliability, propPolarity, propLastRestartReason:
		return appendEnumerated(b, 0)
	case propVendorName:
		return appendCharString(b, "BACnet Stack at SourceForge")
	case propVendorIdentifier:
		return appendUnsigned(b, 260)
	case propModelName:
		return appendCharString(b, "BACnet Controller")
	case propFirmwareRevision:
		return appendCharString(b, v.st.firmware)
	case propSerialNumber:
		return appendCharString(b, v.st.serial)
	case propApplicationSoftware:
		return appendCharString(b, "1.0")
	case propProtocolVersion:
		return appendUnsigned(b, 1)
	case propProtocolRevision:
		return appendUnsigned(b, protocolRevision)
	case propProtocolServices:
		return appendBitString(b, servicesSupportedLen, func(i int) bool { return slices.Contains(servicesSupportedBits, i) })
	case propProtocolObjectTypes:
		return appendBitString(b, numObjectTypesBitLen, func(i int) bool { return sv.types[i] })
	case propMaxAPDULengthAccepted:
		return appendUnsigned(b, uint32(sv.cfg.maxAPDU))
	case propSegmentationSupported:
		return appendEnumerated(b, sv.cfg.segmentation)
	case propMaxSegmentsAccepted:
		return appendUnsigned(b, maxSegments)
	case propAPDUSegmentTimeout:
		return appendUnsigned(b, segmentTimeoutMS)
	case propAPDUTimeout:
		return appendUnsigned(b, defaultTimeout)
	case propNumberOfAPDURetries:
		return appendUnsigned(b, defaultRetries)
	case propDeviceAddressBinding:
		return b // an empty list
	case propDatabaseRevision:
		v.st.mu.Lock()
		rev := v.st.dbRev
		v.st.mu.Unlock()
		return appendUnsigned(b, rev)
	case propLocalDate:
		t := v.now
		wd := int(t.Weekday())
		if wd == 0 {
			wd = 7
		}
		return appendDate(b, t.Year(), int(t.Month()), t.Day(), wd)
	case propLocalTime:
		t := v.now
		return appendTime(b, t.Hour(), t.Minute(), t.Second(), t.Nanosecond()/1e7)
	case propUTCOffset:
		_, off := v.now.Zone()
		return appendSigned(b, int32(-off/60))
	case propDaylightSavingsStatus:
		return appendBoolean(b, v.now.IsDST())
	case propStatusFlags:
		oos := false
		if w, err := v.readProperty(nil, o, propOutOfService, -1); err == nil && len(w) == 1 {
			oos = w[0] == 0x11
		}
		return appendBitString(b, 4, func(i int) bool { return i == 3 && oos })
	case propOutOfService:
		return appendBoolean(b, false)
	case propUnits:
		return appendEnumerated(b, 95) // no-units
	case propNumberOfStates:
		return appendUnsigned(b, 3)
	case propPresentValue, propRelinquishDefault:
		switch presentValueKind(o.id.typ) {
		case kindReal:
			return appendReal(b, 0)
		case kindUnsigned:
			return appendUnsigned(b, 1)
		case kindSigned:
			return appendSigned(b, 0)
		case kindChars:
			return appendCharString(b, "")
		}
		return appendEnumerated(b, 0)
	}
	switch kindOf(o.id.typ, p) {
	case kindUnsigned:
		return appendUnsigned(b, 0)
	case kindEnum:
		return appendEnumerated(b, 0)
	case kindReal:
		return appendReal(b, 0)
	case kindBool:
		return appendBoolean(b, false)
	case kindSigned:
		return appendSigned(b, 0)
	case kindBits4:
		return appendBitString(b, 4, func(int) bool { return false })
	}
	return appendCharString(b, "")
}

// writable lists what WriteProperty may change.
func writable(o *objectConfig, p uint32) bool {
	switch p {
	case propObjectName, propDescription, propLocation, propOutOfService, propPresentValue:
		return true
	case propRelinquishDefault:
		return o.commandable
	}
	return false
}

// writeProperty applies a WriteProperty to o.
func (v *view) writeProperty(o *objectConfig, p uint32, idx int64, value []byte, priority uint32) *bacError {
	if !o.has(p) {
		return errUnknownProperty
	}
	if idx >= 0 {
		if p == propPriorityArray || p == propObjectList || p == propPropertyList || p == propStateText {
			return errWriteDenied
		}
		return errNotArray
	}
	if !writable(o, p) {
		return errWriteDenied
	}
	if len(value) > maxWrittenLen {
		return errOutOfRange
	}
	vals, err := decodeValues(value)
	if err != nil || len(vals) != 1 {
		return errBadDataType
	}
	val := vals[0]
	kind := kindOf(o.id.typ, p)
	if p == propPresentValue {
		switch o.id.typ {
		case objAnalogInput, objBinaryInput, objMultiStateInput:
			oos, _ := v.readProperty(nil, o, propOutOfService, -1)
			if len(oos) != 1 || oos[0] != 0x11 {
				return errWriteDenied
			}
		}
	}
	if val.tag == tagNull && p == propPresentValue && o.commandable {
		return v.command(o, priority, nil)
	}
	if e := checkWrite(o, p, kind, val); e != nil {
		return e
	}
	if p == propPresentValue && o.has(propNumberOfStates) && val.u > v.unsigned(o, propNumberOfStates) {
		return errOutOfRange
	}
	enc := encodeApp(val)
	if p == propPresentValue && o.commandable {
		return v.command(o, priority, enc)
	}
	if src, ok := o.props[p]; ok && src.key != "" && v.h.Databus != nil {
		v.h.Databus.Set(src.key, goValue(val))
		return nil
	}
	v.st.mu.Lock()
	defer v.st.mu.Unlock()
	k := propKey{o.id, p}
	if _, ok := v.st.written[k]; !ok && len(v.st.written) >= maxWrittenValues {
		return &bacError{3, 20} // resources, no-space-to-write-property
	}
	v.st.written[k] = enc
	if p == propObjectName {
		v.st.dbRev++
	}
	v.persistLocked()
	return nil
}

// command writes slot priority of a commandable object's priority array (nil relinquishes).
func (v *view) command(o *objectConfig, priority uint32, enc []byte) *bacError {
	if priority == 6 { // reserved for minimum on/off
		return errWriteDenied
	}
	v.st.mu.Lock()
	defer v.st.mu.Unlock()
	pa := v.st.priority[o.id]
	if pa == nil {
		if enc == nil {
			return nil
		}
		if len(v.st.priority) >= maxWrittenValues {
			return &bacError{3, 20}
		}
		pa = &[16][]byte{}
		v.st.priority[o.id] = pa
	}
	pa[priority-1] = enc
	v.persistLocked()
	return nil
}

// checkWrite validates the datatype and range of a written value.
func checkWrite(o *objectConfig, p uint32, kind propKind, val appValue) *bacError {
	switch kind {
	case kindChars:
		if val.tag != tagCharString {
			return errBadDataType
		}
		if p == propObjectName && (val.s == "" || len(val.s) > maxValueLen) {
			return errOutOfRange
		}
		if len(val.s) > maxValueLen {
			return errOutOfRange
		}
	case kindReal:
		if val.tag != tagReal {
			return errBadDataType
		}
	case kindBool:
		if val.tag != tagBoolean {
			return errBadDataType
		}
	case kindSigned:
		if val.tag != tagSigned {
			return errBadDataType
		}
	case kindUnsigned:
		if val.tag != tagUnsigned {
			return errBadDataType
		}
		if p == propPresentValue && val.u == 0 {
			return errOutOfRange
		}
	case kindEnum:
		if val.tag != tagEnumerated {
			return errBadDataType
		}
		switch o.id.typ {
		case objBinaryInput, objBinaryOutput, objBinaryValue:
			if val.u > 1 {
				return errOutOfRange
			}
		}
	default:
		return errWriteDenied
	}
	return nil
}

// unsigned reads an unsigned property of o (0 when it is not one).
func (v *view) unsigned(o *objectConfig, p uint32) uint32 {
	b, e := v.readProperty(nil, o, p, -1)
	if e != nil {
		return 0
	}
	t, _, err := decodeTag(b)
	if err != nil {
		return 0
	}
	val, err := decodeApp(t)
	if err != nil {
		return 0
	}
	return val.u
}

// encodeApp re-encodes a decoded primitive application value.
func encodeApp(v appValue) []byte {
	var b []byte
	switch v.tag {
	case tagBoolean:
		return appendBoolean(b, v.b)
	case tagCharString:
		return appendCharString(b, v.s)
	}
	return append(appendTagHeader(b, v.tag, false, len(v.raw)), v.raw...)
}

// goValue is a written value as the databus keeps it.
func goValue(v appValue) any {
	switch v.tag {
	case tagBoolean:
		return v.b
	case tagUnsigned, tagEnumerated:
		return int64(v.u)
	case tagSigned:
		return int64(v.i)
	case tagReal, tagDouble:
		return v.f
	case tagCharString, tagOctetString:
		return v.s
	}
	return profiles.FormatValue(nil)
}
