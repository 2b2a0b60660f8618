package profiles

import "math"

// IntList is a compact, read-only list of integers: how the databus keeps a template's
// list of numbers (a Modbus register block, coil states), with one or two bytes per element
// when the values fit instead of an interface per element. Databus.Get still returns such a
// value as []any (a fresh copy); GetIntList reads it without copying.
type IntList struct {
	u8  []uint8
	u16 []uint16
	i64 []int64
}

// compactList returns a list of int64 values as an *IntList, anything else unchanged.
func compactList(v any) any {
	l, ok := v.([]any)
	if !ok || len(l) == 0 {
		return v
	}
	lo, hi := int64(math.MaxInt64), int64(math.MinInt64)
	for _, e := range l {
		x, ok := e.(int64)
		if !ok {
			return v
		}
		lo, hi = min(lo, x), max(hi, x)
	}
	out := &IntList{}
	switch {
	case lo >= 0 && hi <= math.MaxUint8:
		out.u8 = make([]uint8, len(l))
		for i, e := range l {
			out.u8[i] = uint8(e.(int64))
		}
	case lo >= 0 && hi <= math.MaxUint16:
		out.u16 = make([]uint16, len(l))
		for i, e := range l {
			out.u16[i] = uint16(e.(int64))
		}
	default:
		out.i64 = make([]int64, len(l))
		for i, e := range l {
			out.i64[i] = e.(int64)
		}
	}
	return out
}

// Len returns the number of elements.
func (l *IntList) Len() int { return len(l.u8) + len(l.u16) + len(l.i64) }

// At returns element i; it panics when i is out of range, as a slice does.
func (l *IntList) At(i int) int64 {
	switch {
	case l.u8 != nil:
		return int64(l.u8[i])
	case l.u16 != nil:
		return int64(l.u16[i])
	}
	return l.i64[i]
}

// List returns the elements as a new []any of int64.
func (l *IntList) List() []any {
	out := make([]any, l.Len())
	for i := range out {
		out[i] = l.At(i)
	}
	return out
}

// expand turns a compact list back into []any; anything else is returned unchanged.
func expand(v any) any {
	if l, ok := v.(*IntList); ok {
		return l.List()
	}
	return v
}
