package s7comm

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// COTP (ISO 8073 class 0) TPDU codes.
const (
	CodeCR = 0xE0 // connection request
	CodeCC = 0xD0 // connection confirm
	CodeDR = 0x80 // disconnect request
	CodeDC = 0xC0 // disconnect confirm
	CodeDT = 0xF0 // data
	CodeER = 0x70 // TPDU error
)

// COTP parameter codes used by class 0.
const (
	ParamTPDUSize   = 0xC0
	ParamCallingTS  = 0xC1 // calling (source) TSAP
	ParamCalledTS   = 0xC2 // called (destination) TSAP
	ParamInvalidTPD = 0xC1 // in an ER: the header of the rejected TPDU
)

// ER reject causes (ISO 8073 13.12.3).
const (
	RejectUnspecified  = 0x00
	RejectParamCode    = 0x01
	RejectTPDUType     = 0x02
	RejectParamValue   = 0x03
	maxTPDUSizeCode    = 0x0D // 8192 bytes
	minTPDUSizeCode    = 0x07 // 128 bytes
	defaultTPDUSizeCod = 0x07 // class 0 default when the CR names none
)

// DR reasons (ISO 8073 13.5.3).
const (
	ReasonUnspecified   = 0x00
	ReasonAddrUnknown   = 0x03 // unknown TSAP
	ReasonNormal        = 0x80
	ReasonProtocolError = 0x85
)

// ErrCOTP reports a malformed COTP TPDU.
var ErrCOTP = errors.New("cotp: malformed TPDU")

// Param is one variable-part parameter of a CR, CC, DR or ER.
type Param struct {
	Code  byte
	Value []byte
}

// TPDU is a decoded COTP TPDU. Which fields are meaningful depends on Code.
type TPDU struct {
	Code   byte
	DstRef uint16 // CR, CC, DR, DC, ER
	SrcRef uint16 // CR, CC, DR, DC
	Class  byte   // CR, CC: class and options
	Reason byte   // DR: reason; ER: reject cause
	EOT    bool   // DT: last TPDU of the user data unit
	Number byte   // DT: TPDU number (7 bits)
	Params []Param
	Data   []byte // DT user data (aliases the input)
	Header []byte // the TPDU header as received, LI included (for ER replies)
}

// Param returns the value of parameter code and whether it is present.
func (t *TPDU) Param(code byte) ([]byte, bool) {
	for _, p := range t.Params {
		if p.Code == code {
			return p.Value, true
		}
	}
	return nil, false
}

// TSAP returns a 1- or 2-byte TSAP parameter as a number.
func (t *TPDU) TSAP(code byte) (uint16, bool) {
	v, ok := t.Param(code)
	if !ok || len(v) == 0 || len(v) > 2 {
		return 0, false
	}
	if len(v) == 1 {
		return uint16(v[0]), true
	}
	return binary.BigEndian.Uint16(v), true
}

// fixedLen is the length of the fixed header part (code byte included) per TPDU type.
func fixedLen(code byte) (int, bool) {
	switch code {
	case CodeCR, CodeCC, CodeDR:
		return 6, true
	case CodeDC:
		return 5, true
	case CodeDT:
		return 2, true
	case CodeER:
		return 4, true
	}
	return 0, false
}

// ParseCOTP decodes one TPDU. For unknown TPDU types it returns the code and header with
// an error wrapping ErrCOTP, so the caller can answer with an ER.
func ParseCOTP(b []byte) (TPDU, error) {
	var t TPDU
	if len(b) < 2 {
		return t, fmt.Errorf("%w: %d bytes", ErrCOTP, len(b))
	}
	li := int(b[0])
	if li == 0xFF || li+1 > len(b) {
		return t, fmt.Errorf("%w: length indicator %d for %d bytes", ErrCOTP, li, len(b))
	}
	t.Header = b[:li+1]
	t.Code = b[1]
	if hi := b[1] & 0xF0; hi == CodeCR || hi == CodeCC {
		t.Code = hi // the low nibble is the credit, always 0 in class 0
	}
	fl, ok := fixedLen(t.Code)
	if !ok {
		return t, fmt.Errorf("%w: unknown TPDU type 0x%02x", ErrCOTP, b[1])
	}
	if li < fl {
		return t, fmt.Errorf("%w: length indicator %d below %d for type 0x%02x", ErrCOTP, li, fl, t.Code)
	}
	h := b[1 : li+1]
	switch t.Code {
	case CodeCR, CodeCC, CodeDR, CodeDC:
		t.DstRef = binary.BigEndian.Uint16(h[1:])
		t.SrcRef = binary.BigEndian.Uint16(h[3:])
		if t.Code == CodeDR {
			t.Reason = h[5]
		} else if t.Code != CodeDC {
			t.Class = h[5]
		}
	case CodeDT:
		t.EOT = h[1]&0x80 != 0
		t.Number = h[1] & 0x7F
		t.Data = b[li+1:]
		if li != fl {
			return t, fmt.Errorf("%w: DT length indicator %d", ErrCOTP, li)
		}
		return t, nil
	case CodeER:
		t.DstRef = binary.BigEndian.Uint16(h[1:])
		t.Reason = h[3]
	}
	params, err := parseParams(h[fl:])
	if err != nil {
		return t, err
	}
	t.Params = params
	if t.Code == CodeCR || t.Code == CodeCC {
		if v, ok := t.Param(ParamTPDUSize); ok && (len(v) != 1 || v[0] < minTPDUSizeCode || v[0] > maxTPDUSizeCode) {
			return t, fmt.Errorf("%w: TPDU size parameter %x", ErrCOTP, v)
		}
	}
	return t, nil
}

// maxParams bounds the parameters kept per TPDU (the header is at most 254 bytes anyway).
const maxParams = 32

func parseParams(b []byte) ([]Param, error) {
	var out []Param
	for len(b) > 0 {
		if len(b) < 2 {
			return nil, fmt.Errorf("%w: truncated parameter 0x%02x", ErrCOTP, b[0])
		}
		n := int(b[1])
		if 2+n > len(b) {
			return nil, fmt.Errorf("%w: parameter 0x%02x length %d overruns header", ErrCOTP, b[0], n)
		}
		if len(out) == maxParams {
			return nil, fmt.Errorf("%w: more than %d parameters", ErrCOTP, maxParams)
		}
		out = append(out, Param{Code: b[0], Value: b[2 : 2+n]})
		b = b[2+n:]
	}
	return out, nil
}

// Append encodes t (header and, for DT, data) after dst.
func (t *TPDU) Append(dst []byte) []byte {
	start := len(dst)
	dst = append(dst, 0) // LI, patched below
	switch t.Code {
	case CodeCR, CodeCC, CodeDR, CodeDC:
		dst = append(dst, t.Code, byte(t.DstRef>>8), byte(t.DstRef), byte(t.SrcRef>>8), byte(t.SrcRef))
		switch t.Code {
		case CodeDR:
			dst = append(dst, t.Reason)
		case CodeCR, CodeCC:
			dst = append(dst, t.Class)
		}
	case CodeDT:
		nr := t.Number & 0x7F
		if t.EOT {
			nr |= 0x80
		}
		dst = append(dst, CodeDT, nr)
	case CodeER:
		dst = append(dst, CodeER, byte(t.DstRef>>8), byte(t.DstRef), t.Reason)
	default:
		dst = append(dst, t.Code)
	}
	if t.Code != CodeDT {
		for _, p := range t.Params {
			dst = append(dst, p.Code, byte(len(p.Value)))
			dst = append(dst, p.Value...)
		}
	}
	dst[start] = byte(len(dst) - start - 1)
	if t.Code == CodeDT {
		dst = append(dst, t.Data...)
	}
	return dst
}

// TPDUSize converts a TPDU size parameter code to bytes.
func TPDUSize(code byte) int { return 1 << code }
