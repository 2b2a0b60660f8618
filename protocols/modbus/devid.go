package modbus

// Read Device ID codes of FC 43/14.
const (
	DevIDBasic      = 0x01 // stream access, basic objects 0x00–0x02
	DevIDRegular    = 0x02 // stream access, plus regular objects 0x03–0x06
	DevIDExtended   = 0x03 // stream access, plus extended objects 0x80–0xFF
	DevIDIndividual = 0x04 // one object
)

// Well-known device identification object ids.
const (
	ObjVendorName          = 0x00
	ObjProductCode         = 0x01
	ObjMajorMinorRevision  = 0x02
	ObjVendorURL           = 0x03
	ObjProductName         = 0x04
	ObjModelName           = 0x05
	ObjUserApplicationName = 0x06
)

// DeviceObject is one device identification object.
type DeviceObject struct {
	ID    uint8
	Value []byte
}

// ObjectCategory returns the category (DevIDBasic, DevIDRegular or DevIDExtended) of an
// object id, or 0 for the reserved range 0x07–0x7F.
func ObjectCategory(id uint8) uint8 {
	switch {
	case id <= ObjMajorMinorRevision:
		return DevIDBasic
	case id <= ObjUserApplicationName:
		return DevIDRegular
	case id >= 0x80:
		return DevIDExtended
	}
	return 0
}

// AppendDeviceID appends the FC 43/14 reply PDU for a request (code, objectID) given the
// device's objects, sorted by id, each value at most maxDeviceObjectValue bytes. It
// returns a non-zero exception code instead when the request must be refused: 02 for an
// individual access to an object the device lacks, 03 for a bad code.
//
// Stream access returns the objects of the requested category and the ones below it,
// starting at objectID (or at the first object when the device has no such object, as the
// specification says), as many as fit into one PDU; the rest is announced with
// more-follows 0xFF and the next object id.
func AppendDeviceID(dst []byte, code, objectID uint8, objs []DeviceObject) ([]byte, uint8) {
	var top uint8 = DevIDBasic
	for _, o := range objs {
		top = max(top, ObjectCategory(o.ID))
	}
	conformity := top | 0x80 // individual access is supported too
	switch code {
	case DevIDIndividual:
		for _, o := range objs {
			if o.ID == objectID {
				dst = append(dst, FuncEncapsulatedInterface, MEIReadDeviceID, code, conformity, 0, 0, 1)
				return appendObject(dst, o), 0
			}
		}
		return dst, ExIllegalAddress
	case DevIDBasic, DevIDRegular, DevIDExtended:
	default:
		return dst, ExIllegalValue
	}
	// The objects of this stream: those whose category is at most code.
	first := -1
	start := -1
	for i, o := range objs {
		if ObjectCategory(o.ID) > code {
			continue
		}
		if first < 0 {
			first = i
		}
		if o.ID == objectID && start < 0 {
			start = i
		}
	}
	if first < 0 {
		return dst, ExIllegalAddress
	}
	if start < 0 {
		start = first
	}
	base := len(dst)
	dst = append(dst, FuncEncapsulatedInterface, MEIReadDeviceID, code, conformity, 0, 0, 0)
	n := 0
	for i := start; i < len(objs); i++ {
		o := objs[i]
		if ObjectCategory(o.ID) > code {
			continue
		}
		if len(dst)-base+2+len(o.Value) > MaxPDU {
			dst[base+4] = 0xFF // more follows
			dst[base+5] = o.ID // next object id
			break
		}
		dst = appendObject(dst, o)
		n++
	}
	dst[base+6] = byte(n)
	return dst, 0
}

func appendObject(dst []byte, o DeviceObject) []byte {
	v := o.Value
	if len(v) > maxDeviceObjectValue {
		v = v[:maxDeviceObjectValue]
	}
	dst = append(dst, o.ID, byte(len(v)))
	return append(dst, v...)
}
