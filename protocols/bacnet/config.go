package bacnet

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols/ratelimit"
)

// Limits of the profile section.
const (
	maxObjects     = 4096 // objects of one device
	maxValueLen    = 255  // octets of a configured string value
	ourMaxAPDU     = 1476 // the largest APDU BACnet/IP carries
	defaultRetries = 3
	defaultTimeout = 3000 // APDU timeout, milliseconds
)

// source is a configured property value: literal text, or a databus key read on every
// request (and written by WriteProperty).
type source struct {
	literal string
	key     string
}

// objectConfig is one configured object (the device object included).
type objectConfig struct {
	name  string // the element's name attribute, for messages
	id    objectID
	props map[uint32]source
	// required and optional list the object's properties in ALL order (without the
	// object-identifier, object-name, object-type and property-list every object has).
	required, optional []uint32
	commandable        bool
}

func (o *objectConfig) has(p uint32) bool {
	switch p {
	case propObjectIdentifier, propObjectName, propObjectType, propPropertyList:
		return true
	}
	return slices.Contains(o.required, p) || slices.Contains(o.optional, p)
}

// config is a parsed bacnet.xml.
type config struct {
	device *objectConfig
	// fixedInstance is the device instance the profile fixes (-1: from the host seed;
	// a databus key in device.props[propObjectIdentifier] otherwise).
	fixedInstance int64
	instanceKey   string
	segmentation  uint32
	maxAPDU       int
	objects       []*objectConfig // the non-device objects, in profile order
	byID          map[objectID]*objectConfig
	limits        ratelimit.ProfileLimits // rate class -> per source, global requests per minute
	// password is what DeviceCommunicationControl and ReinitializeDevice take (empty:
	// none is right).
	password source
}

// transmits reports whether the device sends segmented answers.
func (c *config) transmits() bool { return c.segmentation == segBoth || c.segmentation == segTransmit }

// receives reports whether the device takes segmented requests.
func (c *config) receives() bool { return c.segmentation == segBoth || c.segmentation == segReceive }

// deviceAliases maps Conpot's device_info element names to properties.
var deviceAliases = map[string]uint32{
	"device-name": propObjectName, "vendor-identification": propVendorIdentifier,
	"max-apdu-length": propMaxAPDULengthAccepted, "segmentation-support": propSegmentationSupported,
}

func parseConfig(sec *profiles.Section) (*config, error) {
	root := sec.Root
	if root.Name != Name {
		return nil, root.Errorf("root element must be <%s>", Name)
	}
	sec.CheckChildren(root, "device_info", "object_list", "rate_limit", "password")
	c := &config{
		device:        &objectConfig{name: "device", id: objectID{typ: objDevice}, props: map[uint32]source{}},
		fixedInstance: -1, segmentation: segBoth, maxAPDU: ourMaxAPDU, byID: map[objectID]*objectConfig{},
	}
	if n := root.Child("device_info"); n != nil {
		if err := parseDeviceInfo(sec, n, c); err != nil {
			return nil, err
		}
	}
	if err := parseRateLimits(root, c); err != nil {
		return nil, err
	}
	if n := root.Child("password"); n != nil {
		pw, err := parseSource(sec, n)
		if err != nil {
			return nil, err
		}
		if pw.key == "" && (len(pw.literal) < 1 || len(pw.literal) > 20) {
			return nil, n.Errorf("password must be 1-20 characters")
		}
		c.password = pw
	}
	if n := root.Child("object_list"); n != nil {
		sec.CheckChildren(n, "object")
		for _, on := range n.ChildrenNamed("object") {
			if len(c.objects) >= maxObjects {
				return nil, on.Errorf("more than %d objects", maxObjects)
			}
			o, err := parseObject(sec, on)
			if err != nil {
				return nil, err
			}
			if _, dup := c.byID[o.id]; dup {
				return nil, on.Errorf("object %s defined twice", o.id)
			}
			c.byID[o.id] = o
			c.objects = append(c.objects, o)
		}
	}
	c.device.required = []uint32{propSystemStatus, propVendorName, propVendorIdentifier, propModelName,
		propFirmwareRevision, propApplicationSoftware, propProtocolVersion, propProtocolRevision,
		propProtocolServices, propProtocolObjectTypes, propObjectList, propMaxAPDULengthAccepted,
		propSegmentationSupported, propAPDUTimeout, propNumberOfAPDURetries, propDeviceAddressBinding,
		propDatabaseRevision}
	c.device.optional = []uint32{propLocalDate, propLocalTime, propUTCOffset, propDaylightSavingsStatus, propSerialNumber}
	if c.segmentation != segNone {
		c.device.required = append(c.device.required, propMaxSegmentsAccepted, propAPDUSegmentTimeout)
	}
	addExtra(c.device)
	return c, nil
}

func parseDeviceInfo(sec *profiles.Section, n *profiles.Node, c *config) error {
	for _, e := range n.Children {
		name := normaliseName(e.Name)
		if name == "device-identifier" {
			v, err := parseSource(sec, e)
			if err != nil {
				return err
			}
			if v.key != "" {
				c.instanceKey = v.key
				continue
			}
			inst, err := strconv.ParseUint(v.literal, 0, 32)
			if err != nil || inst >= wildcardInstance {
				return e.Errorf("device_identifier %q is not a device instance 0-4194302", v.literal)
			}
			c.fixedInstance = int64(inst)
			continue
		}
		p, ok := deviceAliases[name]
		if !ok {
			p, ok = propertyNames[name]
		}
		if !ok {
			sec.Warnf(e, "unknown BACnet property inside <device_info>, ignored")
			continue
		}
		v, err := parseSource(sec, e)
		if err != nil {
			return err
		}
		switch p {
		case propSegmentationSupported:
			if v.key != "" {
				return e.Errorf("segmentation cannot come from the databus")
			}
			seg, ok := segmentationNames[normaliseName(v.literal)]
			if !ok {
				return e.Errorf("segmentation %q is none of segmentedBoth, segmentedTransmit, segmentedReceive, noSegmentation", v.literal)
			}
			c.segmentation = seg
			continue
		case propMaxAPDULengthAccepted:
			if v.key != "" {
				return e.Errorf("the max APDU length cannot come from the databus")
			}
			m, err := strconv.Atoi(v.literal)
			if err != nil || m < 50 || m > 65535 {
				return e.Errorf("max APDU length %q is not a number of octets (50-1476)", v.literal)
			}
			c.maxAPDU = min(m, ourMaxAPDU)
			continue
		}
		if computed(p) {
			return e.Errorf("%s is computed and cannot be set", e.Name)
		}
		if err := checkLiteral(e, p, kindOf(objDevice, p), v); err != nil {
			return err
		}
		c.device.props[p] = v
	}
	return nil
}

func parseObject(sec *profiles.Section, n *profiles.Node) (*objectConfig, error) {
	sec.CheckChildren(n, "properties")
	name, _ := n.Attr("name")
	o := &objectConfig{name: name, props: map[uint32]source{}}
	pn := n.Child("properties")
	if pn == nil {
		return nil, n.Errorf("object %q has no <properties>", name)
	}
	typeText, ok := pn.ChildText("object_type")
	if !ok {
		return nil, pn.Errorf("object %q has no <object_type>", name)
	}
	t, ok := objectTypeByName(typeText)
	if !ok {
		return nil, pn.Child("object_type").Errorf("object type %q is not a BACnet object type", typeText)
	}
	if t == objDevice {
		return nil, pn.Child("object_type").Errorf("the device object is described by <device_info>")
	}
	o.id.typ = t
	idText, ok := pn.ChildText("object_identifier")
	if !ok {
		return nil, pn.Errorf("object %q has no <object_identifier>", name)
	}
	inst, err := parseInstance(idText, t)
	if err != nil {
		return nil, pn.Child("object_identifier").Errorf("%v", err)
	}
	o.id.inst = inst
	for _, e := range pn.Children {
		pname := normaliseName(e.Name)
		if pname == "object-type" || pname == "object-identifier" {
			continue
		}
		p, ok := propertyNames[pname]
		if !ok {
			sec.Warnf(e, "unknown BACnet property inside <properties>, ignored")
			continue
		}
		if computed(p) {
			return nil, e.Errorf("%s is computed and cannot be set", e.Name)
		}
		v, err := parseSource(sec, e)
		if err != nil {
			return nil, err
		}
		if err := checkLiteral(e, p, kindOf(t, p), v); err != nil {
			return nil, err
		}
		o.props[p] = v
	}
	if _, ok := o.props[propObjectName]; !ok {
		o.props[propObjectName] = source{literal: name}
	}
	if st, ok := o.props[propStateText]; ok && st.key == "" {
		if ns, ok := o.props[propNumberOfStates]; ok && ns.key == "" && ns.literal != strconv.Itoa(len(splitTexts(st.literal))) {
			return nil, pn.Child("state_text").Errorf("%d state texts for number_of_states %s", len(splitTexts(st.literal)), ns.literal)
		}
	}
	standardProperties(o)
	return o, nil
}

// parseInstance reads "14", "analog-input,14" or "analogInput:14".
func parseInstance(s string, t uint16) (uint32, error) {
	if i := strings.LastIndexAny(s, ",:"); i >= 0 {
		tt, ok := objectTypeByName(s[:i])
		if !ok || tt != t {
			return 0, fmt.Errorf("object identifier %q does not match the object type", s)
		}
		s = s[i+1:]
	}
	v, err := strconv.ParseUint(strings.TrimSpace(s), 0, 32)
	if err != nil || v >= wildcardInstance {
		return 0, fmt.Errorf("object identifier %q is not an instance 0-4194302", s)
	}
	return uint32(v), nil
}

// standardProperties fills an object's property lists from its type.
func standardProperties(o *objectConfig) {
	t := o.id.typ
	switch t {
	case objAnalogInput, objAnalogOutput, objAnalogValue:
		o.required = []uint32{propPresentValue, propStatusFlags, propEventState, propOutOfService, propUnits}
	case objBinaryInput, objBinaryOutput, objBinaryValue:
		o.required = []uint32{propPresentValue, propStatusFlags, propEventState, propOutOfService}
		if t != objBinaryValue {
			o.required = append(o.required, propPolarity)
		}
	case objMultiStateInput, objMultiStateOutput, objMultiStateValue:
		o.required = []uint32{propPresentValue, propStatusFlags, propEventState, propOutOfService, propNumberOfStates}
	case objAccessDoor:
		o.required = []uint32{propPresentValue, propStatusFlags, propEventState, propReliability, propOutOfService,
			propDoorPulseTime, propDoorExtendedPulseTime, propDoorOpenTooLongTime}
	default:
		if _, ok := o.props[propPresentValue]; ok {
			o.required = []uint32{propPresentValue, propStatusFlags}
		}
	}
	switch t {
	case objAnalogOutput, objBinaryOutput, objMultiStateOutput, objAccessDoor:
		o.commandable = true
		o.required = append(o.required, propPriorityArray, propRelinquishDefault)
	}
	addExtra(o)
}

// addExtra lists the configured properties that are not yet listed as optional ones.
func addExtra(o *objectConfig) {
	var extra []uint32
	for p := range o.props {
		if !o.has(p) {
			extra = append(extra, p)
		}
	}
	slices.Sort(extra)
	o.optional = append(o.optional, extra...)
}

// kindOf is the datatype of property p of an object of type t.
func kindOf(t uint16, p uint32) propKind {
	if p == propPresentValue || p == propRelinquishDefault {
		return presentValueKind(t)
	}
	if k, ok := propKinds[p]; ok {
		return k
	}
	return kindChars
}

// parseSource reads an element's value: a databus="key" attribute, text naming a databus
// key, or literal text.
func parseSource(sec *profiles.Section, e *profiles.Node) (source, error) {
	if k, ok := e.Attr("databus"); ok {
		k = strings.TrimSpace(k)
		if !sec.Profile.Schema.Has(k) {
			return source{}, e.Errorf("databus key %q is not defined in template.xml", k)
		}
		return source{key: k}, nil
	}
	t := e.TextTrim()
	if t != "" && sec.Profile.Schema.Has(t) {
		return source{key: t}, nil
	}
	t = unquote(t)
	if len(t) > maxValueLen {
		return source{}, e.Errorf("value is %d bytes long, at most %d", len(t), maxValueLen)
	}
	return source{literal: t}, nil
}

// unquote removes the quotes of a Python string literal.
func unquote(s string) string {
	if len(s) >= 2 && (s[0] == '"' || s[0] == '\'') && s[len(s)-1] == s[0] {
		return s[1 : len(s)-1]
	}
	return s
}

// checkLiteral validates a literal value against the property's datatype.
func checkLiteral(e *profiles.Node, p uint32, k propKind, v source) error {
	if v.key != "" {
		return nil
	}
	if _, err := encodeText(nil, k, v.literal); err != nil {
		return e.Errorf("value %q: %v", v.literal, err)
	}
	return nil
}

// encodeText encodes a configured or databus value as an application value of kind k.
func encodeText(b []byte, k propKind, s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	switch k {
	case kindChars:
		return appendCharString(b, s), nil
	case kindReal:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsInf(float64(float32(f)), 0) {
			return nil, fmt.Errorf("not a REAL number")
		}
		return appendReal(b, float32(f)), nil
	case kindUnsigned, kindEnum:
		u, err := parseUint(s, k)
		if err != nil {
			return nil, err
		}
		if k == kindEnum {
			return appendEnumerated(b, u), nil
		}
		return appendUnsigned(b, u), nil
	case kindSigned:
		i, err := strconv.ParseInt(s, 0, 32)
		if err != nil {
			return nil, fmt.Errorf("not a signed integer")
		}
		return appendSigned(b, int32(i)), nil
	case kindBool:
		bv, err := parseBool(s)
		if err != nil {
			return nil, err
		}
		return appendBoolean(b, bv), nil
	case kindCharsArray:
		parts := splitTexts(s)
		for _, part := range parts {
			if part == "" {
				return nil, fmt.Errorf("an empty text in the list")
			}
			b = appendCharString(b, part)
		}
		return b, nil
	case kindBits4:
		s = strings.Trim(s, "[]() ")
		parts := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' })
		if len(parts) != 4 {
			return nil, fmt.Errorf("not four flags")
		}
		var set [4]bool
		for i, p := range parts {
			bv, err := parseBool(p)
			if err != nil {
				return nil, err
			}
			set[i] = bv
		}
		return appendBitString(b, 4, func(i int) bool { return set[i] }), nil
	}
	return nil, fmt.Errorf("unsupported datatype")
}

// splitTexts splits a configured list of texts ("Occupied;Unoccupied;Standby").
func splitTexts(s string) []string {
	parts := strings.Split(s, ";")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}

func parseUint(s string, k propKind) (uint32, error) {
	switch strings.ToLower(s) {
	case "true", "active":
		return 1, nil
	case "false", "inactive":
		return 0, nil
	}
	u, err := strconv.ParseUint(s, 0, 32)
	if err != nil {
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || f < 0 || f > math.MaxUint32 || f != math.Trunc(f) {
			return 0, fmt.Errorf("not an unsigned integer")
		}
		u = uint64(f)
	}
	return uint32(u), nil
}

func parseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "1":
		return true, nil
	case "false", "0":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean", s)
}
