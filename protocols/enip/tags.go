package enip

import (
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"sync"

	"github.com/icsnare/icsnare/profiles"
)

// values returns the tag's elements: what the host's databus holds once written, else the
// profile's initial value in every element. The slice is shared: do not modify it.
func (t *tag) values(db *profiles.Databus) []any {
	if db != nil {
		if v, ok, _ := db.Lookup(t.key); ok {
			if l, ok := v.([]any); ok && len(l) == t.size {
				return l
			}
		}
	}
	return t.initVals
}

// symbolType is the tag's Symbol object type word: the type code (or the STRING
// structure's template), bit 15 for a structure and bits 13-14 for one array dimension.
func (t *tag) symbolType() uint16 {
	v := t.typ.code
	if v == typeStruct {
		v = 0x8000 | handleSTR
	}
	if t.size > 1 {
		v |= 1 << 13
	}
	return v
}

// elementSize is the bytes one element takes in the controller (an SSTRING's capacity).
func (t *tag) elementSize() int {
	if t.typ.size == 0 {
		return 1 + 255
	}
	return t.typ.size
}

// appendTypeCode appends the type the Read Tag reply announces.
func (t *tag) appendTypeCode(dst []byte) []byte {
	dst = binary.LittleEndian.AppendUint16(dst, t.typ.code)
	if t.typ.code == typeStruct {
		dst = binary.LittleEndian.AppendUint16(dst, handleSTR)
	}
	return dst
}

// appendElements appends elements [from, from+n) in wire form.
func (t *tag) appendElements(dst []byte, vals []any, from, n int) []byte {
	for _, v := range vals[from : from+n] {
		switch t.typ.code {
		case typeBOOL, typeSINT:
			dst = append(dst, byte(asInt(v)))
		case typeINT:
			dst = binary.LittleEndian.AppendUint16(dst, uint16(asInt(v)))
		case typeDINT:
			dst = binary.LittleEndian.AppendUint32(dst, uint32(asInt(v)))
		case typeREAL:
			dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(float32(asFloat(v))))
		case typeSSTRING:
			dst = appendShortString(dst, asString(v))
		case typeStruct:
			s := asString(v)
			if len(s) > stringLen {
				s = s[:stringLen]
			}
			dst = binary.LittleEndian.AppendUint32(dst, uint32(len(s)))
			dst = append(dst, s...)
			dst = append(dst, make([]byte, stringLen-len(s))...)
		}
	}
	return dst
}

var (
	errShort = errors.New("not enough data")
	errLong  = errors.New("too much data")
)

// decodeElements decodes exactly n elements from b.
func (t *tag) decodeElements(b []byte, n int) ([]any, error) {
	out := make([]any, 0, n)
	for i := 0; i < n; i++ {
		sz := t.typ.size
		if t.typ.code == typeSSTRING {
			if len(b) < 1 {
				return nil, errShort
			}
			sz = 1 + int(b[0])
		}
		if len(b) < sz {
			return nil, errShort
		}
		e := b[:sz]
		b = b[sz:]
		switch t.typ.code {
		case typeBOOL:
			out = append(out, boolInt(e[0] != 0))
		case typeSINT:
			out = append(out, int64(int8(e[0])))
		case typeINT:
			out = append(out, int64(int16(binary.LittleEndian.Uint16(e))))
		case typeDINT:
			out = append(out, int64(int32(binary.LittleEndian.Uint32(e))))
		case typeREAL:
			out = append(out, float64(math.Float32frombits(binary.LittleEndian.Uint32(e))))
		case typeSSTRING:
			out = append(out, string(e[1:]))
		case typeStruct:
			l := int(binary.LittleEndian.Uint32(e))
			if l > stringLen {
				l = stringLen
			}
			out = append(out, string(e[4:4+l]))
		}
	}
	if len(b) != 0 {
		return nil, errLong
	}
	return out, nil
}

// store writes elements at index from into the host's databus; mu serialises the
// host's tag writes so concurrent partial writes do not lose each other.
func (t *tag) store(db *profiles.Databus, mu *sync.Mutex, from int, elems []any) {
	mu.Lock()
	defer mu.Unlock()
	n := slices.Clone(t.values(db))
	copy(n[from:], elems)
	db.Set(t.key, n)
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func asInt(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case float64:
		return int64(x)
	case bool:
		return boolInt(x)
	}
	i, _ := profiles.ToInt(v)
	return i
}

func asFloat(v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case int64:
		return float64(x)
	}
	return 0
}

func asString(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return profiles.FormatValue(v)
}
