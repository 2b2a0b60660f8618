package clone

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf16"
)

// The BACnet/IP client codec of the BACnet prober (ASHRAE 135 Annex J, clauses 6 and 20):
// pure functions, bytes in and bytes out. It builds Who-Is, ReadProperty and
// ReadPropertyMultiple only; no other service can be built.

// BACnet property identifiers the prober reads.
const (
	bacPropAPDUSegmentTimeout       = 10
	bacPropAPDUTimeout              = 11
	bacPropApplicationSoftware      = 12
	bacPropActiveText               = 4
	bacPropCOVIncrement             = 22
	bacPropDaylightSavings          = 24
	bacPropDescription              = 28
	bacPropFirmwareRevision         = 44
	bacPropInactiveText             = 46
	bacPropLocation                 = 58
	bacPropMaxAPDU                  = 62
	bacPropModelName                = 70
	bacPropNumberOfAPDURetries      = 73
	bacPropNumberOfStates           = 74
	bacPropObjectList               = 76
	bacPropObjectName               = 77
	bacPropObjectIdentifier         = 75
	bacPropPresentValue             = 85
	bacPropProtocolObjectTypes      = 96
	bacPropProtocolServices         = 97
	bacPropProtocolVersion          = 98
	bacPropRelinquishDefault        = 104
	bacPropSegmentation             = 107
	bacPropStateText                = 110
	bacPropSystemStatus             = 112
	bacPropUnits                    = 117
	bacPropUTCOffset                = 119
	bacPropVendorIdentifier         = 120
	bacPropVendorName               = 121
	bacPropProtocolRevision         = 139
	bacPropMaxSegmentsAccepted      = 167
	bacPropSerialNumber             = 372
	bacServiceReadProperty          = 12
	bacServiceReadPropMultiple      = 14
	bacObjectDevice                 = 8
	bacWildcardInstance             = 0x3FFFFF
	bacMaxAPDUCode                  = 5 // 1476 octets, what we accept
	bacUnconfirmedRequest      byte = 0x10
)

// bacPropNames are the names bacnet.xml gives the properties the prober reads.
var bacPropNames = map[uint32]string{
	bacPropAPDUSegmentTimeout: "apdu_segment_timeout", bacPropAPDUTimeout: "apdu_timeout",
	bacPropApplicationSoftware: "application_software_version", bacPropActiveText: "active_text",
	bacPropCOVIncrement: "cov_increment", bacPropDaylightSavings: "daylight_savings_status",
	bacPropDescription: "description", bacPropFirmwareRevision: "firmware_revision",
	bacPropInactiveText: "inactive_text", bacPropLocation: "location", bacPropMaxAPDU: "max_apdu_length_accepted",
	bacPropModelName: "model_name", bacPropNumberOfAPDURetries: "number_of_apdu_retries",
	bacPropNumberOfStates: "number_of_states", bacPropObjectList: "object_list", bacPropObjectName: "object_name",
	bacPropPresentValue: "present_value", bacPropProtocolObjectTypes: "protocol_object_types_supported",
	bacPropProtocolServices: "protocol_services_supported", bacPropProtocolVersion: "protocol_version",
	bacPropRelinquishDefault: "relinquish_default", bacPropSegmentation: "segmentation_supported",
	bacPropStateText: "state_text", bacPropSystemStatus: "system_status", bacPropUnits: "units",
	bacPropUTCOffset: "utc_offset", bacPropVendorIdentifier: "vendor_identifier", bacPropVendorName: "vendor_name",
	bacPropProtocolRevision: "protocol_revision", bacPropMaxSegmentsAccepted: "max_segments_accepted",
	bacPropSerialNumber: "serial_number",
}

// bacObjectTypes names the object types (BACnetObjectType) as bacnet.xml writes them.
var bacObjectTypes = map[uint16]string{
	0: "analogInput", 1: "analogOutput", 2: "analogValue", 3: "binaryInput", 4: "binaryOutput",
	5: "binaryValue", 6: "calendar", 7: "command", 8: "device", 9: "eventEnrollment", 10: "file",
	11: "group", 12: "loop", 13: "multiStateInput", 14: "multiStateOutput", 15: "notificationClass",
	16: "program", 17: "schedule", 18: "averaging", 19: "multiStateValue", 20: "trendLog",
	21: "lifeSafetyPoint", 22: "lifeSafetyZone", 23: "accumulator", 24: "pulseConverter",
	25: "eventLog", 26: "globalGroup", 27: "trendLogMultiple", 28: "loadControl",
	29: "structuredView", 30: "accessDoor", 31: "timer", 32: "accessCredential", 33: "accessPoint",
	34: "accessRights", 35: "accessUser", 36: "accessZone", 37: "credentialDataInput",
	39: "bitstringValue", 40: "characterstringValue", 41: "datePatternValue", 42: "dateValue",
	43: "datetimePatternValue", 44: "datetimeValue", 45: "integerValue", 46: "largeAnalogValue",
	47: "octetstringValue", 48: "positiveIntegerValue", 49: "timePatternValue", 50: "timeValue",
	51: "notificationForwarder", 52: "alertEnrollment", 53: "channel", 54: "lightingOutput",
	55: "binaryLightingOutput", 56: "networkPort",
}

// bacSegmentation names segmentation-supported's values.
var bacSegmentation = []string{"segmentedBoth", "segmentedTransmit", "segmentedReceive", "noSegmentation"}

// bacObject is a BACnetObjectIdentifier.
type bacObject struct {
	Type uint16
	Inst uint32
}

func (o bacObject) wire() uint32 { return uint32(o.Type)<<22 | o.Inst&bacWildcardInstance }

func (o bacObject) String() string {
	n, ok := bacObjectTypes[o.Type]
	if !ok {
		n = "type" + strconv.Itoa(int(o.Type))
	}
	return n + "," + strconv.FormatUint(uint64(o.Inst), 10)
}

// bacWrap puts an APDU into an Original-Unicast-NPDU; reply asks for an answer.
func bacWrap(apdu []byte, reply bool) []byte {
	ctl := byte(0)
	if reply {
		ctl = 0x04
	}
	b := []byte{0x81, 0x0A, 0, 0, 0x01, ctl}
	b = append(b, apdu...)
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	return b
}

// bacWhoIs is a Who-Is without a range.
func bacWhoIs() []byte { return bacWrap([]byte{bacUnconfirmedRequest, 0x08}, false) }

// appendCtx appends a context-tagged unsigned value (object identifiers: 4 octets).
func appendCtx(b []byte, tag byte, v uint32, width int) []byte {
	if width == 0 {
		switch {
		case v < 1<<8:
			width = 1
		case v < 1<<16:
			width = 2
		case v < 1<<24:
			width = 3
		default:
			width = 4
		}
	}
	b = append(b, tag<<4|0x08|byte(width))
	for i := width - 1; i >= 0; i-- {
		b = append(b, byte(v>>(8*i)))
	}
	return b
}

// bacConfirmed starts a confirmed request that accepts no segments and up to 1476 octets.
func bacConfirmed(invoke byte, service byte) []byte {
	return []byte{0x00, bacMaxAPDUCode, invoke, service}
}

// bacReadProperty builds a ReadProperty of obj's prop; index < 0 reads the whole value.
func bacReadProperty(invoke byte, obj bacObject, prop uint32, index int) []byte {
	a := bacConfirmed(invoke, bacServiceReadProperty)
	a = appendCtx(a, 0, obj.wire(), 4)
	a = appendCtx(a, 1, prop, 0)
	if index >= 0 {
		a = appendCtx(a, 2, uint32(index), 0)
	}
	return bacWrap(a, true)
}

// bacReadPropertyMultiple builds a ReadPropertyMultiple of props of obj.
func bacReadPropertyMultiple(invoke byte, obj bacObject, props []uint32) []byte {
	a := bacConfirmed(invoke, bacServiceReadPropMultiple)
	a = appendCtx(a, 0, obj.wire(), 4)
	a = append(a, 0x1E)
	for _, p := range props {
		a = appendCtx(a, 0, p, 0)
	}
	a = append(a, 0x1F)
	return bacWrap(a, true)
}

// bacError is an Error, Reject or Abort answer.
type bacError struct {
	kind        string // error, reject, abort
	class, code uint64
}

func (e *bacError) Error() string {
	if e.kind == "error" {
		return fmt.Sprintf("BACnet error class %d code %d", e.class, e.code)
	}
	return fmt.Sprintf("BACnet %s reason %d", e.kind, e.code)
}

// bacUnwrap checks the BVLC and NPDU of a datagram and returns its APDU. Network-layer
// messages and datagrams whose length disagrees are errors.
func bacUnwrap(b []byte) ([]byte, error) {
	if len(b) < 6 || b[0] != 0x81 {
		return nil, errors.New("bacnet: not a BVLC frame")
	}
	if int(binary.BigEndian.Uint16(b[2:])) != len(b) {
		return nil, errors.New("bacnet: BVLC length disagrees with the datagram")
	}
	n := b[4:]
	switch b[1] {
	case 0x0A, 0x0B:
	case 0x04: // Forwarded-NPDU: the original source's address and port
		if len(n) < 6 {
			return nil, errors.New("bacnet: short Forwarded-NPDU")
		}
		n = n[6:]
	default:
		return nil, fmt.Errorf("bacnet: BVLC function %#02x", b[1])
	}
	if len(n) < 2 || n[0] != 1 {
		return nil, errors.New("bacnet: not an NPDU of version 1")
	}
	ctl := n[1]
	n = n[2:]
	if ctl&0x80 != 0 {
		return nil, errors.New("bacnet: a network layer message")
	}
	skipAddr := func() error {
		if len(n) < 3 {
			return errors.New("bacnet: short NPDU address")
		}
		l := int(n[2])
		if len(n) < 3+l {
			return errors.New("bacnet: short NPDU address")
		}
		n = n[3+l:]
		return nil
	}
	if ctl&0x20 != 0 {
		if err := skipAddr(); err != nil {
			return nil, err
		}
	}
	if ctl&0x08 != 0 {
		if err := skipAddr(); err != nil {
			return nil, err
		}
	}
	if ctl&0x20 != 0 {
		if len(n) < 1 {
			return nil, errors.New("bacnet: no hop count")
		}
		n = n[1:]
	}
	if len(n) == 0 {
		return nil, errors.New("bacnet: empty APDU")
	}
	return n, nil
}

// bacTag is one decoded tag header.
type bacTag struct {
	num     uint32
	context bool
	open    bool
	close   bool
	length  int // content octets; for an application boolean, the value
	hdr     int // header octets
}

// readTag decodes the tag at the start of b.
func readTag(b []byte) (bacTag, error) {
	if len(b) == 0 {
		return bacTag{}, errors.New("bacnet: missing tag")
	}
	t := bacTag{num: uint32(b[0] >> 4), context: b[0]&0x08 != 0, hdr: 1}
	lvt := int(b[0] & 7)
	if t.num == 15 {
		if len(b) < 2 {
			return t, errors.New("bacnet: short extended tag")
		}
		t.num = uint32(b[1])
		t.hdr = 2
	}
	switch {
	case t.context && lvt == 6:
		t.open = true
		return t, nil
	case t.context && lvt == 7:
		t.close = true
		return t, nil
	case lvt == 5:
		if len(b) < t.hdr+1 {
			return t, errors.New("bacnet: short length")
		}
		l := int(b[t.hdr])
		t.hdr++
		switch l {
		case 254:
			if len(b) < t.hdr+2 {
				return t, errors.New("bacnet: short length")
			}
			l = int(binary.BigEndian.Uint16(b[t.hdr:]))
			t.hdr += 2
		case 255:
			if len(b) < t.hdr+4 {
				return t, errors.New("bacnet: short length")
			}
			v := binary.BigEndian.Uint32(b[t.hdr:])
			if v > 1<<16 {
				return t, errors.New("bacnet: length beyond any APDU")
			}
			l = int(v)
			t.hdr += 4
		}
		t.length = l
	default:
		t.length = lvt
	}
	if !t.context && t.num == 1 { // an application boolean carries its value in the LVT
		return t, nil
	}
	if len(b) < t.hdr+t.length {
		return t, errors.New("bacnet: tag content beyond the data")
	}
	return t, nil
}

// content is the tag's content octets (nil for booleans and opening/closing tags).
func (t bacTag) content(b []byte) []byte {
	if t.open || t.close || !t.context && t.num == 1 {
		return nil
	}
	return b[t.hdr : t.hdr+t.length]
}

// size is the octets the tag and its content take.
func (t bacTag) size() int {
	if t.open || t.close || !t.context && t.num == 1 {
		return t.hdr
	}
	return t.hdr + t.length
}

func beUint(b []byte) (uint64, error) {
	if len(b) == 0 || len(b) > 8 {
		return 0, fmt.Errorf("bacnet: an unsigned of %d octets", len(b))
	}
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v, nil
}

// bacValue is one application-tagged value.
type bacValue struct {
	tag  uint32 // application tag: 0 null … 12 object identifier; 255 a constructed value
	u    uint64 // boolean, unsigned, enumerated
	i    int64
	f    float64
	s    string // character string, as UTF-8
	ok   bool   // s is text this codec could decode
	bits []bool
	obj  bacObject
	raw  []byte
}

// text renders the value as bacnet.xml writes it.
func (v bacValue) text() string {
	switch v.tag {
	case 0:
		return "null"
	case 1:
		if v.u != 0 {
			return "true"
		}
		return "false"
	case 2, 9:
		return strconv.FormatUint(v.u, 10)
	case 3:
		return strconv.FormatInt(v.i, 10)
	case 4:
		return strconv.FormatFloat(v.f, 'g', -1, 32)
	case 5:
		return strconv.FormatFloat(v.f, 'g', -1, 64)
	case 7:
		return v.s
	case 8:
		var b strings.Builder
		for i, x := range v.bits {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(strconv.FormatBool(x))
		}
		return "[" + b.String() + "]"
	case 12:
		return v.obj.String()
	}
	return fmt.Sprintf("%x", v.raw)
}

// decodeValues decodes the application-tagged values of b (the content between an
// opening and a closing tag). A constructed value (context tags inside) becomes one value
// of tag 255 with its raw octets.
func decodeValues(b []byte) ([]bacValue, error) {
	var out []bacValue
	for len(b) > 0 {
		if len(out) >= 4096 {
			return out, errors.New("bacnet: more than 4096 values")
		}
		t, err := readTag(b)
		if err != nil {
			return out, err
		}
		if t.context {
			end, err := skipConstructed(b)
			if err != nil {
				return out, err
			}
			out = append(out, bacValue{tag: 255, raw: b[:end]})
			b = b[end:]
			continue
		}
		c := t.content(b)
		v := bacValue{tag: t.num, raw: c}
		switch t.num {
		case 0:
		case 1:
			v.u = uint64(t.length)
		case 2, 9:
			if v.u, err = beUint(c); err != nil {
				return out, err
			}
		case 3:
			u, err := beUint(c)
			if err != nil {
				return out, err
			}
			sh := 64 - 8*uint(len(c))
			v.i = int64(u<<sh) >> sh
		case 4:
			if len(c) != 4 {
				return out, errors.New("bacnet: a REAL of the wrong size")
			}
			v.f = float64(math.Float32frombits(binary.BigEndian.Uint32(c)))
		case 5:
			if len(c) != 8 {
				return out, errors.New("bacnet: a Double of the wrong size")
			}
			v.f = math.Float64frombits(binary.BigEndian.Uint64(c))
		case 7:
			v.s, v.ok = decodeCharString(c)
		case 8:
			if len(c) < 1 || c[0] > 7 || len(c) == 1 && c[0] != 0 {
				return out, errors.New("bacnet: a bad bit string")
			}
			n := 8*(len(c)-1) - int(c[0])
			for i := 0; i < n; i++ {
				v.bits = append(v.bits, c[1+i/8]&(0x80>>(i%8)) != 0)
			}
		case 12:
			if len(c) != 4 {
				return out, errors.New("bacnet: an object identifier of the wrong size")
			}
			w := binary.BigEndian.Uint32(c)
			v.obj = bacObject{Type: uint16(w >> 22), Inst: w & bacWildcardInstance}
		}
		out = append(out, v)
		b = b[t.size():]
	}
	return out, nil
}

// skipConstructed returns the length of the context-tagged item at b's start: a primitive
// context tag, or an opening tag up to its matching closing tag.
func skipConstructed(b []byte) (int, error) {
	depth, off := 0, 0
	for {
		t, err := readTag(b[off:])
		if err != nil {
			return 0, err
		}
		switch {
		case t.open:
			depth++
		case t.close:
			depth--
		}
		off += t.size()
		if depth <= 0 {
			if depth < 0 {
				return 0, errors.New("bacnet: a closing tag without an opening tag")
			}
			return off, nil
		}
		if off >= len(b) {
			return 0, errors.New("bacnet: an opening tag without its closing tag")
		}
	}
}

// decodeCharString decodes a CharacterString (its first octet names the set): UTF-8,
// UCS-2 and ISO 8859-1; other sets are not text this codec knows.
func decodeCharString(c []byte) (string, bool) {
	if len(c) == 0 {
		return "", false
	}
	switch c[0] {
	case 0:
		return string(c[1:]), true
	case 4:
		if len(c[1:])%2 != 0 {
			return "", false
		}
		u := make([]uint16, 0, len(c)/2)
		for i := 1; i+1 < len(c); i += 2 {
			u = append(u, binary.BigEndian.Uint16(c[i:]))
		}
		return string(utf16.Decode(u)), true
	case 5:
		r := make([]rune, 0, len(c)-1)
		for _, x := range c[1:] {
			r = append(r, rune(x))
		}
		return string(r), true
	}
	return fmt.Sprintf("%x", c), false
}

// bacAnswer is a decoded answer APDU to a confirmed request.
type bacAnswer struct {
	invoke  byte
	service byte
	body    []byte // a ComplexACK's service data
	err     *bacError
}

// parseAnswer decodes an APDU answering a confirmed request: a ComplexACK (segmented
// ones are refused: the prober accepts no segments), Error, Reject or Abort. ok is false
// for APDUs that answer nothing (requests, unconfirmed services).
func parseAnswer(a []byte) (bacAnswer, bool, error) {
	if len(a) < 2 {
		return bacAnswer{}, false, errors.New("bacnet: short APDU")
	}
	switch a[0] >> 4 {
	case 3: // ComplexACK
		if a[0]&0x08 != 0 {
			return bacAnswer{invoke: a[1]}, true, errors.New("bacnet: a segmented answer to a request that accepts no segments")
		}
		if len(a) < 3 {
			return bacAnswer{}, false, errors.New("bacnet: short ComplexACK")
		}
		return bacAnswer{invoke: a[1], service: a[2], body: a[3:]}, true, nil
	case 5: // Error
		if len(a) < 3 {
			return bacAnswer{}, false, errors.New("bacnet: short Error")
		}
		vals, err := decodeValues(a[3:])
		e := &bacError{kind: "error"}
		if err == nil && len(vals) >= 2 {
			e.class, e.code = vals[0].u, vals[1].u
		}
		return bacAnswer{invoke: a[1], service: a[2], err: e}, true, nil
	case 6: // Reject
		if len(a) < 3 {
			return bacAnswer{}, false, errors.New("bacnet: short Reject")
		}
		return bacAnswer{invoke: a[1], err: &bacError{kind: "reject", code: uint64(a[2])}}, true, nil
	case 7: // Abort
		if len(a) < 3 {
			return bacAnswer{}, false, errors.New("bacnet: short Abort")
		}
		return bacAnswer{invoke: a[1], err: &bacError{kind: "abort", code: uint64(a[2])}}, true, nil
	}
	return bacAnswer{}, false, nil
}

// bacIAm is a decoded I-Am.
type bacIAm struct {
	device              bacObject
	maxAPDU, seg, vendr uint64
}

// parseIAm decodes an I-Am APDU; ok is false for any other APDU.
func parseIAm(a []byte) (bacIAm, bool, error) {
	if len(a) < 2 || a[0] != bacUnconfirmedRequest || a[1] != 0 {
		return bacIAm{}, false, nil
	}
	vals, err := decodeValues(a[2:])
	if err != nil {
		return bacIAm{}, true, err
	}
	if len(vals) < 4 || vals[0].tag != 12 || vals[1].tag != 2 || vals[2].tag != 9 || vals[3].tag != 2 {
		return bacIAm{}, true, errors.New("bacnet: an I-Am without device, max APDU, segmentation and vendor")
	}
	if vals[0].obj.Type != bacObjectDevice {
		return bacIAm{}, true, fmt.Errorf("bacnet: an I-Am of %s, not of a device", vals[0].obj)
	}
	return bacIAm{device: vals[0].obj, maxAPDU: vals[1].u, seg: vals[2].u, vendr: vals[3].u}, true, nil
}

// parseReadPropertyAck decodes a ReadProperty ComplexACK's body: the values of prop.
func parseReadPropertyAck(body []byte, prop uint32) ([]bacValue, error) {
	b := body
	var ctx []uint64
	for len(ctx) < 3 {
		t, err := readTag(b)
		if err != nil {
			return nil, err
		}
		if t.open {
			break
		}
		if !t.context || t.num != uint32(len(ctx)) {
			return nil, errors.New("bacnet: ReadProperty-ACK out of order")
		}
		v, err := beUint(t.content(b))
		if err != nil {
			return nil, err
		}
		ctx = append(ctx, v)
		b = b[t.size():]
	}
	if len(ctx) < 2 || uint32(ctx[1]) != prop {
		return nil, errors.New("bacnet: ReadProperty-ACK of another property")
	}
	t, err := readTag(b)
	if err != nil || !t.open || t.num != 3 {
		return nil, errors.New("bacnet: ReadProperty-ACK without its value")
	}
	if len(b) < 2 || b[len(b)-1] != 0x3F {
		return nil, errors.New("bacnet: ReadProperty-ACK without its closing tag")
	}
	return decodeValues(b[t.size() : len(b)-1])
}

// bacResult is one property's result inside a ReadPropertyMultiple-ACK.
type bacResult struct {
	values []bacValue
	err    *bacError
}

// parseRPMAck decodes a ReadPropertyMultiple-ACK for one object: property → result.
func parseRPMAck(body []byte, obj bacObject) (map[uint32]bacResult, error) {
	b := body
	t, err := readTag(b)
	if err != nil || !t.context || t.num != 0 || t.length != 4 {
		return nil, errors.New("bacnet: RPM-ACK without its object")
	}
	if binary.BigEndian.Uint32(t.content(b)) != obj.wire() {
		return nil, errors.New("bacnet: RPM-ACK of another object")
	}
	b = b[t.size():]
	if len(b) < 2 || b[0] != 0x1E {
		return nil, errors.New("bacnet: RPM-ACK without its result list")
	}
	b = b[1:]
	out := map[uint32]bacResult{}
	for len(b) > 0 && b[0] != 0x1F {
		t, err := readTag(b)
		if err != nil || !t.context || t.num != 2 {
			return out, errors.New("bacnet: RPM-ACK result without its property")
		}
		prop, err := beUint(t.content(b))
		if err != nil {
			return out, err
		}
		b = b[t.size():]
		if t, err = readTag(b); err == nil && t.context && t.num == 3 && !t.open {
			b = b[t.size():] // an array index
		}
		t, err = readTag(b)
		if err != nil || !t.open || (t.num != 4 && t.num != 5) {
			return out, errors.New("bacnet: RPM-ACK result without its value or error")
		}
		end, err := skipConstructed(b)
		if err != nil {
			return out, err
		}
		inner := b[t.size() : end-1]
		if t.num == 4 {
			vals, err := decodeValues(inner)
			if err != nil {
				return out, err
			}
			out[uint32(prop)] = bacResult{values: vals}
		} else {
			vals, _ := decodeValues(inner)
			e := &bacError{kind: "error"}
			if len(vals) >= 2 {
				e.class, e.code = vals[0].u, vals[1].u
			}
			out[uint32(prop)] = bacResult{err: e}
		}
		b = b[end:]
		if len(out) > 256 {
			return out, errors.New("bacnet: RPM-ACK with more than 256 results")
		}
	}
	return out, nil
}
