package bacnet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// BVLC (Annex J) for BACnet/IP.
const (
	bvlcType = 0x81

	bvlcResult             = 0x00
	bvlcWriteBDT           = 0x01
	bvlcReadBDT            = 0x02
	bvlcReadBDTAck         = 0x03
	bvlcForwardedNPDU      = 0x04
	bvlcRegisterFD         = 0x05
	bvlcReadFDT            = 0x06
	bvlcReadFDTAck         = 0x07
	bvlcDeleteFDTEntry     = 0x08
	bvlcDistributeBcast    = 0x09
	bvlcOriginalUnicast    = 0x0A
	bvlcOriginalBroadcast  = 0x0B
	bvlcSecureBVLL         = 0x0C
	bvlcHeaderLen          = 4
	bvlcForwardedHeaderLen = 10
)

// nakFor is the BVLC-Result code a device that is not a BBMD answers to each BBMD
// function (J.2.1.1).
var nakFor = map[byte]uint16{
	bvlcWriteBDT:        0x0010,
	bvlcReadBDT:         0x0020,
	bvlcRegisterFD:      0x0030,
	bvlcReadFDT:         0x0040,
	bvlcDeleteFDTEntry:  0x0050,
	bvlcDistributeBcast: 0x0060,
}

var (
	errNotBVLC   = errors.New("not a BACnet/IP BVLC")
	errBVLCLen   = errors.New("BVLC length does not match the datagram")
	errNPDU      = errors.New("malformed NPDU")
	errAPDU      = errors.New("malformed APDU")
	errNPDUVer   = errors.New("NPDU version is not 1")
	errNPDUShort = errors.New("truncated NPDU")
)

// bvlc is a decoded BVLC header.
type bvlc struct {
	function byte
	origin   [6]byte // Forwarded-NPDU: the B/IP address of the originating device
	payload  []byte  // the NPDU (or the BBMD function's data)
}

// decodeBVLC decodes a BACnet/IP datagram's BVLC header.
func decodeBVLC(b []byte) (bvlc, error) {
	if len(b) < bvlcHeaderLen || b[0] != bvlcType {
		return bvlc{}, errNotBVLC
	}
	if int(binary.BigEndian.Uint16(b[2:])) != len(b) {
		return bvlc{}, errBVLCLen
	}
	v := bvlc{function: b[1], payload: b[bvlcHeaderLen:]}
	if v.function == bvlcForwardedNPDU {
		if len(b) < bvlcForwardedHeaderLen {
			return bvlc{}, errBVLCLen
		}
		copy(v.origin[:], b[4:10])
		v.payload = b[bvlcForwardedHeaderLen:]
	}
	return v, nil
}

// appendBVLC appends a BVLC header for a payload of n bytes.
func appendBVLC(b []byte, function byte, n int) []byte {
	return binary.BigEndian.AppendUint16(append(b, bvlcType, function), uint16(bvlcHeaderLen+n))
}

// bvlcResultFrame returns a BVLC-Result with code.
func bvlcResultFrame(code uint16) []byte {
	return binary.BigEndian.AppendUint16(appendBVLC(nil, bvlcResult, 2), code)
}

// NPDU control bits (6.2.2).
const (
	npduNetworkMsg   = 0x80
	npduDNET         = 0x20
	npduSNET         = 0x08
	npduExpectReply  = 0x04
	npduPriorityMask = 0x03
	npduVersion      = 0x01
	globalNetwork    = 0xFFFF
)

// npdu is a decoded network layer header.
type npdu struct {
	control  byte
	dnet     uint16
	dadr     []byte
	hasDNET  bool
	snet     uint16
	sadr     []byte
	hasSNET  bool
	hops     byte
	msgType  byte // network layer message type (when control has npduNetworkMsg)
	vendorID uint16
	apdu     []byte
}

func (n *npdu) networkMessage() bool { return n.control&npduNetworkMsg != 0 }

// decodeNPDU decodes the network layer header of b.
func decodeNPDU(b []byte) (npdu, error) {
	if len(b) < 2 {
		return npdu{}, errNPDUShort
	}
	if b[0] != npduVersion {
		return npdu{}, errNPDUVer
	}
	n := npdu{control: b[1]}
	if n.control&0x50 != 0 { // reserved bits 6 and 4 must be zero
		return npdu{}, errNPDU
	}
	p := 2
	if n.control&npduDNET != 0 {
		if len(b) < p+3 {
			return npdu{}, errNPDUShort
		}
		n.hasDNET = true
		n.dnet = binary.BigEndian.Uint16(b[p:])
		l := int(b[p+2])
		p += 3
		if len(b) < p+l {
			return npdu{}, errNPDUShort
		}
		n.dadr = b[p : p+l]
		p += l
	}
	if n.control&npduSNET != 0 {
		if len(b) < p+3 {
			return npdu{}, errNPDUShort
		}
		n.hasSNET = true
		n.snet = binary.BigEndian.Uint16(b[p:])
		l := int(b[p+2])
		p += 3
		if l == 0 || n.snet == globalNetwork || len(b) < p+l {
			return npdu{}, errNPDU
		}
		n.sadr = b[p : p+l]
		p += l
	}
	if n.hasDNET {
		if len(b) < p+1 {
			return npdu{}, errNPDUShort
		}
		n.hops = b[p]
		p++
	}
	if n.networkMessage() {
		if len(b) < p+1 {
			return npdu{}, errNPDUShort
		}
		n.msgType = b[p]
		p++
		if n.msgType >= 0x80 {
			if len(b) < p+2 {
				return npdu{}, errNPDUShort
			}
			n.vendorID = binary.BigEndian.Uint16(b[p:])
			p += 2
		}
	}
	n.apdu = b[p:]
	return n, nil
}

// forUs reports whether a device that is not a router accepts the NPDU: no destination
// network, or the global broadcast network.
func (n *npdu) forUs() bool { return !n.hasDNET || n.dnet == globalNetwork }

// appendReplyNPDU appends the NPDU of an answer to req: routed back to the source network
// when the request came through a router.
func appendReplyNPDU(b []byte, req *npdu) []byte {
	if req == nil || !req.hasSNET {
		return append(b, npduVersion, 0x00)
	}
	b = append(b, npduVersion, npduDNET)
	b = binary.BigEndian.AppendUint16(b, req.snet)
	b = append(b, byte(len(req.sadr)))
	b = append(b, req.sadr...)
	return append(b, 0xFF)
}

// APDU types (20.1.1).
const (
	pduConfirmed   = 0
	pduUnconfirmed = 1
	pduSimpleACK   = 2
	pduComplexACK  = 3
	pduSegmentACK  = 4
	pduError       = 5
	pduReject      = 6
	pduAbort       = 7
)

// APDU header flags.
const (
	flagSEG = 0x08 // segmented message
	flagMOR = 0x04 // more follows
	flagSA  = 0x02 // segmented response accepted (confirmed request)
	flagNAK = 0x02 // negative ack (Segment-ACK)
	flagSRV = 0x01 // sent by server (Segment-ACK, Abort)
)

// maxAPDUs maps the 4-bit max-APDU-length-accepted code to octets.
var maxAPDUs = [16]int{50, 128, 206, 480, 1024, 1476}

// maxSegmentsCode maps the 3-bit max-segments-accepted code to a count (0: unspecified).
var maxSegmentsCode = [8]int{0, 2, 4, 8, 16, 32, 64, 255}

// apdu is a decoded application layer header.
type apdu struct {
	typ        byte
	flags      byte // low nibble of the first octet
	maxSegs    int  // confirmed request: max segments accepted (0: unspecified)
	maxAPDU    int  // confirmed request: max APDU accepted (0: reserved code)
	invokeID   byte
	seq        byte // segmented PDUs and Segment-ACK
	window     byte // proposed or actual window size
	service    byte
	reason     byte // Reject, Abort
	errorClass uint32
	errorCode  uint32
	data       []byte // the service request or ack
}

func (a *apdu) segmented() bool { return a.flags&flagSEG != 0 }

// decodeAPDU decodes the APDU header of b.
func decodeAPDU(b []byte) (apdu, error) {
	if len(b) == 0 {
		return apdu{}, fmt.Errorf("empty APDU: %w", errAPDU)
	}
	a := apdu{typ: b[0] >> 4, flags: b[0] & 0x0F}
	need := func(n int) error {
		if len(b) < n {
			return fmt.Errorf("APDU type %d truncated: %w", a.typ, errAPDU)
		}
		return nil
	}
	switch a.typ {
	case pduConfirmed:
		if err := need(4); err != nil {
			return a, err
		}
		a.maxSegs = maxSegmentsCode[(b[1]>>4)&0x07]
		a.maxAPDU = maxAPDUs[b[1]&0x0F]
		a.invokeID = b[2]
		p := 3
		if a.segmented() {
			if err := need(6); err != nil {
				return a, err
			}
			a.seq, a.window = b[3], b[4]
			p = 5
		}
		a.service = b[p]
		a.data = b[p+1:]
	case pduUnconfirmed:
		if err := need(2); err != nil {
			return a, err
		}
		a.service = b[1]
		a.data = b[2:]
	case pduSimpleACK:
		if err := need(3); err != nil {
			return a, err
		}
		a.invokeID, a.service = b[1], b[2]
	case pduComplexACK:
		if err := need(3); err != nil {
			return a, err
		}
		a.invokeID = b[1]
		p := 2
		if a.segmented() {
			if err := need(5); err != nil {
				return a, err
			}
			a.seq, a.window = b[2], b[3]
			p = 4
		}
		a.service = b[p]
		a.data = b[p+1:]
	case pduSegmentACK:
		if err := need(4); err != nil {
			return a, err
		}
		a.invokeID, a.seq, a.window = b[1], b[2], b[3]
	case pduError:
		if err := need(3); err != nil {
			return a, err
		}
		a.invokeID, a.service = b[1], b[2]
		a.data = b[3:]
		r := reader{b: a.data}
		// Some services wrap the error in a constructed [0]; the plain form is two enumerations.
		if t, ok := r.peek(); ok && t.open {
			r.next()
		}
		for i, dst := range []*uint32{&a.errorClass, &a.errorCode} {
			t, err := r.next()
			if err != nil || !t.isApp(tagEnumerated) {
				return a, fmt.Errorf("error PDU value %d: %w", i, errAPDU)
			}
			if *dst, err = decodeUnsigned(t.data); err != nil {
				return a, fmt.Errorf("error PDU value %d: %w", i, errAPDU)
			}
		}
	case pduReject, pduAbort:
		if err := need(3); err != nil {
			return a, err
		}
		a.invokeID, a.reason = b[1], b[2]
	default:
		return a, fmt.Errorf("APDU type %d: %w", a.typ, errAPDU)
	}
	return a, nil
}

// APDU encoders. Each appends to b.

func appendSimpleACK(b []byte, invoke, service byte) []byte {
	return append(b, pduSimpleACK<<4, invoke, service)
}

func appendComplexACKHeader(b []byte, invoke, service byte) []byte {
	return append(b, pduComplexACK<<4, invoke, service)
}

func appendSegmentedACKHeader(b []byte, invoke, service, seq, window byte, more bool) []byte {
	h := byte(pduComplexACK<<4 | flagSEG)
	if more {
		h |= flagMOR
	}
	return append(b, h, invoke, seq, window, service)
}

func appendErrorPDU(b []byte, invoke, service byte, class, code uint32) []byte {
	b = append(b, pduError<<4, invoke, service)
	return appendEnumerated(appendEnumerated(b, class), code)
}

func appendReject(b []byte, invoke, reason byte) []byte {
	return append(b, pduReject<<4, invoke, reason)
}

func appendAbort(b []byte, invoke, reason byte) []byte {
	return append(b, pduAbort<<4|flagSRV, invoke, reason)
}

func appendSegmentACK(b []byte, invoke, seq, window byte, nak bool) []byte {
	h := byte(pduSegmentACK<<4 | flagSRV)
	if nak {
		h |= flagNAK
	}
	return append(b, h, invoke, seq, window)
}

// message is a whole decoded BACnet/IP datagram.
type message struct {
	bvlc bvlc
	npdu npdu
	apdu apdu
	// hasAPDU is false for BVLC functions without an NPDU and for network layer messages.
	hasAPDU bool
}

// decodeMessage decodes BVLC, NPDU and APDU. BVLC functions without an NPDU and network
// layer messages decode without an APDU.
func decodeMessage(b []byte) (message, error) {
	var m message
	var err error
	if m.bvlc, err = decodeBVLC(b); err != nil {
		return m, err
	}
	switch m.bvlc.function {
	case bvlcOriginalUnicast, bvlcOriginalBroadcast, bvlcForwardedNPDU:
	default:
		return m, nil
	}
	if m.npdu, err = decodeNPDU(m.bvlc.payload); err != nil {
		return m, err
	}
	if m.npdu.networkMessage() {
		return m, nil
	}
	if m.apdu, err = decodeAPDU(m.npdu.apdu); err != nil {
		return m, err
	}
	m.hasAPDU = true
	return m, nil
}

// frame wraps an APDU in BVLC (Original-Unicast-NPDU) and the reply NPDU for req.
func frame(req *npdu, apduBytes []byte) []byte {
	return appendFrame(nil, req, apduBytes)
}

// appendFrame is frame appending to dst (which must not overlap apduBytes).
func appendFrame(dst []byte, req *npdu, apduBytes []byte) []byte {
	var nb [2 + 2 + 1 + 255 + 1]byte
	n := appendReplyNPDU(nb[:0], req)
	dst = slices.Grow(dst, bvlcHeaderLen+len(n)+len(apduBytes))
	dst = appendBVLC(dst, bvlcOriginalUnicast, len(n)+len(apduBytes))
	dst = append(dst, n...)
	return append(dst, apduBytes...)
}
