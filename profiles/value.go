package profiles

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Databus values are kept on disk (the sensor's state directory) in a small tagged binary
// form that keeps the types the databus uses apart: int64 stays int64 (JSON would turn it
// into float64), []byte stays bytes. Register lists of small numbers cost a byte or two
// per element.

const (
	tagNil byte = iota
	tagFalse
	tagTrue
	tagInt
	tagFloat
	tagString
	tagBytes
	tagList
)

// maxValueDepth bounds the nesting of lists in an encoded value.
const maxValueDepth = 8

// ErrValueType is returned for a value the encoding cannot hold (a Dynamic, a map …).
var ErrValueType = errors.New("databus value type cannot be stored")

// AppendValue appends the encoding of v to dst. v is nil, bool, int, int64, float64,
// string, []byte or a list of those.
func AppendValue(dst []byte, v any) ([]byte, error) { return appendValue(dst, v, 0) }

func appendValue(dst []byte, v any, depth int) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(dst, tagNil), nil
	case bool:
		if x {
			return append(dst, tagTrue), nil
		}
		return append(dst, tagFalse), nil
	case int64:
		return binary.AppendVarint(append(dst, tagInt), x), nil
	case int:
		return binary.AppendVarint(append(dst, tagInt), int64(x)), nil
	case float64:
		return binary.BigEndian.AppendUint64(append(dst, tagFloat), math.Float64bits(x)), nil
	case string:
		return append(binary.AppendUvarint(append(dst, tagString), uint64(len(x))), x...), nil
	case []byte:
		return append(binary.AppendUvarint(append(dst, tagBytes), uint64(len(x))), x...), nil
	case []any:
		if depth >= maxValueDepth {
			return dst, fmt.Errorf("%w: lists nested deeper than %d", ErrValueType, maxValueDepth)
		}
		dst = binary.AppendUvarint(append(dst, tagList), uint64(len(x)))
		var err error
		for _, e := range x {
			if dst, err = appendValue(dst, e, depth+1); err != nil {
				return dst, err
			}
		}
		return dst, nil
	}
	return dst, fmt.Errorf("%w: %T", ErrValueType, v)
}

// DecodeValue reads a value written by AppendValue. It rejects trailing bytes, lengths
// past the end of b and lists nested too deep, so corrupt input costs at most len(b).
func DecodeValue(b []byte) (any, error) {
	v, rest, err := decodeValue(b, 0)
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("databus value: %d trailing bytes", len(rest))
	}
	return v, nil
}

var errShort = errors.New("databus value: truncated")

func decodeValue(b []byte, depth int) (any, []byte, error) {
	if len(b) == 0 {
		return nil, nil, errShort
	}
	tag, b := b[0], b[1:]
	switch tag {
	case tagNil:
		return nil, b, nil
	case tagFalse, tagTrue:
		return tag == tagTrue, b, nil
	case tagInt:
		x, n := binary.Varint(b)
		if n <= 0 {
			return nil, nil, errShort
		}
		return x, b[n:], nil
	case tagFloat:
		if len(b) < 8 {
			return nil, nil, errShort
		}
		return math.Float64frombits(binary.BigEndian.Uint64(b)), b[8:], nil
	case tagString, tagBytes:
		l, n := binary.Uvarint(b)
		if n <= 0 || l > uint64(len(b)-n) {
			return nil, nil, errShort
		}
		s := b[n : n+int(l)]
		if tag == tagString {
			return string(s), b[n+int(l):], nil
		}
		return append([]byte(nil), s...), b[n+int(l):], nil
	case tagList:
		if depth >= maxValueDepth {
			return nil, nil, fmt.Errorf("databus value: lists nested deeper than %d", maxValueDepth)
		}
		l, n := binary.Uvarint(b)
		if n <= 0 || l > uint64(len(b)-n) { // every element takes at least one byte
			return nil, nil, errShort
		}
		b = b[n:]
		out := make([]any, int(l))
		for i := range out {
			var err error
			if out[i], b, err = decodeValue(b, depth+1); err != nil {
				return nil, nil, err
			}
		}
		return out, b, nil
	}
	return nil, nil, fmt.Errorf("databus value: unknown tag %d", tag)
}
