package snmp

import (
	"errors"
	"math"
)

// BER tags used by SNMP.
const (
	tagInteger     = 0x02
	tagOctetString = 0x04
	tagNull        = 0x05
	tagOID         = 0x06
	tagSequence    = 0x30
	tagIPAddress   = 0x40
	tagCounter32   = 0x41
	tagGauge32     = 0x42
	tagTimeTicks   = 0x43
	tagOpaque      = 0x44
	tagCounter64   = 0x46

	tagNoSuchObject   = 0x80
	tagNoSuchInstance = 0x81
	tagEndOfMibView   = 0x82
)

// PDU types.
const (
	pduGet      = 0xa0
	pduGetNext  = 0xa1
	pduResponse = 0xa2
	pduSet      = 0xa3
	pduTrapV1   = 0xa4
	pduGetBulk  = 0xa5
	pduInform   = 0xa6
	pduTrapV2   = 0xa7
	pduReport   = 0xa8
)

// maxOIDLen bounds the sub-identifiers of an OID (RFC 2578: at most 128).
const maxOIDLen = 128

var errBER = errors.New("malformed BER")

// readTLV reads one definite-length TLV with a one-byte tag from b and returns the tag, the
// content and the remaining bytes.
func readTLV(b []byte) (tag byte, content, rest []byte, err error) {
	if len(b) < 2 {
		return 0, nil, nil, errBER
	}
	tag = b[0]
	if tag&0x1f == 0x1f { // multi-byte tags do not occur in SNMP
		return 0, nil, nil, errBER
	}
	l := int(b[1])
	p := 2
	if l&0x80 != 0 {
		n := l & 0x7f
		if n == 0 || n > 4 || len(b) < 2+n {
			return 0, nil, nil, errBER
		}
		l = 0
		for i := 0; i < n; i++ {
			l = l<<8 | int(b[2+i])
		}
		p += n
		if l < 0 {
			return 0, nil, nil, errBER
		}
	}
	if l > len(b)-p {
		return 0, nil, nil, errBER
	}
	return tag, b[p : p+l], b[p+l:], nil
}

// expect reads a TLV that must carry tag.
func expect(b []byte, tag byte) (content, rest []byte, err error) {
	t, c, r, err := readTLV(b)
	if err != nil {
		return nil, nil, err
	}
	if t != tag {
		return nil, nil, errBER
	}
	return c, r, nil
}

// parseInt decodes a two's-complement INTEGER content of at most 8 bytes.
func parseInt(c []byte) (int64, error) {
	if len(c) == 0 || len(c) > 8 {
		return 0, errBER
	}
	v := int64(int8(c[0]))
	for _, x := range c[1:] {
		v = v<<8 | int64(x)
	}
	return v, nil
}

// parseUint decodes an unsigned application integer (Counter32, Counter64 …) of at most 9
// bytes (a leading zero byte keeps the sign bit clear).
func parseUint(c []byte) (uint64, error) {
	if len(c) == 0 || len(c) > 9 || (len(c) == 9 && c[0] != 0) {
		return 0, errBER
	}
	var v uint64
	for _, x := range c {
		v = v<<8 | uint64(x)
	}
	return v, nil
}

// readInt reads an INTEGER TLV that must fit an int32.
func readInt32(b []byte) (int32, []byte, error) {
	c, rest, err := expect(b, tagInteger)
	if err != nil {
		return 0, nil, err
	}
	v, err := parseInt(c)
	if err != nil || v < math.MinInt32 || v > math.MaxInt32 {
		return 0, nil, errBER
	}
	return int32(v), rest, nil
}

// decodeOID decodes OID content into dst (reusing its storage). It rejects sub-identifiers
// above 2^32-1 and OIDs longer than maxOIDLen.
func decodeOID(c []byte, dst []uint32) ([]uint32, error) {
	dst = dst[:0]
	if len(c) == 0 {
		return dst, errBER
	}
	var v uint64
	first := true
	for i, x := range c {
		if v == 0 && x == 0x80 { // non-minimal encoding
			return dst, errBER
		}
		v = v<<7 | uint64(x&0x7f)
		if v > math.MaxUint32 {
			return dst, errBER
		}
		if x&0x80 != 0 {
			if i == len(c)-1 {
				return dst, errBER
			}
			continue
		}
		if first {
			first = false
			switch {
			case v < 40:
				dst = append(dst, 0, uint32(v))
			case v < 80:
				dst = append(dst, 1, uint32(v-40))
			default:
				dst = append(dst, 2, uint32(v-80))
			}
		} else {
			dst = append(dst, uint32(v))
		}
		if len(dst) > maxOIDLen {
			return dst, errBER
		}
		v = 0
	}
	return dst, nil
}

// appendOIDContent appends the BER content of oid (at least two arcs).
func appendOIDContent(b []byte, oid []uint32) []byte {
	if len(oid) < 2 {
		return append(b, 0)
	}
	b = appendBase128(b, uint64(oid[0])*40+uint64(oid[1]))
	for _, s := range oid[2:] {
		b = appendBase128(b, uint64(s))
	}
	return b
}

func appendBase128(b []byte, v uint64) []byte {
	n := 1
	for x := v >> 7; x > 0; x >>= 7 {
		n++
	}
	for i := n - 1; i >= 0; i-- {
		c := byte(v>>(7*uint(i))) & 0x7f
		if i > 0 {
			c |= 0x80
		}
		b = append(b, c)
	}
	return b
}

// lenLen is the size of a BER length field for n content bytes.
func lenLen(n int) int {
	switch {
	case n < 0x80:
		return 1
	case n <= 0xff:
		return 2
	case n <= 0xffff:
		return 3
	case n <= 0xffffff:
		return 4
	}
	return 5
}

// tlvLen is the encoded size of a TLV with n content bytes.
func tlvLen(n int) int { return 1 + lenLen(n) + n }

// appendHeader appends a tag and a definite length.
func appendHeader(b []byte, tag byte, n int) []byte {
	b = append(b, tag)
	switch {
	case n < 0x80:
		return append(b, byte(n))
	case n <= 0xff:
		return append(b, 0x81, byte(n))
	case n <= 0xffff:
		return append(b, 0x82, byte(n>>8), byte(n))
	case n <= 0xffffff:
		return append(b, 0x83, byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, 0x84, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

// intContentLen is the minimal two's-complement size of v.
func intContentLen(v int64) int {
	n := 1
	for v > 127 || v < -128 {
		v >>= 8
		n++
	}
	return n
}

func appendInt(b []byte, tag byte, v int64) []byte {
	n := intContentLen(v)
	b = append(b, tag, byte(n))
	for i := n - 1; i >= 0; i-- {
		b = append(b, byte(v>>(8*uint(i))))
	}
	return b
}

// uintContentLen is the size of an unsigned application integer, with a leading zero byte
// when the top bit would be set.
func uintContentLen(v uint64) int {
	n := 1
	for x := v >> 8; x > 0; x >>= 8 {
		n++
	}
	if v>>(8*uint(n)-1)&1 == 1 {
		n++
	}
	return n
}

func appendUint(b []byte, tag byte, v uint64) []byte {
	n := uintContentLen(v)
	b = append(b, tag, byte(n))
	for i := n - 1; i >= 0; i-- {
		if i >= 8 {
			b = append(b, 0)
			continue
		}
		b = append(b, byte(v>>(8*uint(i))))
	}
	return b
}

func appendOctets(b []byte, tag byte, s []byte) []byte {
	b = appendHeader(b, tag, len(s))
	return append(b, s...)
}

func appendString(b []byte, tag byte, s string) []byte {
	b = appendHeader(b, tag, len(s))
	return append(b, s...)
}

// compareOID orders OIDs lexicographically by sub-identifier.
func compareOID(a, b []uint32) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			if a[i] < b[i] {
				return -1
			}
			return 1
		}
	}
	switch {
	case len(a) < len(b):
		return -1
	case len(a) > len(b):
		return 1
	}
	return 0
}

// oidString formats an OID in dotted form.
func oidString(oid []uint32) string {
	b := make([]byte, 0, len(oid)*4)
	for i, s := range oid {
		if i > 0 {
			b = append(b, '.')
		}
		b = appendUintDec(b, uint64(s))
	}
	return string(b)
}

func appendUintDec(b []byte, v uint64) []byte {
	var tmp [20]byte
	i := len(tmp)
	for {
		i--
		tmp[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return append(b, tmp[i:]...)
}

// parseOIDString parses "1.3.6.1" (a leading dot is allowed).
func parseOIDString(s string) ([]uint32, error) { return appendOIDString(nil, s) }

// appendOIDString is parseOIDString appending the sub-identifiers to out, so that a caller
// with a buffer of its own allocates nothing.
func appendOIDString(out []uint32, s string) ([]uint32, error) {
	if len(s) > 0 && s[0] == '.' {
		s = s[1:]
	}
	if s == "" {
		return nil, errors.New("empty OID")
	}
	start := len(out)
	var v uint64
	digits := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			if digits == 0 {
				return nil, errors.New("empty sub-identifier in OID " + s)
			}
			if len(out)-start == maxOIDLen {
				return nil, errors.New("OID too long")
			}
			out = append(out, uint32(v))
			v, digits = 0, 0
			continue
		}
		c := s[i]
		if c < '0' || c > '9' {
			return nil, errors.New("bad character in OID " + s)
		}
		v = v*10 + uint64(c-'0')
		digits++
		if v > math.MaxUint32 {
			return nil, errors.New("sub-identifier too large in OID " + s)
		}
	}
	return out, nil
}
