package enip

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// CIP services (CIP Vol. 1, Appendix A; Logix services from the Logix data access manual).
const (
	svcGetAttributesAll         byte = 0x01
	svcGetAttributeList         byte = 0x03
	svcReset                    byte = 0x05
	svcMultipleService          byte = 0x0A
	svcGetAttributeSingle       byte = 0x0E
	svcGetInstanceAttributeList byte = 0x55
	svcSetAttributeSingle       byte = 0x10
	svcReadTag                  byte = 0x4C
	svcWriteTag                 byte = 0x4D
	svcForwardClose             byte = 0x4E
	svcReadTagFragmented        byte = 0x52 // Unconnected Send on the Connection Manager
	svcWriteTagFragmented       byte = 0x53
	svcForwardOpen              byte = 0x54
	svcLargeForwardOpen         byte = 0x5B
	svcUnconnectedSend          byte = 0x52
	replyBit                    byte = 0x80
)

// serviceName names a CIP service for events and metrics (a fixed set). class tells the
// Connection Manager's services from the Logix tag services that share their codes.
func serviceName(svc byte, class uint32) string {
	if class == classConnectionManager {
		switch svc {
		case svcForwardOpen:
			return "forward_open"
		case svcLargeForwardOpen:
			return "large_forward_open"
		case svcForwardClose:
			return "forward_close"
		case svcUnconnectedSend:
			return "unconnected_send"
		}
	}
	switch svc {
	case svcGetAttributesAll:
		return "get_attributes_all"
	case svcGetAttributeList:
		return "get_attribute_list"
	case svcReset:
		return "reset"
	case svcMultipleService:
		return "multiple_service_packet"
	case svcGetAttributeSingle:
		return "get_attribute_single"
	case svcSetAttributeSingle:
		return "set_attribute_single"
	case svcReadTag:
		return "read_tag"
	case svcWriteTag:
		return "write_tag"
	case svcReadTagFragmented:
		return "read_tag_fragmented"
	case svcGetInstanceAttributeList:
		return "get_instance_attribute_list"
	case svcWriteTagFragmented:
		return "write_tag_fragmented"
	}
	return "other"
}

// CIP general status codes (CIP Vol. 1, Appendix B).
const (
	gsSuccess              byte = 0x00
	gsConnectionFailure    byte = 0x01
	gsResourceUnavailable  byte = 0x02
	gsPathSegmentError     byte = 0x04
	gsPathDestUnknown      byte = 0x05
	gsPartialTransfer      byte = 0x06
	gsServiceNotSupported  byte = 0x08
	gsAttributeListError   byte = 0x0A
	gsAttributeNotSettable byte = 0x0E
	gsNotEnoughData        byte = 0x13
	gsAttributeUnsupported byte = 0x14
	gsTooMuchData          byte = 0x15
	gsObjectDoesNotExist   byte = 0x16
	gsEmbeddedServiceError byte = 0x1E
	gsInvalidParameter     byte = 0x20
	gsPathSizeInvalid      byte = 0x26
	gsGeneralError         byte = 0xFF // Logix: the extended status says what
)

// Logix extended status codes that go with gsGeneralError.
const (
	extBeyondEnd    uint16 = 0x2105
	extTypeMismatch uint16 = 0x2107
)

// Connection Manager extended status codes that go with gsConnectionFailure.
const (
	extConnectionNotFound uint16 = 0x0107
	extNoMoreConnections  uint16 = 0x0113
	extInvalidSegment     uint16 = 0x0315
)

// Object classes this device has.
const (
	classIdentity          uint32 = 0x01
	classMessageRouter     uint32 = 0x02
	classConnectionManager uint32 = 0x06
	classTCPIP             uint32 = 0xF5
	classEthernetLink      uint32 = 0xF6
	classSymbol            uint32 = 0x6B // Logix tags
)

// cipPath is a decoded request path (EPATH, CIP Vol. 1, C-1).
type cipPath struct {
	HasClass, HasInstance, HasAttribute bool
	Class, Instance, Attribute          uint32
	// Symbol is an ANSI extended symbolic segment (a Logix tag name); the first
	// NumElements of Elements are the member (array index) segments after it.
	Symbol      []byte
	Elements    [maxElements]uint32
	NumElements int
	// Ports counts port segments (a route through a backplane).
	Ports int
	// HasKey is set when an electronic key segment was present.
	HasKey bool
}

// maxElements bounds the array indices of one tag path (Logix allows three dimensions).
const maxElements = 3

var errPath = errors.New("malformed path")

// parsePath decodes an EPATH of padded segments.
func parsePath(b []byte) (cipPath, error) {
	var p cipPath
	for len(b) > 0 {
		seg := b[0]
		switch {
		case seg < 0x20: // port segment
			n, err := portSegmentLen(b)
			if err != nil {
				return p, err
			}
			p.Ports++
			b = b[n:]
		case seg == 0x34: // electronic key, format 4
			if len(b) < 10 || b[1] != 4 {
				return p, fmt.Errorf("%w: electronic key", errPath)
			}
			p.HasKey = true
			b = b[10:]
		case seg&0xE0 == 0x20: // logical segment
			v, n, err := logicalValue(b)
			if err != nil {
				return p, err
			}
			switch (seg >> 2) & 7 {
			case 0:
				p.HasClass, p.Class = true, v
			case 1:
				p.HasInstance, p.Instance = true, v
			case 2:
				if p.NumElements >= maxElements {
					return p, fmt.Errorf("%w: more than %d member segments", errPath, maxElements)
				}
				p.Elements[p.NumElements] = v
				p.NumElements++
			case 3: // connection point: addresses the instance in a connection path
				p.HasInstance, p.Instance = true, v
			case 4:
				p.HasAttribute, p.Attribute = true, v
			default:
				return p, fmt.Errorf("%w: logical segment 0x%02x", errPath, seg)
			}
			b = b[n:]
		case seg == 0x91: // ANSI extended symbolic
			if len(b) < 2 {
				return p, fmt.Errorf("%w: symbolic segment truncated", errPath)
			}
			l := int(b[1])
			n := 2 + l + l&1
			if l == 0 || len(b) < n {
				return p, fmt.Errorf("%w: symbolic segment length %d", errPath, l)
			}
			if p.Symbol != nil {
				return p, fmt.Errorf("%w: structure members are not supported", errPath)
			}
			p.Symbol = b[2 : 2+l]
			b = b[n:]
		default:
			return p, fmt.Errorf("%w: segment type 0x%02x", errPath, seg)
		}
	}
	return p, nil
}

// logicalValue decodes the 8-, 16- or 32-bit value of a logical segment.
func logicalValue(b []byte) (uint32, int, error) {
	switch b[0] & 3 {
	case 0:
		if len(b) < 2 {
			return 0, 0, fmt.Errorf("%w: 8-bit logical segment truncated", errPath)
		}
		return uint32(b[1]), 2, nil
	case 1:
		if len(b) < 4 {
			return 0, 0, fmt.Errorf("%w: 16-bit logical segment truncated", errPath)
		}
		return uint32(binary.LittleEndian.Uint16(b[2:])), 4, nil
	case 2:
		if len(b) < 6 {
			return 0, 0, fmt.Errorf("%w: 32-bit logical segment truncated", errPath)
		}
		return binary.LittleEndian.Uint32(b[2:]), 6, nil
	}
	return 0, 0, fmt.Errorf("%w: reserved logical format", errPath)
}

// portSegmentLen returns the length of the port segment at the start of b.
func portSegmentLen(b []byte) (int, error) {
	seg := b[0]
	n := 1
	if seg&0x0F == 0x0F { // extended port identifier
		n += 2
	}
	if seg&0x10 != 0 { // extended link address: size byte, address, pad
		if len(b) < n+1 {
			return 0, fmt.Errorf("%w: port segment truncated", errPath)
		}
		l := int(b[n])
		n += 1 + l
	} else {
		n++
	}
	n += n & 1
	if len(b) < n {
		return 0, fmt.Errorf("%w: port segment truncated", errPath)
	}
	return n, nil
}

// cipRequest is a Message Router request; Path and Data alias the parsed buffer.
type cipRequest struct {
	Service byte
	Path    []byte
	Data    []byte
}

// parseRequest splits a Message Router request into service, path and data.
func parseRequest(b []byte) (cipRequest, error) {
	if len(b) < 2 {
		return cipRequest{}, errors.New("CIP request shorter than two bytes")
	}
	n := 2 + 2*int(b[1])
	if len(b) < n {
		return cipRequest{Service: b[0]}, fmt.Errorf("CIP path of %d words, %d bytes left", b[1], len(b)-2)
	}
	return cipRequest{Service: b[0], Path: b[2:n], Data: b[n:]}, nil
}

// appendReply appends a Message Router reply: service, reserved, status, the extended
// status words and data.
func appendReply(dst []byte, service, status byte, ext []uint16, data []byte) []byte {
	dst = append(dst, service|replyBit, 0, status, byte(len(ext)))
	for _, e := range ext {
		dst = binary.LittleEndian.AppendUint16(dst, e)
	}
	return append(dst, data...)
}

// appendShortString appends a SHORT_STRING (length byte, characters), cut at 255 bytes.
func appendShortString(dst []byte, s string) []byte {
	if len(s) > 255 {
		s = s[:255]
	}
	dst = append(dst, byte(len(s)))
	return append(dst, s...)
}

// appendPaddedString appends a STRING (16-bit length, characters) padded to an even length,
// as the TCP/IP Interface object's domain and host names are.
func appendPaddedString(dst []byte, s string) []byte {
	if len(s) > 64 {
		s = s[:64]
	}
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(s)))
	dst = append(dst, s...)
	if len(s)&1 == 1 {
		dst = append(dst, 0)
	}
	return dst
}
