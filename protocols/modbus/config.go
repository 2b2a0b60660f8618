package modbus

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
)

type mode uint8

const (
	modeTCP    mode = iota // only units 0 and 255 address the device
	modeSerial             // a TCP/serial gateway: units 1–247 are slaves, 0 is a broadcast
)

// Limits of the profile knobs.
const (
	defaultDelay = 100 * time.Millisecond
	maxDelay     = 5 * time.Second
)

type blockType uint8

const (
	coils blockType = iota
	discreteInputs
	inputRegisters
	holdingRegisters
	numBlockTypes
)

var blockTypeNames = [numBlockTypes]string{"COILS", "DISCRETE_INPUTS", "INPUT_REGISTERS", "HOLDING_REGISTERS"}

// modiconPrefix is the reference prefix of each block type (0xxxx, 1xxxx, 3xxxx, 4xxxx).
var modiconPrefix = [numBlockTypes]int{0, 1, 3, 4}

// block is a run of one data type backed by a databus list.
type block struct {
	name  string
	key   string       // databus key holding the values (a list)
	ref   profiles.Key // key resolved against the profile's schema, for the read path
	typ   blockType
	start int // first wire (0-based PDU) address
	size  int
}

func (b *block) contains(addr, qty int) bool {
	return addr >= b.start && addr+qty <= b.start+b.size
}

// slave is one unit: its blocks per type and its identity.
type slave struct {
	id     uint8
	blocks [numBlockTypes][]*block
	info   *deviceInfo
}

// find returns the block of type t holding addresses addr..addr+qty-1.
func (s *slave) find(t blockType, addr, qty int) *block {
	for _, b := range s.blocks[t] {
		if b.contains(addr, qty) {
			return b
		}
	}
	return nil
}

// infoValue is a device_info string: literal text, or a databus key read on every request.
type infoValue struct {
	id      uint8
	literal string
	key     string
}

func (v infoValue) get(db *profiles.Databus) string {
	if v.key == "" || db == nil {
		return v.literal
	}
	s, err := db.GetString(v.key)
	if err != nil {
		return ""
	}
	return s
}

// deviceInfo is what FC 43/14 and FC 17 report.
type deviceInfo struct {
	objects    []infoValue // sorted by id
	serverID   int         // -1: the unit id
	serverData infoValue
}

var objectNames = map[string]uint8{
	"VendorName": ObjVendorName, "ProductCode": ObjProductCode, "MajorMinorRevision": ObjMajorMinorRevision,
	"VendorUrl": ObjVendorURL, "ProductName": ObjProductName, "ModelName": ObjModelName,
	"UserApplicationName": ObjUserApplicationName,
}

// addressing says how a block's starting_address maps to the address on the wire.
type addressing uint8

const (
	// modicon: starting_address is a 1-based Modicon reference (40001 is holding
	// register 0 on the wire), what real devices and their manuals do. The default.
	modicon addressing = iota
	// literal: starting_address is the wire address itself and a block is as long as its
	// databus list, as Conpot (modbus-tk) compares them. Conpot's answers, exactly.
	literal
)

// parseAddressing reads "modicon" or "literal".
func parseAddressing(s string) (addressing, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "modicon":
		return modicon, nil
	case "literal":
		return literal, nil
	}
	return 0, fmt.Errorf("addressing %q is neither modicon nor literal", s)
}

func (a addressing) String() string {
	if a == literal {
		return "literal"
	}
	return "modicon"
}

// unknownUnit is what a unit nobody answers gets.
type unknownUnit uint8

const (
	unitSilent  unknownUnit = iota // no reply, as a gateway whose target never answers
	unitGateway                    // exception 0x0B, gateway target device failed to respond
	unitFailure                    // exception 0x04, slave device failure (Conpot's answer)
	unitDevice                     // tcp mode: the device answers every unit id (it ignores the field)
)

// config is a parsed modbus.xml.
type config struct {
	mode       mode
	delay      time.Duration
	unknown    unknownUnit
	addressing addressing
	info       *deviceInfo
	slaves     []*slave
	// pidException answers a frame whose protocol identifier is not 0 with exception 0x01
	// (protocol identifier 0 in the reply) instead of dropping it.
	pidException bool
	// badLengthException answers a header whose length field no Modbus frame has (an HTTP
	// request on port 502) with exception 0x01 for the unit and function bytes it carries,
	// then closes, as many embedded stacks do; otherwise the connection closes silently.
	badLengthException bool
	// timing is the device's answer latency (<timing>); nil: answers leave at once.
	timing *protocols.Timing
}

// parseAnswer reads a "drop"/"exception" knob.
func parseAnswer(n *profiles.Node, silent string) (bool, error) {
	switch strings.ToLower(n.TextTrim()) {
	case silent:
		return false, nil
	case "exception":
		return true, nil
	}
	return false, n.Errorf("%s %q is not %s or exception", n.Name, n.TextTrim(), silent)
}

func parseConfig(sec *profiles.Section, opts *options) (*config, error) {
	root := sec.Root
	if root.Name != "modbus" {
		return nil, root.Errorf("root element must be <modbus>")
	}
	sec.CheckChildren(root, "device_info", "mode", "delay", "unknown_unit", "addressing", "slaves", "protocol_id", "bad_length", "timing")
	c := &config{delay: defaultDelay}
	var err error
	if opts != nil && opts.Addressing != "" {
		if c.addressing, err = parseAddressing(opts.Addressing); err != nil {
			return nil, fmt.Errorf("[protocols.modbus] %v", err)
		}
	}
	if n := root.Child("addressing"); n != nil {
		if c.addressing, err = parseAddressing(n.TextTrim()); err != nil {
			return nil, n.Errorf("%v", err)
		}
	}
	if c.addressing == literal {
		c.unknown = unitFailure // Conpot's answer, unless <unknown_unit> says otherwise
	}
	if n := root.Child("device_info"); n != nil {
		if c.info, err = parseDeviceInfo(sec, n); err != nil {
			return nil, err
		}
	}
	if n := root.Child("mode"); n != nil {
		switch strings.ToLower(n.TextTrim()) {
		case "tcp":
			c.mode = modeTCP
		case "serial":
			c.mode = modeSerial
		default:
			return nil, n.Errorf("mode %q is neither tcp nor serial", n.TextTrim())
		}
	}
	if n := root.Child("delay"); n != nil {
		ms, err := strconv.Atoi(n.TextTrim())
		if err != nil || ms < 0 || time.Duration(ms)*time.Millisecond > maxDelay {
			return nil, n.Errorf("delay %q is not a number of milliseconds between 0 and %d", n.TextTrim(), maxDelay.Milliseconds())
		}
		c.delay = time.Duration(ms) * time.Millisecond
	}
	if c.timing, err = protocols.ParseTiming(root.Child("timing")); err != nil {
		return nil, err
	}
	if n := root.Child("protocol_id"); n != nil {
		if c.pidException, err = parseAnswer(n, "drop"); err != nil {
			return nil, err
		}
	}
	if n := root.Child("bad_length"); n != nil {
		if c.badLengthException, err = parseAnswer(n, "close"); err != nil {
			return nil, err
		}
	}
	if n := root.Child("unknown_unit"); n != nil {
		switch strings.ToLower(n.TextTrim()) {
		case "silent":
			c.unknown = unitSilent
		case "exception":
			c.unknown = unitGateway
		case "failure":
			c.unknown = unitFailure
		case "device":
			if c.mode != modeTCP {
				return nil, n.Errorf("unknown_unit device needs tcp mode")
			}
			c.unknown = unitDevice
		default:
			return nil, n.Errorf("unknown_unit %q is not silent, exception, failure or device", n.TextTrim())
		}
	}
	if n := root.Child("slaves"); n != nil {
		sec.CheckChildren(n, "slave")
		seen := map[int]bool{}
		for _, sn := range n.ChildrenNamed("slave") {
			s, err := parseSlave(sec, sn, c)
			if err != nil {
				return nil, err
			}
			if seen[int(s.id)] {
				return nil, sn.Errorf("slave id %d defined twice", s.id)
			}
			seen[int(s.id)] = true
			c.slaves = append(c.slaves, s)
		}
	}
	return c, nil
}

func parseSlave(sec *profiles.Section, n *profiles.Node, c *config) (*slave, error) {
	sec.CheckChildren(n, "blocks", "device_info")
	ids, _ := n.Attr("id")
	id, err := strconv.ParseUint(strings.TrimSpace(ids), 0, 8)
	if err != nil {
		return nil, n.Errorf("slave id %q is not a unit id 0-255", ids)
	}
	s := &slave{id: uint8(id), info: c.info}
	if c.mode == modeSerial && (id == 0 || id > 247) {
		sec.Warnf(n, "slave id %d cannot be reached in serial mode (units 1-247; 0 is the broadcast)", id)
	}
	if c.mode == modeTCP && id != 0 && id != 255 && c.unknown != unitDevice {
		sec.Warnf(n, "slave id %d cannot be reached in tcp mode (units 0 and 255)", id)
	}
	if di := n.Child("device_info"); di != nil {
		if s.info, err = parseDeviceInfo(sec, di); err != nil {
			return nil, err
		}
	}
	bn := n.Child("blocks")
	if bn == nil {
		return s, nil
	}
	sec.CheckChildren(bn, "block")
	for _, e := range bn.ChildrenNamed("block") {
		b, err := parseBlock(sec, e, c.addressing)
		if err != nil {
			return nil, err
		}
		for _, o := range s.blocks[b.typ] {
			if b.start < o.start+o.size && o.start < b.start+b.size {
				return nil, e.Errorf("block %q overlaps block %q (%s)", b.name, o.name, blockTypeNames[b.typ])
			}
		}
		s.blocks[b.typ] = append(s.blocks[b.typ], b)
	}
	return s, nil
}

func parseBlock(sec *profiles.Section, n *profiles.Node, addr addressing) (*block, error) {
	sec.CheckChildren(n, "type", "starting_address", "size", "content")
	b := &block{}
	b.name, _ = n.Attr("name")
	b.name = strings.TrimSpace(b.name)
	if b.name == "" {
		return nil, n.Errorf("block without a name attribute")
	}
	tn, ok := n.ChildText("type")
	if !ok {
		return nil, n.Errorf("block %q has no <type>", b.name)
	}
	switch strings.ToUpper(tn) {
	case "COILS", "1":
		b.typ = coils
	case "DISCRETE_INPUTS", "2":
		b.typ = discreteInputs
	case "HOLDING_REGISTERS", "3":
		b.typ = holdingRegisters
	case "ANALOG_INPUTS", "INPUT_REGISTERS", "4":
		b.typ = inputRegisters
	default:
		return nil, n.Child("type").Errorf("block type %q is not COILS, DISCRETE_INPUTS, INPUT_REGISTERS (ANALOG_INPUTS) or HOLDING_REGISTERS", tn)
	}
	an := n.Child("starting_address")
	if an == nil {
		return nil, n.Errorf("block %q has no <starting_address>", b.name)
	}
	ref, err := strconv.Atoi(an.TextTrim())
	if err != nil {
		return nil, an.Errorf("starting_address %q is not a number", an.TextTrim())
	}
	sn := n.Child("size")
	if sn == nil {
		return nil, n.Errorf("block %q has no <size>", b.name)
	}
	if b.size, err = strconv.Atoi(sn.TextTrim()); err != nil || b.size < 1 {
		return nil, sn.Errorf("size %q must be 1 or more", sn.TextTrim())
	}
	b.key = b.name
	if k, ok := n.ChildText("content"); ok && k != "" {
		b.key = k
	}
	if !sec.Profile.Schema.Has(b.key) {
		return nil, n.Errorf("block %q: databus key %q is not defined in template.xml", b.name, b.key)
	}
	b.ref = sec.Profile.Schema.Key(b.key)
	switch addr {
	case literal:
		if ref < 0 || ref > 0xFFFF {
			return nil, an.Errorf("starting_address %d is not a wire address 0-65535 (addressing literal)", ref)
		}
		b.start = ref
		// Conpot's block is as long as its databus list; <size> is documentation there.
		v, err := sec.Profile.Schema.Sample(b.key)
		if err != nil {
			return nil, n.Errorf("block %q: %v", b.name, err)
		}
		l, ok := v.([]any)
		if !ok || len(l) == 0 {
			return nil, n.Errorf("block %q: databus key %q is not a non-empty list (addressing literal sizes blocks by it)", b.name, b.key)
		}
		if len(l) != b.size {
			sec.Warnf(sn, "size %d, but the list %q has %d elements: the block has %d, as in Conpot", b.size, b.key, len(l), len(l))
		}
		b.size = len(l)
	default:
		if b.start, err = wireAddress(b.typ, ref); err != nil {
			return nil, an.Errorf("%v", err)
		}
	}
	if b.start+b.size > 0x10000 {
		return nil, sn.Errorf("block %q ends past address 65535 (start %d, size %d)", b.name, b.start, b.size)
	}
	return b, nil
}

// wireAddress turns a block's starting_address, a 1-based Modicon reference with an
// optional type prefix (holding register 40001 or 400001 or 1; coil 1; input 30001 …),
// into the 0-based address carried on the wire. 0 is taken as wire address 0.
func wireAddress(t blockType, ref int) (int, error) {
	p := modiconPrefix[t]
	switch {
	case ref == 0:
		return 0, nil
	case ref >= 1 && ref <= 9999, t == coils && ref >= 1 && ref <= 0x10000:
		return ref - 1, nil
	case p > 0 && ref >= p*10000+1 && ref <= p*10000+9999:
		return ref - p*10000 - 1, nil
	case p > 0 && ref >= p*100000+1 && ref <= p*100000+0x10000:
		return ref - p*100000 - 1, nil
	}
	return 0, fmt.Errorf("starting_address %d is not a %s reference (1-9999, %d0001-%d9999 or %d00001-%d65536)",
		ref, blockTypeNames[t], p, p, p, p)
}

func parseDeviceInfo(sec *profiles.Section, n *profiles.Node) (*deviceInfo, error) {
	di := &deviceInfo{serverID: -1}
	seen := map[uint8]bool{}
	for _, e := range n.Children {
		var id uint8
		switch e.Name {
		case "ServerId":
			v, err := strconv.ParseUint(e.TextTrim(), 0, 8)
			if err != nil {
				return nil, e.Errorf("ServerId %q is not a byte (0-255)", e.TextTrim())
			}
			di.serverID = int(v)
			continue
		case "ServerIdData":
			v, err := parseInfoValue(sec, e)
			if err != nil {
				return nil, err
			}
			di.serverData = v
			continue
		case "Object":
			ids, _ := e.Attr("id")
			v, err := strconv.ParseUint(strings.TrimSpace(ids), 0, 8)
			if err != nil || v < 0x80 {
				return nil, e.Errorf("Object id %q must be an extended object id 0x80-0xFF", ids)
			}
			id = uint8(v)
		default:
			var ok bool
			if id, ok = objectNames[e.Name]; !ok {
				sec.Warnf(e, "unknown element inside <device_info>, ignored")
				continue
			}
		}
		if seen[id] {
			return nil, e.Errorf("device identification object 0x%02x defined twice", id)
		}
		seen[id] = true
		v, err := parseInfoValue(sec, e)
		if err != nil {
			return nil, err
		}
		v.id = id
		di.objects = append(di.objects, v)
	}
	for _, need := range []string{"VendorName", "ProductCode", "MajorMinorRevision"} {
		if !seen[objectNames[need]] {
			return nil, n.Errorf("<%s> is missing (the basic device identification objects are mandatory)", need)
		}
	}
	slices.SortFunc(di.objects, func(a, b infoValue) int { return int(a.id) - int(b.id) })
	return di, nil
}

// parseInfoValue reads literal text, or a databus reference written as databus="Key".
func parseInfoValue(sec *profiles.Section, e *profiles.Node) (infoValue, error) {
	if k, ok := e.Attr("databus"); ok {
		k = strings.TrimSpace(k)
		if !sec.Profile.Schema.Has(k) {
			return infoValue{}, e.Errorf("databus key %q is not defined in template.xml", k)
		}
		if e.TextTrim() != "" {
			return infoValue{}, e.Errorf("has both a databus attribute and text")
		}
		return infoValue{key: k}, nil
	}
	t := e.TextTrim()
	if len(t) > maxDeviceObjectValue {
		return infoValue{}, e.Errorf("value is %d bytes long, at most %d fit into a reply", len(t), maxDeviceObjectValue)
	}
	return infoValue{literal: t}, nil
}
