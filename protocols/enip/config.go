package enip

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/icsnare/icsnare/profiles"
)

// cpppoSerial is the serial number cpppo's Identity object claims by default and Conpot's
// default template repeats: a published honeypot signature, never served.
const cpppoSerial = 0x006C061A

// identity is the profile's Identity object (class 0x01) without the per-host serial.
type identity struct {
	vendor, deviceType, productCode uint16
	major, minor                    uint8
	status                          uint16
	productName                     string
	state                           uint8
	serialKey                       string // databus key holding the serial; "" draws it from the seed
	// revisionKey is the databus key holding the revision ("major.minor", the host's
	// firmware, as SNMP and the web pages spell it); "": major.minor.
	revisionKey string
}

// Logix atomic data types and the STRING structure handle.
const (
	typeBOOL    uint16 = 0xC1
	typeSINT    uint16 = 0xC2
	typeINT     uint16 = 0xC3
	typeDINT    uint16 = 0xC4
	typeREAL    uint16 = 0xCA
	typeSSTRING uint16 = 0xDA
	typeStruct  uint16 = 0x02A0
	handleSTR   uint16 = 0x0FCE // the predefined STRING structure
)

// stringLen is the capacity of a Logix STRING's DATA member.
const stringLen = 82

// tagType is one of the element types a profile tag may have.
type tagType struct {
	name string
	code uint16
	size int // bytes per element on the wire; 0 for SSTRING (variable)
}

var tagTypes = map[string]tagType{
	"BOOL":    {"BOOL", typeBOOL, 1},
	"SINT":    {"SINT", typeSINT, 1},
	"INT":     {"INT", typeINT, 2},
	"DINT":    {"DINT", typeDINT, 4},
	"REAL":    {"REAL", typeREAL, 4},
	"SSTRING": {"SSTRING", typeSSTRING, 0},
	"STRING":  {"STRING", typeStruct, 4 + stringLen},
}

// maxTagElements bounds a tag's size so one host's tags stay small.
const maxTagElements = 1024

// tag is a Logix tag from the profile's <tags>.
type tag struct {
	name    string
	key     string // where the host's databus keeps the tag's elements once written
	typ     tagType
	size    int
	initial any // int64, float64 or string: every element starts with it
	// initVals holds initial in every element; shared, never modified
	initVals []any
	addr     [3]uint32
	hasAddr  bool
}

// tagNamed returns the tag a request's symbol names (Logix tag names are case-insensitive),
// or nil. An ASCII name is upper-cased on the stack: a lookup allocates nothing.
func (c *config) tagNamed(sym []byte) *tag {
	var buf [maxTagName]byte
	for i, b := range sym {
		if b >= utf8.RuneSelf { // upper-casing may change the length: the general way
			return c.byName[strings.ToUpper(string(sym))]
		}
		if i < len(buf) {
			if 'a' <= b && b <= 'z' {
				b -= 'a' - 'A'
			}
			buf[i] = b
		}
	}
	if len(sym) > len(buf) {
		return nil // an ASCII name longer than any tag's
	}
	return c.byName[string(buf[:len(sym)])]
}

// maxTagName bounds a tag's name (config: 1-40 characters).
const maxTagName = 40

// tagKeyPrefix and the tag's name are its databus key (tag.key).
const tagKeyPrefix = "enip.tag."

// config is a parsed enip.xml.
type config struct {
	id     identity
	tags   []*tag
	byName map[string]*tag // upper-cased names: Logix tag names are case-insensitive
	byAddr map[[3]uint32]*tag
}

func parseConfig(sec *profiles.Section) (*config, error) {
	root := sec.Root
	if root.Name != "enip" {
		return nil, root.Errorf("root element must be <enip>")
	}
	sec.CheckChildren(root, "device_info", "mode", "latency", "timeout", "tags")
	c := &config{
		id: identity{vendor: 1, deviceType: 14, productCode: 90, major: 2, minor: 10, status: 0x3060,
			productName: "1756-L61/B LOGIX5561", state: 3},
		byName: map[string]*tag{}, byAddr: map[[3]uint32]*tag{},
	}
	if n := root.Child("device_info"); n != nil {
		if err := parseIdentity(sec, n, &c.id); err != nil {
			return nil, err
		}
	}
	if n := root.Child("mode"); n != nil {
		// Conpot serves TCP or UDP; a real device (and icsnare) serves both.
		if m := strings.ToLower(n.TextTrim()); m != "tcp" && m != "udp" {
			return nil, n.Errorf("mode %q is neither tcp nor udp", n.TextTrim())
		}
	}
	for _, k := range []string{"latency", "timeout"} { // cpppo's poll interval and timeout: no meaning here
		if n := root.Child(k); n != nil {
			if f, err := strconv.ParseFloat(n.TextTrim(), 64); err != nil || f < 0 {
				return nil, n.Errorf("%s %q is not a non-negative number of seconds", k, n.TextTrim())
			}
		}
	}
	if n := root.Child("tags"); n != nil {
		sec.CheckChildren(n, "tag")
		for _, e := range n.ChildrenNamed("tag") {
			t, err := parseTag(sec, e)
			if err != nil {
				return nil, err
			}
			up := strings.ToUpper(t.name)
			if c.byName[up] != nil {
				return nil, e.Errorf("tag %q defined twice", t.name)
			}
			if t.hasAddr {
				if o := c.byAddr[t.addr]; o != nil {
					return nil, e.Errorf("tag %q has the address of tag %q", t.name, o.name)
				}
				if isObjectClass(t.addr[0]) {
					return nil, e.Errorf("tag %q: class 0x%02x is one of the device's own objects", t.name, t.addr[0])
				}
				c.byAddr[t.addr] = t
			}
			c.byName[up] = t
			c.tags = append(c.tags, t)
		}
	}
	return c, nil
}

// isObjectClass reports whether class is one of the objects the device implements itself.
func isObjectClass(class uint32) bool {
	switch class {
	case classIdentity, classMessageRouter, classConnectionManager, classTCPIP, classEthernetLink, classSymbol:
		return true
	}
	return false
}

func parseUint(n *profiles.Node, what string, bits int) (uint64, error) {
	v, err := strconv.ParseUint(n.TextTrim(), 0, bits)
	if err != nil {
		return 0, n.Errorf("%s %q is not an unsigned %d-bit number", what, n.TextTrim(), bits)
	}
	return v, nil
}

func parseIdentity(sec *profiles.Section, n *profiles.Node, id *identity) error {
	for _, e := range n.Children {
		var err error
		var v uint64
		switch e.Name {
		case "VendorId":
			v, err = parseUint(e, e.Name, 16)
			id.vendor = uint16(v)
		case "DeviceType":
			v, err = parseUint(e, e.Name, 16)
			id.deviceType = uint16(v)
		case "ProductCode":
			v, err = parseUint(e, e.Name, 16)
			id.productCode = uint16(v)
		case "Status":
			v, err = parseUint(e, e.Name, 16)
			id.status = uint16(v)
		case "State":
			v, err = parseUint(e, e.Name, 8)
			id.state = uint8(v)
		case "ProductRevision":
			if k, ok := e.Attr("databus"); ok {
				k = strings.TrimSpace(k)
				if !sec.Profile.Schema.Has(k) {
					return e.Errorf("databus key %q is not defined in template.xml", k)
				}
				id.revisionKey = k
				if e.TextTrim() == "" {
					continue
				}
				// a literal too: served when the key's value is not major.minor
			}
			err = parseRevision(e, id)
		case "ProductName":
			id.productName = e.TextTrim()
			if len(id.productName) == 0 || len(id.productName) > 32 {
				err = e.Errorf("product name must be 1 to 32 characters")
			}
		case "SerialNumber":
			if k, ok := e.Attr("databus"); ok {
				k = strings.TrimSpace(k)
				if !sec.Profile.Schema.Has(k) {
					return e.Errorf("databus key %q is not defined in template.xml", k)
				}
				id.serialKey = k
				continue
			}
			// A literal serial would be one value shared by every host of the profile (and
			// Conpot's is cpppo's signature): each host draws its own from its seed.
			if v, err = parseUint(e, e.Name, 32); err == nil && v == cpppoSerial {
				sec.Warnf(e, "serial 0x%08X is cpppo's published default; every host draws its own serial instead", v)
			}
		default:
			sec.Warnf(e, "unknown element inside <device_info>, ignored")
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// revisionOf parses a databus revision ("major.minor", each 0..255).
func revisionOf(s string) (major, minor uint8, ok bool) {
	a, b, found := strings.Cut(strings.TrimSpace(s), ".")
	x, err1 := strconv.ParseUint(a, 10, 8)
	y, err2 := strconv.ParseUint(b, 10, 8)
	if !found || err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return uint8(x), uint8(y), true
}

// parseRevision reads a revision as cpppo stores it (a 16-bit number, major in the low
// byte: 2562 is 2.10) or as "major.minor".
func parseRevision(e *profiles.Node, id *identity) error {
	s := e.TextTrim()
	if maj, min, ok := strings.Cut(s, "."); ok {
		a, err1 := strconv.ParseUint(maj, 10, 8)
		b, err2 := strconv.ParseUint(min, 10, 8)
		if err1 != nil || err2 != nil {
			return e.Errorf("revision %q is not major.minor", s)
		}
		id.major, id.minor = uint8(a), uint8(b)
		return nil
	}
	v, err := parseUint(e, "ProductRevision", 16)
	if err != nil {
		return err
	}
	id.major, id.minor = uint8(v), uint8(v>>8)
	return nil
}

func parseTag(sec *profiles.Section, n *profiles.Node) (*tag, error) {
	sec.CheckChildren(n, "type", "size", "value", "addr")
	t := &tag{size: 1}
	name, _ := n.Attr("name")
	t.name = strings.TrimSpace(name)
	if t.name == "" || len(t.name) > maxTagName || strings.ContainsAny(t.name, " .[]") {
		return nil, n.Errorf("tag name %q is not a Logix tag name (1-40 characters, no spaces, dots or brackets)", t.name)
	}
	ts, _ := n.ChildText("type")
	typ, ok := tagTypes[strings.ToUpper(ts)]
	if !ok {
		return nil, n.Errorf("tag %q: type %q is not BOOL, SINT, INT, DINT, REAL, SSTRING or STRING", t.name, ts)
	}
	t.typ = typ
	if e := n.Child("size"); e != nil {
		v, err := strconv.Atoi(e.TextTrim())
		if err != nil || v < 1 || v > maxTagElements {
			return nil, e.Errorf("tag %q: size %q is not 1-%d elements", t.name, e.TextTrim(), maxTagElements)
		}
		t.size = v
	}
	vs, _ := n.ChildText("value")
	v, err := parseTagValue(typ, vs)
	if err != nil {
		return nil, n.Child("value").Errorf("tag %q: %v", t.name, err)
	}
	t.initial = v
	t.key = tagKeyPrefix + t.name
	t.initVals = make([]any, t.size)
	for i := range t.initVals {
		t.initVals[i] = v
	}
	if e := n.Child("addr"); e != nil {
		parts := strings.Split(strings.TrimPrefix(e.TextTrim(), "@"), "/")
		if len(parts) != 3 {
			return nil, e.Errorf("tag %q: addr %q is not class/instance/attribute", t.name, e.TextTrim())
		}
		for i, p := range parts {
			x, err := strconv.ParseUint(strings.TrimSpace(p), 0, 16)
			if err != nil {
				return nil, e.Errorf("tag %q: addr %q is not class/instance/attribute", t.name, e.TextTrim())
			}
			t.addr[i] = uint32(x)
		}
		t.hasAddr = true
	}
	return t, nil
}

// parseTagValue reads a tag's initial value in its type's terms.
func parseTagValue(typ tagType, s string) (any, error) {
	s = strings.TrimSpace(s)
	switch typ.code {
	case typeSSTRING:
		if len(s) > 255 {
			return nil, fmt.Errorf("value is longer than 255 characters")
		}
		return s, nil
	case typeStruct:
		if len(s) > stringLen {
			return nil, fmt.Errorf("value is longer than %d characters", stringLen)
		}
		return s, nil
	case typeREAL:
		if s == "" {
			return float64(0), nil
		}
		f, err := strconv.ParseFloat(s, 32)
		if err != nil {
			return nil, fmt.Errorf("value %q is not a REAL", s)
		}
		return f, nil
	}
	if s == "" {
		return int64(0), nil
	}
	if b, err := profiles.ParseBool(s); err == nil && typ.code == typeBOOL && !isDigits(s) {
		if b {
			return int64(1), nil
		}
		return int64(0), nil
	}
	v, err := strconv.ParseInt(s, 0, 64)
	if err != nil {
		return nil, fmt.Errorf("value %q is not an integer", s)
	}
	lo, hi := intRange(typ.code)
	if v < lo || v > hi {
		return nil, fmt.Errorf("value %d is outside %s's range %d..%d", v, typ.name, lo, hi)
	}
	return v, nil
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

// intRange is the range of an integer type.
func intRange(code uint16) (int64, int64) {
	switch code {
	case typeBOOL:
		return 0, 1
	case typeSINT:
		return math.MinInt8, math.MaxInt8
	case typeINT:
		return math.MinInt16, math.MaxInt16
	}
	return math.MinInt32, math.MaxInt32
}
