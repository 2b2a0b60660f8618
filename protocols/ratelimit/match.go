package ratelimit

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/icsnare/icsnare/protocols"
)

// Bounds of what a class may declare; the XDP program accepts a subset (bpf.Rule).
const (
	// MaxPatterns bounds the alternatives of one class.
	MaxPatterns = 16
	// MaxByteMatches bounds the byte matches of one pattern.
	MaxByteMatches = 8
	// MaxMatchEnd bounds Offset+len(Value) of a byte match.
	MaxMatchEnd = 1024
	// MaxClasses bounds the classes of one port (built-in SNMP ones included).
	MaxClasses = 32
	// maxClassName is the longest class name (the kernel keeps 15 bytes and a NUL).
	maxClassName = 15
)

// SNMP's built-in classes, parsed from the BER header of v1/v2c requests.
var snmpClasses = map[string]byte{"get": 0xa0, "next": 0xa1, "set": 0xa3, "bulk": 0xa5}

// IsBuiltinClass reports whether name is one of SNMP's built-in, BER-parsed classes.
func IsBuiltinClass(name string) bool { _, ok := snmpClasses[name]; return ok }

// checkClassName validates a class name: "" or [a-z0-9_-]{1,15}.
func checkClassName(name string) error {
	if len(name) > maxClassName {
		return fmt.Errorf("class %q: longer than %d characters", name, maxClassName)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return fmt.Errorf("class %q: want lower-case letters, digits, '_' or '-'", name)
		}
	}
	return nil
}

// CheckPatterns validates a class's patterns against the bounds above.
func CheckPatterns(ps []protocols.Pattern) error {
	if len(ps) > MaxPatterns {
		return fmt.Errorf("%d patterns, at most %d", len(ps), MaxPatterns)
	}
	for i, p := range ps {
		if len(p) == 0 {
			return fmt.Errorf("pattern %d: empty", i+1)
		}
		if len(p) > MaxByteMatches {
			return fmt.Errorf("pattern %d: %d byte matches, at most %d", i+1, len(p), MaxByteMatches)
		}
		seen := map[int][2]byte{} // offset -> mask, value of the matches so far
		for _, m := range p {
			for j, v := range m.Value {
				mask := byte(0xff)
				if j < len(m.Mask) {
					mask = m.Mask[j]
				}
				o := seen[m.Offset+j]
				if (o[1]^v)&o[0]&mask != 0 {
					return fmt.Errorf("pattern %d: byte matches contradict at offset %d", i+1, m.Offset+j)
				}
				seen[m.Offset+j] = [2]byte{o[0] | mask, o[1] | v&mask}
			}
			if len(m.Value) == 0 {
				return fmt.Errorf("pattern %d: byte match at offset %d has no bytes", i+1, m.Offset)
			}
			if m.Offset < 0 || m.Offset+len(m.Value) > MaxMatchEnd {
				return fmt.Errorf("pattern %d: byte match at offset %d ends beyond byte %d", i+1, m.Offset, MaxMatchEnd)
			}
			if m.Mask != nil {
				if len(m.Mask) != len(m.Value) {
					return fmt.Errorf("pattern %d: offset %d: mask has %d bytes, value %d", i+1, m.Offset, len(m.Mask), len(m.Value))
				}
				for j := range m.Value {
					if m.Value[j]&^m.Mask[j] != 0 {
						return fmt.Errorf("pattern %d: offset %d: value %x has bits outside mask %x", i+1, m.Offset, m.Value, m.Mask)
					}
				}
			}
		}
	}
	return nil
}

// Matches reports whether payload matches pattern p (every byte match holds).
func Matches(p protocols.Pattern, payload []byte) bool {
	for _, m := range p {
		end := m.Offset + len(m.Value)
		if m.Offset < 0 || end > len(payload) {
			return false
		}
		b := payload[m.Offset:end]
		for i, v := range m.Value {
			mask := byte(0xff)
			if m.Mask != nil {
				mask = m.Mask[i]
			}
			if b[i]&mask != v {
				return false
			}
		}
	}
	return true
}

// ParsePattern reads a pattern written as space-separated byte matches
// "OFFSET:HEX" or "OFFSET:HEX/MASKHEX", e.g. BACnet Who-Is without NPDU options:
// "0:810b 4:01 5:00/fc 6:1008". Offsets are decimal.
func ParsePattern(s string) (protocols.Pattern, error) {
	var p protocols.Pattern
	for _, term := range strings.Fields(s) {
		off, rest, ok := strings.Cut(term, ":")
		if !ok {
			return nil, fmt.Errorf("byte match %q: want OFFSET:HEX[/MASK]", term)
		}
		o, err := strconv.Atoi(off)
		if err != nil || o < 0 {
			return nil, fmt.Errorf("byte match %q: bad offset %q", term, off)
		}
		val, mask, hasMask := strings.Cut(rest, "/")
		m := protocols.ByteMatch{Offset: o}
		if m.Value, err = hex.DecodeString(val); err != nil || len(m.Value) == 0 {
			return nil, fmt.Errorf("byte match %q: bad hex value %q", term, val)
		}
		if hasMask {
			if m.Mask, err = hex.DecodeString(mask); err != nil {
				return nil, fmt.Errorf("byte match %q: bad hex mask %q", term, mask)
			}
		}
		p = append(p, m)
	}
	if len(p) == 0 {
		return nil, fmt.Errorf("empty pattern")
	}
	if err := CheckPatterns([]protocols.Pattern{p}); err != nil {
		return nil, fmt.Errorf("pattern %q: %w", s, err)
	}
	return p, nil
}

// MustParsePattern is ParsePattern for literals in protocol packages; it panics on error.
func MustParsePattern(s string) protocols.Pattern {
	p, err := ParsePattern(s)
	if err != nil {
		panic(err)
	}
	return p
}

// FormatPattern writes p in ParsePattern's syntax.
func FormatPattern(p protocols.Pattern) string {
	var b strings.Builder
	for i, m := range p {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%d:%x", m.Offset, m.Value)
		if m.Mask != nil {
			fmt.Fprintf(&b, "/%x", m.Mask)
		}
	}
	return b.String()
}

// snmpClass reads an SNMP v1/v2c message header up to the PDU tag, exactly as the XDP
// program does (bpf/ratelimit.c snmp_class), and returns the built-in class or "".
func snmpClass(p []byte) string {
	if len(p) < 2 || p[0] != 0x30 {
		return ""
	}
	var off int
	switch {
	case p[1] == 0x81:
		off = 3
	case p[1] == 0x82:
		off = 4
	case p[1] < 0x80:
		off = 2
	default:
		return ""
	}
	if off+5 > len(p) || p[off] != 0x02 || p[off+1] != 1 || p[off+2] > 1 || p[off+3] != 0x04 {
		return ""
	}
	cl := int(p[off+4])
	off += 5
	if cl == 0x81 {
		if off+1 > len(p) {
			return ""
		}
		cl = int(p[off])
		off++
	} else if cl >= 0x80 {
		return ""
	}
	off += cl
	if off+1 > len(p) {
		return ""
	}
	for name, tag := range snmpClasses {
		if p[off] == tag {
			return name
		}
	}
	return ""
}
