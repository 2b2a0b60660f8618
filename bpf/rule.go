package bpf

import (
	"fmt"
	"math/bits"
)

const (
	nsPerMin = 60_000_000_000
	// maxSlots mirrors MAX_SLOTS in ratelimit.c; slot 0 holds port-less counters.
	maxSlots = 64
	// nrReasons mirrors NR_REASONS in ratelimit.c.
	nrReasons = 8
	// MaxRules is how many ports can be limited at once.
	MaxRules = maxSlots - 1
	// maxPerMinute bounds rates and bursts so that the kernel's unit arithmetic
	// (one request = 6e10 units in a uint64) cannot overflow.
	maxPerMinute = 100_000_000
)

// Rule is the limit for one UDP destination port, or for one SNMP command class on
// it. Rates are requests per minute, as Conpot's SNMP "evasion" entities state them;
// 0 means unlimited.
type Rule struct {
	Port uint16
	// Class is "" for every request to the port, or an SNMP command class ("get",
	// "next", "set", "bulk"): SNMP v1/v2c requests of that PDU type then use this
	// rule, with their own buckets, instead of the port's rule. SNMPv3 (encrypted or
	// not, the PDU type is not parsed), other PDUs and unparseable datagrams use the
	// port's rule; if there is none, an unlimited one is added.
	Class     string
	PerSource int // requests per minute from one source address (IPv4 or IPv6)
	Global    int // requests per minute from all sources together
	// Burst is how many requests one source may send at once; 0 means PerSource (a
	// minute's worth, like Conpot's calendar-minute counter).
	Burst int
	// GlobalBurst is the global bucket's depth; 0 means Global.
	GlobalBurst int
	// Reserve is the part of the global bucket that unknown sources (not yet in the
	// per-source table) cannot take, so that known clients keep being answered during a
	// flood from spoofed sources. 0 means GlobalBurst/4; negative means none.
	Reserve int
}

// withDefaults fills the zero fields and validates the rule.
func (r Rule) withDefaults() (Rule, error) {
	if r.Port == 0 {
		return r, fmt.Errorf("rule: port 0")
	}
	if _, ok := classIDs[r.Class]; !ok {
		return r, fmt.Errorf("rule for port %d: unknown class %q (want get, next, set, bulk or empty)", r.Port, r.Class)
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
var (
	classIDs   = map[string]uint8{"": 0, "get": 1, "next": 2, "set": 3, "bulk": 4}
	classNames = [...]string{"", "get", "next", "set", "bulk"}
)

func className(id uint8) string {
	if int(id) < len(classNames) {
		return classNames[id]
	}
	return fmt.Sprint(id)
}

// ruleFlagSNMPClasses mirrors RULE_F_SNMP_CLASSES.
const ruleFlagSNMPClasses = 1

// ruleKey identifies a rule: the map key is port | class<<16.
type ruleKey struct {
	port  uint16
	class uint8
}

func (k ruleKey) kernel() uint32 { return uint32(k.port) | uint32(k.class)<<16 }

func ruleKeyFrom(v uint32) ruleKey { return ruleKey{port: uint16(v), class: uint8(v >> 16)} }

func (r Rule) key() ruleKey { return ruleKey{port: r.Port, class: classIDs[r.Class]} }

// kernel converts the rule into the map value for slot.
func (r Rule) kernel(slot, flags uint32) ratelimitRule {
	k := ratelimitRule{Slot: slot, Flags: flags}
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
	r := Rule{Port: key.port, Class: className(key.class), PerSource: int(k.SrcRate), Global: int(k.GlobRate)}
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
