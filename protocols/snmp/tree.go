package snmp

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
)

// builtinFunc appends the value TLV of a built-in object (a counter, the engine ID …).
type builtinFunc func(b []byte, hs *hostState, now time.Time) []byte

// object is one served object instance.
type object struct {
	oid     []uint32
	oidTLV  []byte // the encoded OID, ready to copy into responses
	typeLen int    // length of the object type's OID (the rest is the instance)
	// hostAddr: the instance ends in the host's own address (instance="…@addr" in the
	// template: ipAddrTable, LLDP's management address); oid holds the part before it.
	hostAddr bool
	name     string // "sysDescr.0"
	tag      byte
	hint     string
	writable bool
	enum     []int64
	ranges   [][2]int64

	key     string // databus key holding the value
	builtin builtinFunc

	// Per-host values: materialised into the databus under key on a host's first contact.
	literal any
	engine  *profiles.EngineSpec
	initKey string // databus key whose value is the engine's initial value
}

// tree is the sorted set of objects a profile serves.
type tree struct {
	objs     []*object
	index    map[string]int // OID content bytes → position in objs
	hostAddr int            // objects whose instance is the host's address
}

func (t *tree) add(o *object) {
	o.oidTLV = appendOctets(nil, tagOID, appendOIDContent(nil, o.oid))
	t.objs = append(t.objs, o)
}

// finish sorts the objects and builds the index; duplicate OIDs are an error.
func (t *tree) finish() error {
	sort.SliceStable(t.objs, func(i, j int) bool { return compareOID(t.objs[i].oid, t.objs[j].oid) < 0 })
	t.index = make(map[string]int, len(t.objs))
	for i, o := range t.objs {
		if i > 0 && compareOID(t.objs[i-1].oid, o.oid) == 0 {
			return fmt.Errorf("%s and %s are the same OID %s", t.objs[i-1].name, o.name, oidString(o.oid))
		}
		if o.hostAddr {
			t.hostAddr++
			// Its place in the order holds for every address only when no other object
			// lies under the part of its OID before the address.
			for _, j := range []int{i - 1, i + 1} {
				if j >= 0 && j < len(t.objs) && len(t.objs[j].oid) >= len(o.oid) && compareOID(t.objs[j].oid[:len(o.oid)], o.oid) == 0 {
					return fmt.Errorf("%s and %s: an instance of the host's address needs its column to itself", o.name, t.objs[j].name)
				}
			}
			continue
		}
		t.index[string(o.oidTLV[len(o.oidTLV)-len(appendOIDContent(nil, o.oid)):])] = i
	}
	return nil
}

// hostInst returns the sub-identifiers of addr, an instance of the host's address.
func hostInst(addr netip.Addr, buf []uint32) []uint32 {
	buf = buf[:0]
	for _, b := range addr.Unmap().AsSlice() {
		buf = append(buf, uint32(b))
	}
	return buf
}

// cmpAt compares object o's OID for a host whose address instance is inst with oid.
func cmpAt(o *object, inst, oid []uint32) int {
	if !o.hostAddr {
		return compareOID(o.oid, oid)
	}
	n := len(o.oid)
	if len(oid) <= n {
		if c := compareOID(o.oid[:len(oid)], oid); c != 0 {
			return c
		}
		return 1 // oid is a prefix of the object's: the object comes after it
	}
	if c := compareOID(o.oid, oid[:n]); c != 0 {
		return c
	}
	return compareOID(inst, oid[n:])
}

// find returns the object whose OID, for a host with address instance inst, is oid.
func (t *tree) find(oid, inst []uint32) *object {
	i := sort.Search(len(t.objs), func(i int) bool { return cmpAt(t.objs[i], inst, oid) >= 0 })
	if i < len(t.objs) && cmpAt(t.objs[i], inst, oid) == 0 {
		return t.objs[i]
	}
	return nil
}

// oidAt appends the OID TLV of o for a host with address instance inst.
func oidAt(b []byte, o *object, inst []uint32) []byte {
	if !o.hostAddr {
		return append(b, o.oidTLV...)
	}
	var buf [maxOIDLen + 16]uint32
	full := append(append(buf[:0], o.oid...), inst...)
	return appendOctets(b, tagOID, appendOIDContent(nil, full))
}

// get returns the object whose OID content is c.
func (t *tree) get(c []byte) *object {
	i, ok := t.index[string(c)]
	if !ok {
		return nil
	}
	return t.objs[i]
}

// typeKnown reports whether oid lies under an object type the tree serves instances of
// (so a missing instance is noSuchInstance rather than noSuchObject).
func (t *tree) typeKnown(oid []uint32) *object {
	i := sort.Search(len(t.objs), func(i int) bool { return compareOID(t.objs[i].oid, oid) >= 0 })
	for _, j := range []int{i - 1, i} {
		if j >= 0 && j < len(t.objs) {
			o := t.objs[j]
			if len(oid) > o.typeLen && compareOID(o.oid[:o.typeLen], oid[:o.typeLen]) == 0 {
				return o
			}
		}
	}
	return nil
}

// initHost stores the host's engine values in its databus, leaving alone what was written
// (an SNMP SET kept across eviction or a restart).
func (t *tree) initHost(h *protocols.Host) {
	env := h.Databus.Env()
	for _, o := range t.objs {
		switch {
		case o.engine != nil:
			var initial any = o.literal
			if o.initKey != "" {
				if v, err := h.Databus.Get(o.initKey); err == nil {
					initial = v
				}
			}
			d, err := o.engine.New(env, o.name, initial)
			if err != nil {
				h.Databus.Init(o.key, initial)
				continue
			}
			h.Databus.Init(o.key, d)
		}
		// Literals are not copied into every host's databus (a walk has dozens of them):
		// value falls back to the object's literal until a SET writes one.
	}
}

// buildTree reads <mibs> and adds the built-in objects.
func buildTree(sec *profiles.Section, root *profiles.Node, mibDirs []string) (*tree, error) {
	t := &tree{}
	res := &mibResolver{profileMIBs: profileMIBs(sec), profileName: path.Join(path.Dir(sec.File), "mibs"), userDirs: mibDirs}
	if mibs := root.Child("mibs"); mibs != nil {
		for _, m := range mibs.Children {
			if m.Name != "mib" {
				sec.Warnf(m, "unknown element inside <mibs>, ignored")
				continue
			}
			module, _ := m.Attr("name")
			if strings.TrimSpace(module) == "" {
				return nil, m.Errorf("mib without a name attribute")
			}
			for _, s := range m.Children {
				if s.Name != "symbol" {
					sec.Warnf(s, "unknown element inside <mib>, ignored")
					continue
				}
				o, err := symbolObject(sec, res, module, s)
				if errors.Is(err, errNoSymbol) {
					name, _ := s.Attr("name")
					sec.Warnf(s, "MIB module %s has no symbol %s; skipped, as Conpot does", module, name)
					continue
				}
				if err != nil {
					return nil, err
				}
				if o == nil {
					continue
				}
				t.add(o)
			}
		}
	}
	addBuiltins(t)
	if err := t.finish(); err != nil {
		return nil, &profiles.Error{File: sec.File, Line: root.Line, Element: root.Name, Err: err}
	}
	return t, nil
}

func symbolObject(sec *profiles.Section, res *mibResolver, module string, s *profiles.Node) (*object, error) {
	if _, ok := s.Attr("oid"); ok {
		return rawSymbolObject(sec, module, s) // rawoid.go
	}
	name, _ := s.Attr("name")
	if strings.TrimSpace(name) == "" {
		return nil, s.Errorf("symbol without a name attribute")
	}
	sec.CheckChildren(s, "value", "engine")
	mo, err := res.lookup(module, name)
	if errors.Is(err, errNoSymbol) {
		return nil, err
	}
	if err != nil {
		return nil, s.Errorf("%v", err)
	}
	inst := "0"
	if v, ok := s.Attr("instance"); ok {
		inst = strings.TrimSpace(v)
	}
	var suffix []uint32
	pre, hostAddr := strings.CutSuffix(inst, "@addr")
	if pre = strings.TrimSuffix(pre, "."); !hostAddr || pre != "" {
		if suffix, err = parseOIDString(pre); err != nil {
			return nil, s.Errorf("instance %q: %v", inst, err)
		}
	}
	o := &object{
		oid: append(append([]uint32(nil), mo.oid...), suffix...), typeLen: len(mo.oid),
		name: name + "." + strings.TrimPrefix(inst, "."), tag: mo.tag, hint: mo.hint,
		writable: mo.writable && !hostAddr, enum: mo.enum, ranges: mo.ranges, hostAddr: hostAddr,
	}
	if len(o.oid) > maxOIDLen {
		return nil, s.Errorf("OID of %s longer than %d sub-identifiers", o.name, maxOIDLen)
	}
	valNode := s.Child("value")
	text := ""
	if valNode != nil {
		text = valNode.TextTrim()
	}
	hostKey := "snmp." + module + "::" + o.name
	schema := sec.Profile.Schema
	if e := s.Child("engine"); e != nil {
		typ, _ := e.Attr("type")
		spec, err := profiles.ParseEngine(typ, e.TextTrim())
		switch {
		case errors.Is(err, profiles.ErrUnknownEngine) && valNode != nil:
			// The fallback: Conpot's current agent has no engines at all and serves <value>.
			sec.Warnf(e, "%v; serving <value> without an engine", err)
			goto plain
		case err != nil:
			return nil, e.Errorf("%v", err)
		}
		o.engine = &spec
		o.key = hostKey
		switch {
		case schema.Has(text):
			o.initKey = text
		case text != "":
			if o.literal, err = literalValue(o, text); err != nil {
				return nil, valNode.Errorf("%v", err)
			}
		case o.tag == tagOctetString || o.tag == tagOpaque || o.tag == tagOID || o.tag == tagIPAddress:
			o.literal = ""
		default:
			o.literal = int64(0)
		}
		return o, nil
	}
plain:
	if valNode == nil {
		return nil, s.Errorf("symbol %s has neither <value> nor <engine>", name)
	}
	if schema.Has(text) {
		o.key = text
		return o, nil
	}
	// Conpot's older templates give the value itself instead of a databus key.
	if o.literal, err = literalValue(o, text); err != nil {
		return nil, valNode.Errorf("%q is neither a databus key nor a valid %s value: %v", text, tagName(o.tag), err)
	}
	o.key = hostKey
	return o, nil
}

// literalValue converts a template literal to the databus value stored for the object.
func literalValue(o *object, text string) (any, error) {
	switch o.tag {
	case tagOctetString, tagOpaque:
		return text, nil
	case tagOID:
		if _, err := parseOIDString(text); err != nil {
			return nil, err
		}
		return text, nil
	case tagIPAddress:
		if _, err := parseIPv4(text); err != nil {
			return nil, err
		}
		return text, nil
	}
	if o.enum != nil && text != "" && (text[0] < '0' || text[0] > '9') && text[0] != '-' {
		return nil, errors.New("give the enumeration's number")
	}
	return profiles.ToInt(text)
}

func tagName(tag byte) string {
	switch tag {
	case tagInteger:
		return "INTEGER"
	case tagOctetString:
		return "OCTET STRING"
	case tagOID:
		return "OBJECT IDENTIFIER"
	case tagIPAddress:
		return "IpAddress"
	case tagCounter32:
		return "Counter32"
	case tagGauge32:
		return "Gauge32"
	case tagTimeTicks:
		return "TimeTicks"
	case tagOpaque:
		return "Opaque"
	case tagCounter64:
		return "Counter64"
	}
	return fmt.Sprintf("type 0x%02x", tag)
}

func parseIPv4(s string) ([]byte, error) {
	ip := net.ParseIP(strings.TrimSpace(s)).To4()
	if ip == nil {
		return nil, fmt.Errorf("%q is not an IPv4 address", s)
	}
	return ip, nil
}

func hexOctets(s string) []byte {
	b, err := hex.DecodeString(strings.NewReplacer(":", "", " ", "", "-", "").Replace(s))
	if err != nil {
		return []byte(s)
	}
	return b
}

// addBuiltins adds the objects every SNMP engine serves: the snmp group counters, the
// snmpEngine group and the USM statistics.
func addBuiltins(t *tree) {
	counter := func(get func(hs *hostState) uint32) builtinFunc {
		return func(b []byte, hs *hostState, _ time.Time) []byte {
			return appendUint(b, tagCounter32, uint64(get(hs)))
		}
	}
	snmpNames := map[int]string{1: "snmpInPkts", 2: "snmpOutPkts", 3: "snmpInBadVersions", 4: "snmpInBadCommunityNames",
		5: "snmpInBadCommunityUses", 6: "snmpInASNParseErrs", 8: "snmpInTooBigs", 9: "snmpInNoSuchNames",
		10: "snmpInBadValues", 11: "snmpInReadOnlys", 12: "snmpInGenErrs", 13: "snmpInTotalReqVars",
		14: "snmpInTotalSetVars", 15: "snmpInGetRequests", 16: "snmpInGetNexts", 17: "snmpInSetRequests",
		18: "snmpInGetResponses", 19: "snmpInTraps", 20: "snmpOutTooBigs", 21: "snmpOutNoSuchNames",
		22: "snmpOutBadValues", 24: "snmpOutGenErrs", 25: "snmpOutGetRequests", 26: "snmpOutGetNexts",
		27: "snmpOutSetRequests", 28: "snmpOutGetResponses", 29: "snmpOutTraps", 30: "snmpEnableAuthenTraps",
		31: "snmpSilentDrops", 32: "snmpProxyDrops"}
	for id, name := range snmpNames {
		o := &object{oid: []uint32{1, 3, 6, 1, 2, 1, 11, uint32(id), 0}, typeLen: 8, name: name + ".0", tag: tagCounter32}
		if id == snmpEnableAuthenTraps {
			o.tag = tagInteger
			o.builtin = func(b []byte, _ *hostState, _ time.Time) []byte { return appendInt(b, tagInteger, 2) } // disabled
		} else {
			o.builtin = counter(func(hs *hostState) uint32 { return hs.snmp[id].Load() })
		}
		t.add(o)
	}
	engine := []uint32{1, 3, 6, 1, 6, 3, 10, 2, 1}
	eng := func(id uint32, name string, tag byte, f builtinFunc) {
		t.add(&object{oid: append(append([]uint32(nil), engine...), id, 0), typeLen: len(engine) + 1, name: name + ".0", tag: tag, builtin: f})
	}
	eng(1, "snmpEngineID", tagOctetString, func(b []byte, hs *hostState, _ time.Time) []byte {
		return appendOctets(b, tagOctetString, hs.engineID)
	})
	eng(2, "snmpEngineBoots", tagInteger, func(b []byte, hs *hostState, _ time.Time) []byte {
		return appendInt(b, tagInteger, int64(hs.boots))
	})
	eng(3, "snmpEngineTime", tagInteger, func(b []byte, hs *hostState, now time.Time) []byte {
		return appendInt(b, tagInteger, int64(hs.engineTime(now)))
	})
	eng(4, "snmpEngineMaxMessageSize", tagInteger, nil) // filled in by the service
	for id := 1; id <= 6; id++ {
		t.add(&object{oid: []uint32{1, 3, 6, 1, 6, 3, 15, 1, 1, uint32(id), 0}, typeLen: 10, name: usmStatsNames[id] + ".0",
			tag: tagCounter32, builtin: counter(func(hs *hostState) uint32 { return hs.usm[id].Load() })})
	}
}

// nextIndex returns the position of the first object after oid for a host whose address
// instance is inst, or -1 at the end.
func (t *tree) nextIndex(oid, inst []uint32) int {
	i := sort.Search(len(t.objs), func(i int) bool { return cmpAt(t.objs[i], inst, oid) > 0 })
	if i == len(t.objs) {
		return -1
	}
	return i
}

// content returns the OID content bytes of object i for a host whose address instance is
// inst.
func (t *tree) content(i int, inst []uint32) []byte {
	tlv := t.objs[i].oidTLV
	if t.objs[i].hostAddr {
		tlv = oidAt(nil, t.objs[i], inst)
	}
	_, c, _, _ := readTLV(tlv)
	return c
}
