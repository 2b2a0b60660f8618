package modbus

import (
	"encoding/binary"
	"fmt"

	"github.com/icsnare/icsnare/profiles"
)

// Blocks live in the host's databus as lists (Conpot's model), so a write through Modbus
// shows in every protocol that reads the same key. Elements are int64 normally; bool,
// float64 and numeric strings are read too. Elements past the end of a shorter list read 0.

// values is a block's list as read: the databus's compact integer list when it keeps one
// (read without copying), else its elements.
type values struct {
	ints *profiles.IntList
	l    []any
}

// list returns the databus value of b as a list (a scalar is a list of one).
func list(db *profiles.Databus, b *block) (values, error) {
	if il, ok, err := db.GetIntListKey(b.ref); err != nil {
		return values{}, err
	} else if ok {
		return values{ints: il}, nil
	}
	v, err := db.GetKey(b.ref)
	if err != nil {
		return values{}, err
	}
	if l, ok := v.([]any); ok {
		return values{l: l}, nil
	}
	return values{l: []any{v}}, nil
}

// at returns element i as a register; elements past the end read 0.
func (v values) at(i int) uint16 {
	if v.ints != nil {
		if i >= v.ints.Len() {
			return 0
		}
		return uint16(v.ints.At(i))
	}
	return regAt(v.l, i)
}

func regValue(v any) uint16 {
	switch x := v.(type) {
	case int64:
		return uint16(x)
	case bool:
		if x {
			return 1
		}
		return 0
	case nil:
		return 0
	case float64:
		return uint16(int64(x))
	}
	i, err := profiles.ToInt(v)
	if err != nil {
		return 0
	}
	return uint16(i)
}

func regAt(l []any, i int) uint16 {
	if i >= len(l) {
		return 0
	}
	return regValue(l[i])
}

// appendRegisters appends the byte count and qty registers from addr (FC 3, 4, 23 replies).
func appendRegisters(dst []byte, db *profiles.Databus, b *block, addr, qty int) ([]byte, error) {
	l, err := list(db, b)
	if err != nil {
		return dst, err
	}
	dst = append(dst, byte(2*qty))
	off := addr - b.start
	if l.ints != nil { // the compact list's own loop; registers past its end read 0
		n := min(qty, max(l.ints.Len()-off, 0))
		if n > 0 {
			dst = l.ints.AppendBE16(dst, off, n)
		}
		for ; n < qty; n++ {
			dst = append(dst, 0, 0)
		}
		return dst, nil
	}
	for i := 0; i < qty; i++ {
		r := l.at(off + i)
		dst = append(dst, byte(r>>8), byte(r))
	}
	return dst, nil
}

// appendBits appends the byte count and qty packed bits from addr (FC 1, 2 replies).
func appendBits(dst []byte, db *profiles.Databus, b *block, addr, qty int) ([]byte, error) {
	l, err := list(db, b)
	if err != nil {
		return dst, err
	}
	off := addr - b.start
	return AppendPackedBits(dst, qty, func(i int) bool { return l.at(off+i) != 0 }), nil
}

// update replaces elements of b's list with set(list) under the databus lock. The list is
// copied and grown to the block's size first, so readers never see a half-written list.
func update(db *profiles.Databus, b *block, set func(l []any)) error {
	err := db.Update(b.key, func(cur any) (any, error) {
		var old []any
		switch x := cur.(type) {
		case []any:
			old = x
		case nil:
		default:
			old = []any{x}
		}
		l := make([]any, max(len(old), b.size))
		copy(l, old)
		for i := len(old); i < len(l); i++ {
			l[i] = int64(0)
		}
		set(l)
		return l, nil
	})
	if err != nil {
		return fmt.Errorf("modbus: write %s: %w", b.key, err)
	}
	return nil
}

// bitValue keeps the element's type: a list of booleans stays booleans.
func bitValue(old any, on bool) any {
	if _, ok := old.(bool); ok {
		return on
	}
	if on {
		return int64(1)
	}
	return int64(0)
}

func writeBits(db *profiles.Databus, b *block, addr, qty int, get func(i int) bool) error {
	off := addr - b.start
	return update(db, b, func(l []any) {
		for i := 0; i < qty; i++ {
			l[off+i] = bitValue(l[off+i], get(i))
		}
	})
}

func writeRegisters(db *profiles.Databus, b *block, addr int, data []byte) error {
	off := addr - b.start
	return update(db, b, func(l []any) {
		for i := 0; i+1 < len(data); i += 2 {
			l[off+i/2] = int64(binary.BigEndian.Uint16(data[i:]))
		}
	})
}

// maskWrite applies FC 22: (current AND and) OR (or AND NOT and).
func maskWrite(db *profiles.Databus, b *block, addr int, and, or uint16) error {
	off := addr - b.start
	return update(db, b, func(l []any) {
		cur := regValue(l[off])
		l[off] = int64((cur & and) | (or &^ and))
	})
}
