package bpf

import (
	"bytes"
	"errors"
	"fmt"
	"math/bits"
	"strings"
)

const (
	nsPerMin = 60_000_000_000
	// maxSlots mirrors MAX_SLOTS in ratelimit.c; slot 0 holds port-less counters.
	maxSlots = 64
	// nrReasons mirrors NR_REASONS in ratelimit.c.
	nrReasons = 9
	// MaxRules is how many ports can be limited at once.
	MaxRules = maxSlots - 1
	// MatchBytes is the payload window pattern classes can test (MATCH_BYTES).
	MatchBytes = 32
	// MaxPatterns bounds the patterns of all classes of one port (MAX_PATTERNS).
	MaxPatterns = 16
	// firstMatchClass is the first class id of pattern classes (1..4 are SNMP's).
	firstMatchClass = 8
	// maxPerMinute bounds rates and bursts so that the kernel's unit arithmetic
	// (one request = 6e10 units in a uint64) cannot overflow.
	maxPerMinute = 100_000_000
)

// ErrNotExpressible marks rules the XDP program cannot enforce (a pattern testing bytes
// beyond MatchBytes, too many patterns on a port, too many rules); the sensor keeps such
// a port's limits in userspace.
var ErrNotExpressible = errors.New("not expressible in the XDP program")

// ByteMatch holds when the UDP payload is at least Offset+len(Value) bytes long and
// payload[Offset+i] & Mask[i] == Value[i] for every i (nil Mask: all ones), as
// protocols.ByteMatch.
type ByteMatch struct {
	Offset int
	Value  []byte
	Mask   []byte
}

// Pattern is one alternative of a class: all its byte matches hold.
type Pattern []ByteMatch

// Rule is the limit for one UDP destination port, or for one request class on it.
// Rates are requests per minute, as Conpot's SNMP "evasion" entities state them; 0
// means unlimited.
type Rule struct {
	Port uint16
	// Class is "" for every request to the port that no class takes; an SNMP command
	// class ("get", "next", "set", "bulk") when Match is empty: SNMP v1/v2c requests of
	// that PDU type; or any name ([a-z0-9_-], up to 15 bytes) of a class defined by
	// Match. Class rules have their own buckets. SNMP classes are tried first, then
	// pattern classes in the order they were first set; the first match wins.
	// Unclassified requests use the port's rule; if there is none, an unlimited one is
	// added.
	Class string
	// Match: the class's patterns (any alternative matches). Masked bytes must lie
	// within the payload's first MatchBytes bytes; all the port's classes together
	// have at most MaxPatterns patterns.
	Match     []Pattern
	PerSource int // requests per minute from one source address (IPv4 or IPv6)
	Global    int // requests per minute from all sources together
	// Burst is how many requests one source may send at once; 0 means PerSource (a
	// minute's worth, like Conpot's calendar-minute counter).
	Burst int
	// GlobalBurst is the global bucket's depth; 0 means Global.
	GlobalBurst int
	// Reserve is the part of the global bucket that only known sources (answered at
	// least twice while in the per-source table) can take, so that known clients keep
	// being answered during a flood from spoofed sources. 0 means GlobalBurst/4;
	// negative means none.
	Reserve int
}

// withDefaults fills the zero fields and validates the rule.
func (r Rule) withDefaults() (Rule, error) {
	if r.Port == 0 {
		return r, fmt.Errorf("rule: port 0")
	}
	if err := checkClass(r); err != nil {
		return r, fmt.Errorf("rule for port %d: %w", r.Port, err)
	}
	if r.PerSource < 0 || r.Global < 0 || r.Burst < 0 || r.GlobalBurst < 0 {
		return r, fmt.Errorf("rule for port %d: negative rate or burst", r.Port)
	}
	if r.Burst == 0 {
		r.Burst = r.PerSource
	}
	if r.GlobalBurst == 0 {
		r.GlobalBurst = r.Global
	}
	for _, v := range []int{r.PerSource, r.Global, r.Burst, r.GlobalBurst} {
		if v > maxPerMinute {
			return r, fmt.Errorf("rule for port %d: %d is above the maximum %d", r.Port, v, maxPerMinute)
		}
	}
	switch {
	case r.Reserve == 0:
		r.Reserve = r.GlobalBurst / 4
	case r.Reserve < 0:
		r.Reserve = 0
	}
	if r.Global > 0 && r.Reserve >= r.GlobalBurst {
		return r, fmt.Errorf("rule for port %d: reserve %d must be below the global burst %d", r.Port, r.Reserve, r.GlobalBurst)
	}
	if r.Global == 0 {
		r.GlobalBurst, r.Reserve = 0, 0
	}
	if r.PerSource == 0 {
		r.Burst = 0
	}
	return r, nil
}

// SNMP command classes, as enum snmp_class in ratelimit.c.
var classIDs = map[string]uint8{"": 0, "get": 1, "next": 2, "set": 3, "bulk": 4}

// checkClass validates the class name and its patterns.
func checkClass(r Rule) error {
	if len(r.Class) > 15 {
		return fmt.Errorf("class %q: longer than 15 bytes", r.Class)
	}
	for _, c := range r.Class {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return fmt.Errorf("class %q: want lower-case letters, digits, '_' or '-'", r.Class)
		}
	}
	if len(r.Match) == 0 {
		if _, ok := classIDs[r.Class]; !ok {
			return fmt.Errorf("class %q: no match and not an SNMP class (get, next, set, bulk): %w", r.Class, ErrNotExpressible)
		}
		return nil
	}
	if r.Class == "" {
		return fmt.Errorf("the port's default class has no match")
	}
	if len(r.Match) > MaxPatterns {
		return fmt.Errorf("class %q: %d patterns, at most %d: %w", r.Class, len(r.Match), MaxPatterns, ErrNotExpressible)
	}
	for i, p := range r.Match {
		if _, err := compilePattern(p); err != nil {
			return fmt.Errorf("class %q pattern %d: %w", r.Class, i+1, err)
		}
	}
	return nil
}

// compilePattern turns a pattern into the kernel's window form (class not set).
func compilePattern(p Pattern) (ratelimitPattern, error) {
	var k ratelimitPattern
	if len(p) == 0 {
		return k, fmt.Errorf("empty pattern")
	}
	need := 0
	for _, m := range p {
		if len(m.Value) == 0 || m.Offset < 0 || (m.Mask != nil && len(m.Mask) != len(m.Value)) {
			return k, fmt.Errorf("bad byte match at offset %d", m.Offset)
		}
		need = max(need, m.Offset+len(m.Value))
		for i, v := range m.Value {
			mask := byte(0xff)
			if m.Mask != nil {
				mask = m.Mask[i]
			}
			if v&^mask != 0 {
				return k, fmt.Errorf("offset %d: value has bits outside the mask", m.Offset+i)
			}
			if mask == 0 {
				continue
			}
			at := m.Offset + i
			if at >= MatchBytes {
				return k, fmt.Errorf("tests byte %d, beyond the first %d: %w", at, MatchBytes, ErrNotExpressible)
			}
			if (k.Value[at]^v)&k.Mask[at]&mask != 0 {
				return k, fmt.Errorf("byte matches contradict at offset %d", at)
			}
			k.Mask[at] |= mask
			k.Value[at] |= v
		}
	}
	if need > 0xffff {
		return k, fmt.Errorf("needs %d bytes: %w", need, ErrNotExpressible)
	}
	k.Need = uint16(need)
	return k, nil
}

// decodePattern is the inverse of compilePattern, in a normal form: one byte match
// over the masked window, and a zero-mask byte for a length beyond it.
func decodePattern(k ratelimitPattern) Pattern {
	lo, hi := -1, -1
	for i, m := range k.Mask {
		if m != 0 {
			if lo < 0 {
				lo = i
			}
			hi = i + 1
		}
	}
	var p Pattern
	if lo >= 0 {
		p = append(p, ByteMatch{Offset: lo, Value: bytes.Clone(k.Value[lo:hi]), Mask: bytes.Clone(k.Mask[lo:hi])})
	}
	if int(k.Need) > hi {
		p = append(p, ByteMatch{Offset: int(k.Need) - 1, Value: []byte{0}, Mask: []byte{0}})
	}
	return p
}

// String writes the pattern as "OFFSET:HEX[/MASK] ..." (protocols/ratelimit syntax).
func (p Pattern) String() string {
	var b strings.Builder
	for i, m := range p {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%d:%x", m.Offset, m.Value)
		if m.Mask != nil && !bytes.Equal(m.Mask, bytes.Repeat([]byte{0xff}, len(m.Mask))) {
			fmt.Fprintf(&b, "/%x", m.Mask)
		}
	}
	return b.String()
}

// Rule flags, as RULE_F_* in ratelimit.c.
const (
	ruleFlagSNMPClasses = 1
	ruleFlagMatch       = 2
)

// ruleKey identifies a rule: the map key is port | class<<16.
type ruleKey struct {
	port  uint16
	class uint8
}

func (k ruleKey) kernel() uint32 { return uint32(k.port) | uint32(k.class)<<16 }

func ruleKeyFrom(v uint32) ruleKey { return ruleKey{port: uint16(v), class: uint8(v >> 16)} }

// kernel converts the rule into the map value for slot.
func (r Rule) kernel(slot, flags uint32) ratelimitRule {
	k := ratelimitRule{Slot: slot, Flags: flags}
	copy(k.Name[:15], r.Class)
	if r.PerSource > 0 {
		k.SrcRate = uint64(r.PerSource)
		k.SrcBurst = uint64(r.Burst) * nsPerMin
		k.SrcFillNs = fillNs(k.SrcBurst, k.SrcRate)
	}
	if r.Global > 0 {
		k.GlobRate = uint64(r.Global)
		k.GlobBurst = uint64(r.GlobalBurst) * nsPerMin
		k.GlobFillNs = fillNs(k.GlobBurst, k.GlobRate)
		k.GlobReserve = uint64(r.Reserve) * nsPerMin
	}
	return k
}

// ruleFromKernel is the inverse of kernel (used by readers of pinned maps).
func ruleFromKernel(key ruleKey, k ratelimitRule) Rule {
	name, _, _ := bytes.Cut(k.Name[:], []byte{0})
	r := Rule{Port: key.port, Class: string(name), PerSource: int(k.SrcRate), Global: int(k.GlobRate)}
	r.Burst = int(k.SrcBurst / nsPerMin)
	r.GlobalBurst = int(k.GlobBurst / nsPerMin)
	r.Reserve = int(k.GlobReserve / nsPerMin)
	return r
}

// fillNs is ceil(burst/rate): the nanoseconds after which an empty bucket is full.
func fillNs(burst, rate uint64) uint64 {
	q, rem := bits.Div64(0, burst, rate)
	if rem != 0 {
		q++
	}
	return q
}
