package bacnet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"unicode/utf8"
)

// Application tag numbers (ASHRAE 135 clause 20.2.1.4).
const (
	tagNull        = 0
	tagBoolean     = 1
	tagUnsigned    = 2
	tagSigned      = 3
	tagReal        = 4
	tagDouble      = 5
	tagOctetString = 6
	tagCharString  = 7
	tagBitString   = 8
	tagEnumerated  = 9
	tagDate        = 10
	tagTime        = 11
	tagObjectID    = 12
)

// Character sets of a CharacterString.
const (
	charsetUTF8 = 0
	charsetUCS2 = 4
)

// maxTagDepth bounds the nesting of constructed (opening/closing tag) values a request
// may carry; deeper input is rejected.
const maxTagDepth = 8

// maxTagsPerValue bounds the tags of one decoded value.
const maxTagsPerValue = 256

var (
	errTruncated = errors.New("truncated tag")
	errTagForm   = errors.New("malformed tag")
	errTooDeep   = errors.New("constructed value nested too deeply")
)

// tag is one decoded tag header and its content.
type tag struct {
	num     uint32 // tag number
	context bool   // context-specific class
	open    bool   // opening tag (context only)
	close   bool   // closing tag (context only)
	boolVal bool   // an application boolean's value (it lives in the header)
	data    []byte // the content octets (nil for open, close and application booleans)
}

// isApp reports whether t is the application tag n.
func (t tag) isApp(n uint32) bool { return !t.context && !t.open && !t.close && t.num == n }

// isCtx reports whether t is the primitive context tag n.
func (t tag) isCtx(n uint32) bool { return t.context && !t.open && !t.close && t.num == n }

// decodeTag reads one tag at the start of b and returns it and the bytes it took.
func decodeTag(b []byte) (tag, int, error) {
	if len(b) == 0 {
		return tag{}, 0, errTruncated
	}
	h := b[0]
	t := tag{num: uint32(h >> 4), context: h&0x08 != 0}
	n := 1
	if t.num == 15 {
		if len(b) < 2 {
			return tag{}, 0, errTruncated
		}
		t.num = uint32(b[1])
		if t.num == 255 { // reserved
			return tag{}, 0, errTagForm
		}
		n = 2
	}
	lvt := uint32(h & 0x07)
	if !t.context && t.num == tagBoolean {
		if lvt > 1 {
			return tag{}, 0, errTagForm
		}
		t.boolVal = lvt == 1
		return t, n, nil
	}
	switch {
	case lvt == 6 && t.context:
		t.open = true
		return t, n, nil
	case lvt == 7 && t.context:
		t.close = true
		return t, n, nil
	case lvt >= 6:
		return tag{}, 0, errTagForm
	case lvt == 5:
		if len(b) < n+1 {
			return tag{}, 0, errTruncated
		}
		l := uint32(b[n])
		n++
		switch l {
		case 254:
			if len(b) < n+2 {
				return tag{}, 0, errTruncated
			}
			l = uint32(binary.BigEndian.Uint16(b[n:]))
			n += 2
		case 255:
			if len(b) < n+4 {
				return tag{}, 0, errTruncated
			}
			l = binary.BigEndian.Uint32(b[n:])
			n += 4
		}
		lvt = l
	}
	if uint64(lvt) > uint64(len(b)-n) {
		return tag{}, 0, errTruncated
	}
	t.data = b[n : n+int(lvt)]
	return t, n + int(lvt), nil
}

// reader walks the tags of a service request.
type reader struct {
	b   []byte
	pos int
}

func (r *reader) done() bool { return r.pos >= len(r.b) }

// peek returns the next tag without consuming it.
func (r *reader) peek() (tag, bool) {
	t, _, err := decodeTag(r.b[r.pos:])
	return t, err == nil
}

// next consumes and returns the next tag.
func (r *reader) next() (tag, error) {
	t, n, err := decodeTag(r.b[r.pos:])
	if err != nil {
		return tag{}, err
	}
	r.pos += n
	return t, nil
}

// errMissing is a required parameter missing at the end of a request.
var errMissing = errors.New("missing parameter")

// want consumes the next tag if it is the primitive context tag n.
func (r *reader) want(n uint32) (tag, error) {
	if r.done() {
		return tag{}, errMissing
	}
	t, l, err := decodeTag(r.b[r.pos:])
	if err != nil {
		return tag{}, err
	}
	if !t.isCtx(n) {
		return tag{}, fmt.Errorf("want context tag %d: %w", n, errTagForm)
	}
	r.pos += l
	return t, nil
}

// ctxUnsigned reads the primitive context tag n holding an unsigned value.
func (r *reader) ctxUnsigned(n uint32) (uint32, error) {
	t, err := r.want(n)
	if err != nil {
		return 0, err
	}
	return decodeUnsigned(t.data)
}

// optCtxUnsigned reads the context tag n if it comes next.
func (r *reader) optCtxUnsigned(n uint32) (uint32, bool, error) {
	t, ok := r.peek()
	if !ok || !t.isCtx(n) {
		return 0, false, nil
	}
	v, err := r.ctxUnsigned(n)
	return v, err == nil, err
}

// ctxObjectID reads the context tag n holding an object identifier.
func (r *reader) ctxObjectID(n uint32) (objectID, error) {
	t, err := r.want(n)
	if err != nil {
		return objectID{}, err
	}
	if len(t.data) != 4 {
		return objectID{}, fmt.Errorf("want object identifier in context tag %d: %w", n, errTagForm)
	}
	return decodeObjectID(binary.BigEndian.Uint32(t.data)), nil
}

// expectOpen consumes the opening tag n.
func (r *reader) expectOpen(n uint32) error {
	if r.done() {
		return errMissing
	}
	t, err := r.next()
	if err != nil {
		return err
	}
	if !t.open || t.num != n {
		return fmt.Errorf("want opening tag %d: %w", n, errTagForm)
	}
	return nil
}

// enclosed returns the raw bytes between the opening tag n (already consumed) and its
// matching closing tag, which it consumes, checking the nesting in between.
func (r *reader) enclosed(n uint32) ([]byte, error) {
	start := r.pos
	var open [maxTagDepth]uint32
	depth := 0
	for count := 0; ; count++ {
		if count > maxTagsPerValue {
			return nil, errTooDeep
		}
		t, err := r.next()
		if err != nil {
			return nil, err
		}
		switch {
		case t.open:
			if depth >= maxTagDepth {
				return nil, errTooDeep
			}
			open[depth] = t.num
			depth++
		case t.close && depth == 0:
			if t.num != n {
				return nil, errTagForm
			}
			return r.b[start : r.pos-tagHeaderLen(t.num)], nil
		case t.close:
			if open[depth-1] != t.num {
				return nil, errTagForm
			}
			depth--
		}
	}
}

func tagHeaderLen(num uint32) int {
	if num >= 15 {
		return 2
	}
	return 1
}

// decodeUnsigned decodes 1 to 4 big-endian octets.
func decodeUnsigned(b []byte) (uint32, error) {
	if len(b) == 0 || len(b) > 4 {
		return 0, errTagForm
	}
	var v uint32
	for _, c := range b {
		v = v<<8 | uint32(c)
	}
	return v, nil
}

// decodeSigned decodes 1 to 4 big-endian two's-complement octets.
func decodeSigned(b []byte) (int32, error) {
	if len(b) == 0 || len(b) > 4 {
		return 0, errTagForm
	}
	v := int32(int8(b[0]))
	for _, c := range b[1:] {
		v = v<<8 | int32(c)
	}
	return v, nil
}

// appValue is a decoded primitive application value.
type appValue struct {
	tag  uint32
	u    uint32
	i    int32
	f    float64
	b    bool
	s    string // character string (UTF-8) or octets
	raw  []byte
	oid  objectID
	bits []byte // bit string: unused-bit count then octets
}

// decodeApp decodes a primitive application-tagged value.
func decodeApp(t tag) (appValue, error) {
	v := appValue{tag: t.num, raw: t.data}
	if t.context || t.open || t.close {
		return v, errTagForm
	}
	var err error
	switch t.num {
	case tagNull:
		if len(t.data) != 0 {
			return v, errTagForm
		}
	case tagBoolean:
		v.b = t.boolVal
	case tagUnsigned, tagEnumerated:
		v.u, err = decodeUnsigned(t.data)
	case tagSigned:
		v.i, err = decodeSigned(t.data)
	case tagReal:
		if len(t.data) != 4 {
			return v, errTagForm
		}
		v.f = float64(math.Float32frombits(binary.BigEndian.Uint32(t.data)))
	case tagDouble:
		if len(t.data) != 8 {
			return v, errTagForm
		}
		v.f = math.Float64frombits(binary.BigEndian.Uint64(t.data))
	case tagOctetString:
		v.s = string(t.data)
	case tagCharString:
		if len(t.data) == 0 {
			return v, errTagForm
		}
		switch t.data[0] {
		case charsetUTF8:
			if !utf8.Valid(t.data[1:]) {
				return v, errTagForm
			}
			v.s = string(t.data[1:])
		case charsetUCS2:
			if len(t.data)%2 != 1 {
				return v, errTagForm
			}
			rs := make([]rune, 0, len(t.data)/2)
			for i := 1; i+1 < len(t.data); i += 2 {
				rs = append(rs, rune(binary.BigEndian.Uint16(t.data[i:])))
			}
			v.s = string(rs)
		default:
			return v, errTagForm
		}
	case tagBitString:
		if len(t.data) == 0 || t.data[0] > 7 || (len(t.data) == 1 && t.data[0] != 0) {
			return v, errTagForm
		}
		v.bits = t.data
	case tagDate, tagTime:
		if len(t.data) != 4 {
			return v, errTagForm
		}
	case tagObjectID:
		if len(t.data) != 4 {
			return v, errTagForm
		}
		v.oid = decodeObjectID(binary.BigEndian.Uint32(t.data))
	default:
		return v, errTagForm
	}
	return v, err
}

// decodeValues decodes a property value (the content of a [3] or [4] constructed tag):
// a sequence of application values and nested constructed values, bounded in depth and
// count. It returns the primitive values in order.
func decodeValues(b []byte) ([]appValue, error) {
	var out []appValue
	var open [maxTagDepth]uint32
	depth := 0
	for pos, count := 0, 0; pos < len(b); count++ {
		if count >= maxTagsPerValue {
			return nil, errTooDeep
		}
		t, n, err := decodeTag(b[pos:])
		if err != nil {
			return nil, err
		}
		pos += n
		switch {
		case t.open:
			if depth >= maxTagDepth {
				return nil, errTooDeep
			}
			open[depth] = t.num
			depth++
		case t.close:
			if depth == 0 || open[depth-1] != t.num {
				return nil, errTagForm
			}
			depth--
		case t.context:
			// context-tagged primitives inside constructed values: keep the bytes
		default:
			v, err := decodeApp(t)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
	}
	if depth != 0 {
		return nil, errTruncated
	}
	return out, nil
}

// Encoding.

// appendTagHeader appends a tag header for content of length l.
func appendTagHeader(b []byte, num uint32, context bool, l int) []byte {
	h := byte(0)
	if context {
		h = 0x08
	}
	ext := num >= 15 // the tag number follows in its own octet
	if ext {
		h |= 0xF0
	} else {
		h |= byte(num) << 4
	}
	switch {
	case l <= 4:
		b = append(b, h|byte(l))
		if ext {
			b = append(b, byte(num))
		}
	default:
		b = append(b, h|5)
		if ext {
			b = append(b, byte(num))
		}
		switch {
		case l < 254:
			b = append(b, byte(l))
		case l <= 0xFFFF:
			b = append(b, 254, byte(l>>8), byte(l))
		default:
			b = append(b, 255, byte(l>>24), byte(l>>16), byte(l>>8), byte(l))
		}
	}
	return b
}

func appendOpen(b []byte, num uint32) []byte {
	if num >= 15 {
		return append(b, 0xFE, byte(num))
	}
	return append(b, byte(num)<<4|0x0E)
}

func appendClose(b []byte, num uint32) []byte {
	if num >= 15 {
		return append(b, 0xFF, byte(num))
	}
	return append(b, byte(num)<<4|0x0F)
}

func unsignedBytes(v uint32) []byte {
	switch {
	case v < 1<<8:
		return []byte{byte(v)}
	case v < 1<<16:
		return []byte{byte(v >> 8), byte(v)}
	case v < 1<<24:
		return []byte{byte(v >> 16), byte(v >> 8), byte(v)}
	}
	return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
}

func signedBytes(v int32) []byte {
	switch {
	case v >= -128 && v < 128:
		return []byte{byte(v)}
	case v >= -32768 && v < 32768:
		return []byte{byte(v >> 8), byte(v)}
	case v >= -(1<<23) && v < 1<<23:
		return []byte{byte(v >> 16), byte(v >> 8), byte(v)}
	}
	return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
}

func appendUnsigned(b []byte, v uint32) []byte {
	u := unsignedBytes(v)
	return append(appendTagHeader(b, tagUnsigned, false, len(u)), u...)
}

func appendCtxUnsigned(b []byte, num, v uint32) []byte {
	u := unsignedBytes(v)
	return append(appendTagHeader(b, num, true, len(u)), u...)
}

func appendEnumerated(b []byte, v uint32) []byte {
	u := unsignedBytes(v)
	return append(appendTagHeader(b, tagEnumerated, false, len(u)), u...)
}

func appendSigned(b []byte, v int32) []byte {
	u := signedBytes(v)
	return append(appendTagHeader(b, tagSigned, false, len(u)), u...)
}

func appendBoolean(b []byte, v bool) []byte {
	if v {
		return append(b, 0x11)
	}
	return append(b, 0x10)
}

func appendNull(b []byte) []byte { return append(b, 0x00) }

func appendReal(b []byte, v float32) []byte {
	return binary.BigEndian.AppendUint32(append(b, 0x44), math.Float32bits(v))
}

func appendDouble(b []byte, v float64) []byte {
	return binary.BigEndian.AppendUint64(append(b, 0x55, 8), math.Float64bits(v))
}

func appendCharString(b []byte, s string) []byte {
	b = appendTagHeader(b, tagCharString, false, len(s)+1)
	b = append(b, charsetUTF8)
	return append(b, s...)
}

func appendOctetString(b []byte, s []byte) []byte {
	return append(appendTagHeader(b, tagOctetString, false, len(s)), s...)
}

// appendBitString appends a bit string of n bits, bit i set when set(i).
func appendBitString(b []byte, n int, set func(i int) bool) []byte {
	octets := (n + 7) / 8
	b = appendTagHeader(b, tagBitString, false, octets+1)
	b = append(b, byte(octets*8-n))
	for o := range octets {
		var c byte
		for i := range 8 {
			if bit := o*8 + i; bit < n && set(bit) {
				c |= 0x80 >> i
			}
		}
		b = append(b, c)
	}
	return b
}

func appendObjectID(b []byte, o objectID) []byte {
	return binary.BigEndian.AppendUint32(append(b, 0xC4), o.encode())
}

func appendCtxObjectID(b []byte, num uint32, o objectID) []byte {
	return binary.BigEndian.AppendUint32(appendTagHeader(b, num, true, 4), o.encode())
}

// appendDate appends a date: year-1900, month, day, day of week (1 = Monday).
func appendDate(b []byte, year, month, day, wday int) []byte {
	return append(b, 0xA4, byte(year-1900), byte(month), byte(day), byte(wday))
}

// appendTime appends a time: hour, minute, second, hundredths.
func appendTime(b []byte, h, m, s, cs int) []byte {
	return append(b, 0xB4, byte(h), byte(m), byte(s), byte(cs))
}
