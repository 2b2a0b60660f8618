package profiles

import (
	"fmt"
	"math"
)

// IntList is a compact, read-only list of integers: how the databus keeps a template's
// list of numbers (a Modbus register block, coil states), with one bit per element for a
// list of 0s and 1s and one or two bytes when the values fit, instead of an interface per
// element. Databus.Get still returns such a value as []any (a fresh copy); GetIntList reads
// it without copying.
type IntList struct {
	n     int32
	width uint8    // bits per element: 1, 8, 16 or 64
	lg    uint8    // log2(width): element i is in word i >> (6-lg), at bit (i mod 64/width) << lg
	w     []uint64 // the elements, packed little end first
}

// compactList returns a list of int64 values as an *IntList, anything else unchanged.
func compactList(v any) any {
	l, ok := v.([]any)
	if !ok || len(l) == 0 || len(l) > math.MaxInt32 {
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
	out := &IntList{n: int32(len(l)), width: 64, lg: 6}
	switch {
	case lo >= 0 && hi <= 1:
		out.width, out.lg = 1, 0
	case lo >= 0 && hi <= math.MaxUint8:
		out.width, out.lg = 8, 3
	case lo >= 0 && hi <= math.MaxUint16:
		out.width, out.lg = 16, 4
	}
	per := 64 / int(out.width)
	out.w = make([]uint64, (len(l)+per-1)/per)
	for i, e := range l {
		x := uint64(e.(int64))
		out.w[i/per] |= x << (uint(i%per) * uint(out.width))
	}
	return out
}

// Len returns the number of elements.
func (l *IntList) Len() int { return int(l.n) }

// At returns element i; it panics when i is out of range, as a slice does.
func (l *IntList) At(i int) int64 {
	if uint(i) >= uint(l.n) {
		panic(fmt.Sprintf("profiles: IntList index %d out of range [0:%d]", i, l.n))
	}
	return int64(l.at(uint(i)))
}

// at returns element i, which must be in range. Shifts, not a division by the elements
// per word: this is on Modbus's read path. For width 64 the shifts are 0 and the mask is
// all ones.
func (l *IntList) at(i uint) uint64 {
	sh := 6 - uint(l.lg)
	return l.w[i>>sh] >> ((i & (1<<sh - 1)) << l.lg) & (1<<l.width - 1)
}

// AppendBE16 appends elements [i, i+n) to dst as big-endian 16-bit values, each cut to its
// low 16 bits (Modbus's register encoding); it panics when the range is out of bounds.
func (l *IntList) AppendBE16(dst []byte, i, n int) []byte {
	if i < 0 || n < 0 || i > int(l.n)-n {
		panic(fmt.Sprintf("profiles: IntList range [%d:%d] out of range [0:%d]", i, i+n, l.n))
	}
	for j := uint(i); j < uint(i+n); j++ {
		v := l.at(j)
		dst = append(dst, byte(v>>8), byte(v))
	}
	return dst
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
