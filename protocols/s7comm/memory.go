package s7comm

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
)

// Backing formats of a databus list that holds an area.
const (
	FormatBytes = iota // one list element per byte
	FormatWords        // one element per 16-bit big-endian word (Modbus registers)
	FormatBits         // one element per bit, LSB first (Modbus coils and inputs)
)

// maxAreaSize bounds one area (an S7-300 DB is at most 64 KiB).
const maxAreaSize = 65536

// Area is one addressable memory area of the emulated CPU.
type Area struct {
	Code   byte   // AreaI, AreaQ, AreaM, AreaDB
	DB     uint16 // DB number (AreaDB only)
	Size   int    // bytes
	Key    string // databus key holding the contents; empty: per-host memory, zeroed at start
	Format int
	index  int // its place in the profile's areas: its slot in a host's memory
}

func (a *Area) String() string {
	if a.Code == AreaDB {
		return fmt.Sprintf("DB%d", a.DB)
	}
	return areaName(a.Code)
}

func areaName(code byte) string {
	switch code {
	case AreaI:
		return "I"
	case AreaQ:
		return "Q"
	case AreaM:
		return "M"
	case AreaDB:
		return "DB"
	case AreaDI:
		return "DI"
	case AreaP:
		return "P"
	case AreaL:
		return "L"
	case AreaV:
		return "V"
	case AreaCounter:
		return "C"
	case AreaTimer:
		return "T"
	}
	return fmt.Sprintf("0x%02x", code)
}

func parseMemory(sec *profiles.Section, n *profiles.Node, cfg *config) error {
	sec.CheckChildren(n, "area")
	for _, a := range n.ChildrenNamed("area") {
		t, _ := a.Attr("type")
		ar := &Area{}
		switch strings.ToUpper(strings.TrimSpace(t)) {
		case "I", "E":
			ar.Code = AreaI
		case "Q", "A":
			ar.Code = AreaQ
		case "M", "F":
			ar.Code = AreaM
		case "DB":
			ar.Code = AreaDB
			s, _ := a.Attr("number")
			v, err := parseWord(s)
			if err != nil || v < 1 || v > 65535 {
				return a.Errorf("DB number %q is not from 1 to 65535", s)
			}
			ar.DB = uint16(v)
		default:
			return a.Errorf("area type %q is not I, Q, M or DB", t)
		}
		s, _ := a.Attr("size")
		v, err := parseWord(s)
		if err != nil || v < 1 || v > maxAreaSize {
			return a.Errorf("size %q is not from 1 to %d bytes", s, maxAreaSize)
		}
		ar.Size = int(v)
		ar.Key, _ = a.Attr("key")
		ar.Key = strings.TrimSpace(ar.Key)
		if ar.Key != "" && !sec.Profile.Schema.Has(ar.Key) {
			sec.Warnf(a, "databus key %q is not defined; the area starts zeroed", ar.Key)
		}
		f, _ := a.Attr("format")
		switch strings.ToLower(strings.TrimSpace(f)) {
		case "", "bytes":
			ar.Format = FormatBytes
		case "words":
			ar.Format = FormatWords
		case "bits":
			ar.Format = FormatBits
		default:
			return a.Errorf("format %q is not bytes, words or bits", f)
		}
		for _, o := range cfg.Areas {
			if o.Code == ar.Code && o.DB == ar.DB {
				return a.Errorf("area %s defined twice", ar)
			}
		}
		ar.index = len(cfg.Areas)
		cfg.Areas = append(cfg.Areas, ar)
	}
	return nil
}

// area returns the area an item addresses, or nil.
func (c *config) area(code byte, db uint16) *Area {
	if code != AreaDB {
		db = 0
	}
	for _, a := range c.Areas {
		if a.Code == code && a.DB == db {
			return a
		}
	}
	return nil
}

// memory is one host's unkeyed areas.
type memory struct {
	mu    sync.Mutex
	areas [][]byte // by Area.index; nil: not touched yet
}

const memStateKey = "s7comm.memory"

func hostMemory(h *protocols.Host) *memory {
	return h.State(memStateKey, func() any { return &memory{} }).(*memory)
}

// buf returns area a's bytes on this host, zeroed the first time; m.mu held.
func (m *memory) buf(a *Area) []byte {
	if a.index >= len(m.areas) {
		m.areas = append(m.areas, make([][]byte, a.index+1-len(m.areas))...)
	}
	b := m.areas[a.index]
	if b == nil {
		b = make([]byte, a.Size)
		m.areas[a.index] = b
	}
	return b
}

// listByte returns byte i of an area held as a databus list in the given format.
func listByte(list []any, format, i int) byte {
	elem := func(j int) int64 {
		if j < 0 || j >= len(list) {
			return 0
		}
		v, err := profiles.ToInt(list[j])
		if err != nil {
			return 0
		}
		return v
	}
	return elemByte(elem, format, i)
}

// elemByte is byte i of a list whose element j is elem(j) (0 past its ends).
func elemByte(elem func(j int) int64, format, i int) byte {
	switch format {
	case FormatWords:
		w := elem(i / 2)
		if i%2 == 0 {
			return byte(w >> 8)
		}
		return byte(w)
	case FormatBits:
		var b byte
		for k := 0; k < 8; k++ {
			if elem(i*8+k) != 0 {
				b |= 1 << k
			}
		}
		return b
	}
	return byte(elem(i))
}

// setListByte stores byte i into a (copied, long enough) list.
func setListByte(list []any, format, i int, v byte) {
	switch format {
	case FormatWords:
		w, _ := profiles.ToInt(list[i/2])
		if i%2 == 0 {
			w = int64(v)<<8 | w&0xFF
		} else {
			w = w&0xFF00 | int64(v)
		}
		list[i/2] = w & 0xFFFF
	case FormatBits:
		for k := 0; k < 8; k++ {
			old := list[i*8+k]
			bit := v&(1<<k) != 0
			if _, isBool := old.(bool); isBool {
				list[i*8+k] = bit
			} else if bit {
				list[i*8+k] = int64(1)
			} else {
				list[i*8+k] = int64(0)
			}
		}
	default:
		list[i] = int64(v)
	}
}

func listLen(format, size int) int {
	switch format {
	case FormatWords:
		return (size + 1) / 2
	case FormatBits:
		return size * 8
	}
	return size
}

// appendAreaMem appends the n bytes at off of area a on host h to dst; m is the host's
// memory when the caller has it (nil: looked up when needed). The caller checked the bounds.
func appendAreaMem(dst []byte, h *protocols.Host, m *memory, a *Area, off, n int) []byte {
	dst = slices.Grow(dst, n)
	out := dst[len(dst) : len(dst)+n]
	clear(out)
	dst = dst[:len(dst)+n]
	if a.Key != "" && h.Databus != nil {
		if il, ok, err := h.Databus.GetIntList(a.Key); err == nil && ok { // compact: read in place
			elem := func(j int) int64 {
				if j < 0 || j >= il.Len() {
					return 0
				}
				return il.At(j)
			}
			for i := range out {
				out[i] = elemByte(elem, a.Format, off+i)
			}
			return dst
		}
		if v, err := h.Databus.Get(a.Key); err == nil {
			if list, ok := v.([]any); ok {
				for i := range out {
					out[i] = listByte(list, a.Format, off+i)
				}
				return dst
			}
			if s, ok := v.(string); ok && off < len(s) {
				copy(out, s[off:])
			}
			return dst
		}
	}
	if m == nil {
		m = hostMemory(h)
	}
	m.mu.Lock()
	copy(out, m.buf(a)[off:off+n])
	m.mu.Unlock()
	return dst
}

// writeArea stores data at off of area a on host h; mask, when non-zero, limits the write
// to those bits of the single byte written (a BIT item). The caller checked the bounds.
func writeArea(h *protocols.Host, a *Area, off int, data []byte, mask byte) error {
	merge := func(old byte, i int) byte {
		if mask == 0 {
			return data[i]
		}
		return old&^mask | data[i]&mask
	}
	if a.Key != "" && h.Databus != nil {
		err := h.Databus.Update(a.Key, func(cur any) (any, error) {
			old, _ := cur.([]any)
			n := max(len(old), listLen(a.Format, a.Size))
			list := make([]any, n)
			copy(list, old)
			for i := len(old); i < n; i++ {
				list[i] = int64(0)
			}
			for i := range data {
				setListByte(list, a.Format, off+i, merge(listByte(list, a.Format, off+i), i))
			}
			return list, nil
		})
		if err == nil {
			return nil
		}
		// key not defined after all: fall through to per-host memory
	}
	m := hostMemory(h)
	m.mu.Lock()
	b := m.buf(a)
	for i := range data {
		b[off+i] = merge(b[off+i], i)
	}
	m.mu.Unlock()
	return nil
}
