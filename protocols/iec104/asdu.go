package iec104

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Type identifications (IEC 60870-5-101, 7.2.1) this station knows.
const (
	mSPNA  byte = 1  // single-point information
	mDPNA  byte = 3  // double-point information
	mSTNA  byte = 5  // step position
	mBONA  byte = 7  // bitstring of 32 bits
	mMENA  byte = 9  // measured value, normalised
	mMENB  byte = 11 // measured value, scaled
	mMENC  byte = 13 // measured value, short floating point
	mITNA  byte = 15 // integrated totals
	mEINA  byte = 70 // end of initialisation
	cSCNA  byte = 45 // single command
	cDCNA  byte = 46 // double command
	cRCNA  byte = 47 // regulating step command
	cSENA  byte = 48 // set-point, normalised
	cSENB  byte = 49 // set-point, scaled
	cSENC  byte = 50 // set-point, short floating point
	cSCTA  byte = 58 // the same commands with a CP56Time2a time tag
	cSETC  byte = 63
	cICNA  byte = 100 // interrogation
	cCINA  byte = 101 // counter interrogation
	cRDNA  byte = 102 // read
	cCSNA  byte = 103 // clock synchronisation
	cTSTA  byte = 107 // test command with time tag
	timeTA      = 7   // CP56Time2a octets
)

// Causes of transmission (7.2.3).
const (
	cotSpontaneous   byte = 3
	cotRequest       byte = 5
	cotActivation    byte = 6
	cotActCon        byte = 7
	cotDeactivation  byte = 8
	cotDeactCon      byte = 9
	cotActTerm       byte = 10
	cotRemoteCommand byte = 11
	cotStation       byte = 20 // interrogated by station interrogation; 21-36 groups 1-16
	cotCounter       byte = 37 // requested by general counter request; 38-41 groups 1-4
	cotUnknownType   byte = 44
	cotUnknownCause  byte = 45
	cotUnknownCA     byte = 46
	cotUnknownIOA    byte = 47
	cotNegative      byte = 0x40 // P/N bit
)

// asduHeaderLen is type, VSQ, two COT octets and a two-octet common address.
const asduHeaderLen = 6

// ioaLen is the information object address size of IEC 104.
const ioaLen = 3

// ioa is an information object address as its three octets on the wire.
type ioa [3]byte

func (a ioa) String() string {
	// Conpot's register names: X_Y with X the first two octets big-endian and Y the third
	return fmt.Sprintf("%d_%d", int(a[0])<<8|int(a[1]), a[2])
}

// elementSize is the size of one information element of a type (without its address).
func elementSize(t byte) (int, bool) {
	switch t {
	case mSPNA, mDPNA:
		return 1, true
	case mSTNA:
		return 2, true
	case mBONA, mMENC:
		return 5, true
	case mMENA, mMENB:
		return 3, true
	case mITNA:
		return 5, true
	case cSCNA, cDCNA, cRCNA:
		return 1, true
	case cSENA, cSENB:
		return 3, true
	case cSENC:
		return 5, true
	case cICNA, cCINA:
		return 1, true
	case cRDNA:
		return 0, true
	case cCSNA:
		return timeTA, true
	case cTSTA:
		return 2 + timeTA, true
	case mEINA:
		return 1, true
	}
	if t >= cSCTA && t <= cSETC { // time-tagged commands: the untagged element and a time tag
		n, _ := elementSize(t - (cSCTA - cSCNA))
		return n + timeTA, true
	}
	return 0, false
}

// asdu is a decoded ASDU; Objects alias the input.
type asdu struct {
	Type     byte
	SQ       bool
	N        int
	COT      byte // cause, without P/N and test bits
	Negative bool
	Test     bool
	OA       byte
	CA       uint16
	Objects  []object
}

// object is one information object: its address and element.
type object struct {
	IOA     ioa
	Element []byte
}

// maxObjects bounds the objects of one ASDU (the 7-bit count allows 127).
const maxObjects = 127

// parseASDU decodes an ASDU of a known type; objs is reused.
func parseASDU(b []byte, objs []object) (asdu, error) {
	if len(b) < asduHeaderLen {
		return asdu{}, fmt.Errorf("ASDU of %d octets", len(b))
	}
	a := asdu{Type: b[0], SQ: b[1]&0x80 != 0, N: int(b[1] & 0x7F), COT: b[2] & 0x3F,
		Negative: b[2]&0x40 != 0, Test: b[2]&0x80 != 0, OA: b[3], CA: binary.LittleEndian.Uint16(b[4:])}
	es, ok := elementSize(a.Type)
	if !ok {
		return a, errUnknownType
	}
	body := b[asduHeaderLen:]
	a.Objects = objs[:0]
	switch {
	case a.N == 0:
		return a, fmt.Errorf("ASDU type %d with no objects", a.Type)
	case a.SQ:
		if len(body) != ioaLen+a.N*es {
			return a, fmt.Errorf("ASDU type %d: %d octets for %d sequential objects", a.Type, len(body), a.N)
		}
		var base ioa
		copy(base[:], body)
		for i := 0; i < a.N; i++ {
			a.Objects = append(a.Objects, object{IOA: addIOA(base, i), Element: body[ioaLen+i*es : ioaLen+(i+1)*es]})
		}
	default:
		if len(body) != a.N*(ioaLen+es) {
			return a, fmt.Errorf("ASDU type %d: %d octets for %d objects", a.Type, len(body), a.N)
		}
		for i := 0; i < a.N; i++ {
			o := body[i*(ioaLen+es):]
			var addr ioa
			copy(addr[:], o)
			a.Objects = append(a.Objects, object{IOA: addr, Element: o[ioaLen : ioaLen+es]})
		}
	}
	return a, nil
}

var errUnknownType = fmt.Errorf("unknown type identification")

// addIOA adds i to a little-endian 24-bit address (the standard's sequence addressing).
func addIOA(a ioa, i int) ioa {
	v := uint32(a[0]) | uint32(a[1])<<8 | uint32(a[2])<<16
	v += uint32(i)
	return ioa{byte(v), byte(v >> 8), byte(v >> 16)}
}

// appendHeader appends an ASDU header with SQ=0 and n objects.
func appendASDUHeader(dst []byte, typ byte, n int, cot byte, negative bool, oa byte, ca uint16) []byte {
	c := cot
	if negative {
		c |= cotNegative
	}
	dst = append(dst, typ, byte(n), c, oa)
	return binary.LittleEndian.AppendUint16(dst, ca)
}

// mirror appends the received ASDU with another cause (a confirmation or a refusal).
func mirror(dst, asduBytes []byte, cot byte, negative bool) []byte {
	start := len(dst)
	dst = append(dst, asduBytes...)
	c := cot
	if negative {
		c |= cotNegative
	}
	dst[start+2] = c | asduBytes[2]&0x80 // keep the test bit
	return dst
}

// appendElement appends a monitored point's information element (value with a good
// quality descriptor) for its type.
func appendElement(dst []byte, t byte, v float64) []byte {
	switch t {
	case mSPNA:
		return append(dst, byte(int64(v)&1))
	case mDPNA:
		return append(dst, byte(int64(v)&3))
	case mSTNA:
		return append(dst, byte(int64(v)&0x7F), 0)
	case mBONA:
		dst = binary.LittleEndian.AppendUint32(dst, uint32(int64(v)))
		return append(dst, 0)
	case mMENA:
		dst = binary.LittleEndian.AppendUint16(dst, uint16(normalised(v)))
		return append(dst, 0)
	case mMENB:
		dst = binary.LittleEndian.AppendUint16(dst, uint16(clampInt16(v)))
		return append(dst, 0)
	case mMENC:
		dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(float32(v)))
		return append(dst, 0)
	case mITNA:
		dst = binary.LittleEndian.AppendUint32(dst, uint32(int32(int64(v))))
		return append(dst, 0)
	}
	return dst
}

// normalised turns a value in [-1, 1) into the 16-bit fixed-point NVA.
func normalised(v float64) int16 {
	return clampInt16(v * 32768)
}

func clampInt16(v float64) int16 {
	switch {
	case v >= math.MaxInt16:
		return math.MaxInt16
	case v <= math.MinInt16:
		return math.MinInt16
	case math.IsNaN(v):
		return 0
	}
	return int16(v)
}
