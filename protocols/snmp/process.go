package snmp

import (
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
)

// Error status values (RFC 3416; 1–5 are also SNMPv1's).
const (
	errNoError             = 0
	errTooBig              = 1
	errNoSuchName          = 2
	errBadValue            = 3
	errReadOnly            = 4
	errGenErr              = 5
	errNoAccess            = 6
	errWrongType           = 7
	errWrongLength         = 8
	errWrongEncoding       = 9
	errWrongValue          = 10
	errNoCreation          = 11
	errInconsistentValue   = 12
	errResourceUnavailable = 13
	errCommitFailed        = 14
	errUndoFailed          = 15
	errAuthorizationError  = 16
	errNotWritable         = 17
	errInconsistentName    = 18
)

var errNames = [...]string{"noError", "tooBig", "noSuchName", "badValue", "readOnly", "genErr", "noAccess",
	"wrongType", "wrongLength", "wrongEncoding", "wrongValue", "noCreation", "inconsistentValue",
	"resourceUnavailable", "commitFailed", "undoFailed", "authorizationError", "notWritable", "inconsistentName"}

// v1Status maps an SNMPv2 error status to SNMPv1 (RFC 3584 4.4; a community without write
// access gets readOnly, as embedded v1 agents answer).
func v1Status(es int) int {
	switch es {
	case errWrongValue, errWrongEncoding, errWrongType, errWrongLength, errInconsistentValue:
		return errBadValue
	case errNoAccess:
		return errReadOnly
	case errNotWritable, errNoCreation, errInconsistentName, errAuthorizationError:
		return errNoSuchName
	case errResourceUnavailable, errCommitFailed, errUndoFailed:
		return errGenErr
	}
	return es
}

// maxRepetitions bounds GetBulk's max-repetitions (the response size bounds it further).
const maxRepetitions = 1024

// process runs the PDU and leaves the response's varbind list in st.vbs. vbLimit bounds
// the varbind list size. ok is false when an OID in the request is malformed.
func (s *service) process(st *reqState, hs *hostState, h *protocols.Host, p *pdu, canWrite, v1 bool, vbLimit int, now time.Time) (es, ei int, ok bool) {
	st.vbs = st.vbs[:0]
	st.inst = hostInst(h.Addr, st.inst)
	switch p.typ {
	case pduGet:
		hs.inc(snmpInGetRequests)
		es, ei, ok = s.get(st, hs, h, p, v1, now)
	case pduGetNext:
		hs.inc(snmpInGetNexts)
		es, ei, ok = s.getNext(st, hs, h, p, v1, now)
	case pduGetBulk:
		return s.getBulk(st, hs, h, p, vbLimit, now)
	case pduSet:
		hs.inc(snmpInSetRequests)
		es, ei, ok = s.set(st, hs, h, p, canWrite)
	}
	if !ok {
		return 0, 0, false
	}
	if es != errNoError {
		if v1 {
			es = v1Status(es)
		}
		switch es {
		case errNoSuchName:
			hs.inc(snmpOutNoSuchNames)
		case errBadValue:
			hs.inc(snmpOutBadValues)
		case errGenErr:
			hs.inc(snmpOutGenErrs)
		}
		// An error response carries the request's variable bindings.
		st.vbs = st.vbs[:0]
		for _, vb := range p.vbs {
			st.vbs = append(st.vbs, vb.raw...)
		}
	}
	return es, ei, true
}

// appendVB appends a varbind made of an encoded OID and an encoded value.
func appendVB(b, oidTLV, val []byte) []byte {
	b = appendHeader(b, tagSequence, len(oidTLV)+len(val))
	b = append(b, oidTLV...)
	return append(b, val...)
}

// appendException appends a varbind carrying the request's OID and an exception.
func (st *reqState) appendException(oidContent []byte, exc byte) {
	st.tmp = appendOctets(st.tmp[:0], tagOID, oidContent)
	st.vbs = appendVB(st.vbs, st.tmp, []byte{exc, 0})
}

func (s *service) appendObject(st *reqState, hs *hostState, h *protocols.Host, o *object, now time.Time) {
	st.val = s.value(st.val[:0], o, h, hs, now)
	tlv := o.oidTLV
	if o.hostAddr {
		st.tmp = oidAt(st.tmp[:0], o, st.inst)
		tlv = st.tmp
	}
	st.vbs = appendVB(st.vbs, tlv, st.val)
}

func (s *service) get(st *reqState, hs *hostState, h *protocols.Host, p *pdu, v1 bool, now time.Time) (int, int, bool) {
	for i := range p.vbs {
		vb := &p.vbs[i]
		if o := s.tree.get(vb.oid); o != nil {
			s.appendObject(st, hs, h, o, now)
			continue
		}
		oid, err := decodeOID(vb.oid, st.oid)
		st.oid = oid
		if err != nil {
			return 0, 0, false
		}
		if s.tree.hostAddr > 0 {
			if o := s.tree.find(oid, st.inst); o != nil {
				s.appendObject(st, hs, h, o, now)
				continue
			}
		}
		if v1 {
			return errNoSuchName, i + 1, true
		}
		exc := byte(tagNoSuchObject)
		if s.tree.typeKnown(oid) != nil {
			exc = tagNoSuchInstance
		}
		st.appendException(vb.oid, exc)
	}
	hs.snmp[snmpInTotalReqVars].Add(uint32(len(p.vbs)))
	return errNoError, 0, true
}

func (s *service) getNext(st *reqState, hs *hostState, h *protocols.Host, p *pdu, v1 bool, now time.Time) (int, int, bool) {
	for i := range p.vbs {
		vb := &p.vbs[i]
		oid, err := decodeOID(vb.oid, st.oid)
		st.oid = oid
		if err != nil {
			return 0, 0, false
		}
		i0 := s.tree.nextIndex(oid, st.inst)
		if i0 < 0 {
			if v1 {
				return errNoSuchName, i + 1, true
			}
			st.appendException(vb.oid, tagEndOfMibView)
			continue
		}
		s.appendObject(st, hs, h, s.tree.objs[i0], now)
	}
	hs.snmp[snmpInTotalReqVars].Add(uint32(len(p.vbs)))
	return errNoError, 0, true
}

func (s *service) getBulk(st *reqState, hs *hostState, h *protocols.Host, p *pdu, vbLimit int, now time.Time) (int, int, bool) {
	n := len(p.vbs)
	nonRep := min(max(int(p.errStatus), 0), n)
	reps := min(max(int(p.errIndex), 0), maxRepetitions)
	st.cur = st.cur[:0]
	for i := range p.vbs {
		oid, err := decodeOID(p.vbs[i].oid, st.oid)
		st.oid = oid
		if err != nil {
			return 0, 0, false
		}
		st.cur = append(st.cur, s.tree.nextIndex(oid, st.inst))
	}
	// fits appends one varbind and reports whether the list is still within the limit.
	fits := func(i int, vbOID []byte) bool {
		mark := len(st.vbs)
		if i < 0 {
			st.appendException(vbOID, tagEndOfMibView)
		} else {
			s.appendObject(st, hs, h, s.tree.objs[i], now)
		}
		if len(st.vbs) > vbLimit {
			st.vbs = st.vbs[:mark]
			return false
		}
		return true
	}
	count := 0
	for i := 0; i < nonRep; i++ {
		if !fits(st.cur[i], p.vbs[i].oid) {
			return errNoError, 0, true
		}
		count++
	}
	for r := 0; r < reps && nonRep < n; r++ {
		allEnd := true
		for j := nonRep; j < n; j++ {
			idx := st.cur[j]
			oidContent := p.vbs[j].oid
			if idx < 0 && r > 0 {
				// Past the end: repeat endOfMibView with the last name returned.
				if last := lastIndex(st.cur[j]); last >= 0 {
					oidContent = s.tree.content(last, st.inst)
				}
			}
			if !fits(idx, oidContent) {
				hs.snmp[snmpInTotalReqVars].Add(uint32(count))
				return errNoError, 0, true
			}
			count++
			if idx >= 0 {
				allEnd = false
				if idx+1 < len(s.tree.objs) {
					st.cur[j] = idx + 1
				} else {
					st.cur[j] = endAfter(idx)
				}
			}
		}
		if allEnd {
			break
		}
	}
	hs.snmp[snmpInTotalReqVars].Add(uint32(count))
	return errNoError, 0, true
}

// A GetBulk cursor past the end remembers the last object returned: endAfter(i) < 0.
func endAfter(i int) int { return -2 - i }

func lastIndex(cur int) int {
	if cur <= -2 {
		return -2 - cur
	}
	return -1
}

// set validates every binding, then writes them all to the databus.
func (s *service) set(st *reqState, hs *hostState, h *protocols.Host, p *pdu, canWrite bool) (int, int, bool) {
	if !canWrite {
		hs.inc(snmpInBadCommunityUses)
		return errNoAccess, 1, true
	}
	type write struct {
		key string
		v   any
	}
	var writes [8]write
	ws := writes[:0]
	for i := range p.vbs {
		vb := &p.vbs[i]
		o := s.tree.get(vb.oid)
		if o == nil {
			oid, err := decodeOID(vb.oid, st.oid)
			st.oid = oid
			if err != nil {
				return 0, 0, false
			}
			if t := s.tree.typeKnown(oid); t != nil && t.writable && t.builtin == nil {
				return errNoCreation, i + 1, true
			}
			return errNotWritable, i + 1, true
		}
		if !o.writable || o.builtin != nil || o.key == "" {
			return errNotWritable, i + 1, true
		}
		v, es := setValue(o, vb)
		if es != errNoError {
			return es, i + 1, true
		}
		ws = append(ws, write{o.key, v})
	}
	for _, w := range ws {
		h.Databus.Set(w.key, w.v)
	}
	hs.snmp[snmpInTotalSetVars].Add(uint32(len(ws)))
	for _, vb := range p.vbs {
		st.vbs = append(st.vbs, vb.raw...)
	}
	return errNoError, 0, true
}

// setValue checks a SET value against the object's syntax and converts it to what the
// databus stores (text for strings, OIDs and addresses, int64 for numbers).
func setValue(o *object, vb *varbind) (any, int) {
	tag := vb.tag
	if tag != o.tag {
		return nil, errWrongType
	}
	switch tag {
	case tagOctetString, tagOpaque:
		if !inRanges(o.ranges, int64(len(vb.val))) {
			return nil, errWrongLength
		}
		if isHexHint(o.hint) {
			return formatHex(vb.val), errNoError
		}
		return string(vb.val), errNoError
	case tagOID:
		oid, err := decodeOID(vb.val, nil)
		if err != nil {
			return nil, errWrongEncoding
		}
		return oidString(oid), errNoError
	case tagIPAddress:
		if len(vb.val) != 4 {
			return nil, errWrongLength
		}
		return formatIPv4(vb.val), errNoError
	case tagInteger:
		v, err := parseInt(vb.val)
		if err != nil || v < math.MinInt32 || v > math.MaxInt32 {
			return nil, errWrongEncoding
		}
		if o.enum != nil && !inEnum(o.enum, v) {
			return nil, errWrongValue
		}
		if !inRanges(o.ranges, v) {
			return nil, errWrongValue
		}
		return v, errNoError
	case tagCounter32, tagGauge32, tagTimeTicks, tagCounter64:
		v, err := parseUint(vb.val)
		if err != nil || (tag != tagCounter64 && v > math.MaxUint32) || v > math.MaxInt64 {
			return nil, errWrongEncoding
		}
		if !inRanges(o.ranges, int64(v)) {
			return nil, errWrongValue
		}
		return int64(v), errNoError
	}
	return nil, errWrongType
}

func inRanges(r [][2]int64, v int64) bool {
	if len(r) == 0 {
		return true
	}
	for _, x := range r {
		if v >= x[0] && v <= x[1] {
			return true
		}
	}
	return false
}

func inEnum(e []int64, v int64) bool {
	for _, x := range e {
		if x == v {
			return true
		}
	}
	return false
}

// dateAndTimeHint is the display hint of SNMPv2-TC's DateAndTime.
const dateAndTimeHint = "2d-1d-1d,1d:1d:1d.1d,1a1d:1d"

// parseDateAndTime reads DateAndTime's display form, "2026-11-29,11:41:56.0" with an
// optional ",+1:0" offset (Conpot's CurrentDatetime writes the first), into its 8 or 11
// octets, as the agent Conpot uses converts it.
func parseDateAndTime(s string) ([]byte, bool) {
	date, rest, ok := strings.Cut(s, ",")
	if !ok {
		return nil, false
	}
	clock, zone, hasZone := strings.Cut(rest, ",")
	num := func(f string, lo, hi int) (int, bool) {
		n, err := strconv.Atoi(f)
		return n, err == nil && n >= lo && n <= hi
	}
	d := strings.Split(date, "-")
	hms, frac, _ := strings.Cut(clock, ".")
	c := strings.Split(hms, ":")
	if len(d) != 3 || len(c) != 3 {
		return nil, false
	}
	y, ok1 := num(d[0], 0, 65535)
	mo, ok2 := num(d[1], 0, 12)
	dd, ok3 := num(d[2], 0, 31)
	h, ok4 := num(c[0], 0, 23)
	mi, ok5 := num(c[1], 0, 59)
	se, ok6 := num(c[2], 0, 60)
	ds := 0
	ok7 := true
	if frac != "" {
		ds, ok7 = num(frac, 0, 9)
	}
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7) {
		return nil, false
	}
	out := []byte{byte(y >> 8), byte(y), byte(mo), byte(dd), byte(h), byte(mi), byte(se), byte(ds)}
	if !hasZone {
		return out, true
	}
	if len(zone) < 2 || (zone[0] != '+' && zone[0] != '-') {
		return nil, false
	}
	zh, zm, _ := strings.Cut(zone[1:], ":")
	oh, okh := num(zh, 0, 13)
	om, okm := num(zm, 0, 59)
	if !okh || !okm {
		return nil, false
	}
	return append(out, zone[0], byte(oh), byte(om)), true
}

// isHexHint reports display hints such as "1x:" (PhysAddress, MacAddress).
func isHexHint(h string) bool { return strings.HasPrefix(h, "1x") }

func formatHex(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, len(b)*3)
	for i, x := range b {
		if i > 0 {
			out = append(out, ':')
		}
		out = append(out, digits[x>>4], digits[x&15])
	}
	return string(out)
}

func formatIPv4(b []byte) string {
	out := make([]byte, 0, 15)
	for i, x := range b {
		if i > 0 {
			out = append(out, '.')
		}
		out = appendUintDec(out, uint64(x))
	}
	return string(out)
}

// value appends the encoded value of o for host h.
func (s *service) value(b []byte, o *object, h *protocols.Host, hs *hostState, now time.Time) []byte {
	if o.builtin != nil {
		return o.builtin(b, hs, now)
	}
	if isIntTag(o.tag) { // counters and uptimes: read without boxing the number
		if n, err := h.Databus.GetInt(o.key); err == nil {
			return encodeInt(b, o, n)
		}
	}
	v, err := h.Databus.Get(o.key)
	if err != nil {
		v = o.literal // nil when there is none: the syntax's zero value
	}
	return encodeValue(b, o, v)
}

// isIntTag reports whether values of the syntax are numbers (encodeInt's syntaxes).
func isIntTag(tag byte) bool {
	switch tag {
	case tagInteger, tagCounter32, tagTimeTicks, tagGauge32, tagCounter64:
		return true
	}
	return false
}

// encodeValue encodes a databus value with the object's syntax. Values that do not fit
// the syntax become the syntax's zero value rather than an error.
func encodeValue(b []byte, o *object, v any) []byte {
	switch o.tag {
	case tagOctetString, tagOpaque:
		switch x := v.(type) {
		case string:
			if isHexHint(o.hint) && looksHex(x) {
				return appendOctets(b, o.tag, hexOctets(x))
			}
			if o.hint == dateAndTimeHint {
				if d, ok := parseDateAndTime(x); ok {
					return appendOctets(b, o.tag, d)
				}
			}
			return appendString(b, o.tag, x)
		case []byte:
			return appendOctets(b, o.tag, x)
		case nil:
			return appendString(b, o.tag, "")
		}
		return appendString(b, o.tag, profiles.FormatValue(v))
	case tagOID:
		var buf [32]uint32 // an OID value fits, so encoding one allocates nothing
		oid, err := appendOIDString(buf[:0], profiles.FormatValue(v))
		if err != nil || len(oid) < 2 || oid[0] > 2 || (oid[0] < 2 && oid[1] >= 40) {
			oid = []uint32{0, 0}
		}
		mark := len(b)
		b = append(b, tagOID, 0)
		b = appendOIDContent(b, oid)
		n := len(b) - mark - 2
		if n < 0x80 {
			b[mark+1] = byte(n)
			return b
		}
		c := append([]byte(nil), b[mark+2:]...)
		return appendOctets(b[:mark], tagOID, c)
	case tagIPAddress:
		ip, err := parseIPv4(profiles.FormatValue(v))
		if err != nil {
			ip = []byte{0, 0, 0, 0}
		}
		return appendOctets(b, tagIPAddress, ip)
	}
	n, err := profiles.ToInt(v)
	if err != nil {
		n = 0
	}
	return encodeInt(b, o, n)
}

// encodeInt encodes a number with the object's syntax, clamped or wrapped to its range; a
// syntax that is not a number gets NULL.
func encodeInt(b []byte, o *object, n int64) []byte {
	switch o.tag {
	case tagInteger:
		n = max(min(n, math.MaxInt32), math.MinInt32)
		return appendInt(b, tagInteger, n)
	case tagCounter32, tagTimeTicks:
		return appendUint(b, o.tag, uint64(uint32(n)))
	case tagGauge32:
		return appendUint(b, o.tag, uint64(max(min(n, math.MaxUint32), 0)))
	case tagCounter64:
		return appendUint(b, o.tag, uint64(n))
	}
	return append(b, tagNull, 0)
}

func looksHex(s string) bool {
	if len(s) < 2 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' || c == ':' || c == '-' || c == ' ') {
			return false
		}
	}
	return true
}
