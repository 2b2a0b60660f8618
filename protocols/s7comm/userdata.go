package s7comm

import (
	"encoding/binary"
	"fmt"
)

// Userdata parameter constants.
const (
	udHead0, udHead1, udHead2 = 0x00, 0x01, 0x12
	udMethodReq               = 0x11
	udMethodRes               = 0x12
	UDTypePush                = 0x0
	UDTypeReq                 = 0x4
	UDTypeRes                 = 0x8
)

// Userdata function groups.
const (
	GroupModeTrans = 0x0
	GroupProg      = 0x1
	GroupCyclic    = 0x2
	GroupBlock     = 0x3
	GroupCPU       = 0x4
	GroupSecurity  = 0x5
	GroupTime      = 0x7
)

// Userdata subfunctions used here.
const (
	SubReadSZL      = 0x01 // CPU functions
	SubListBlocks   = 0x01 // block functions
	SubListOfType   = 0x02
	SubBlockInfo    = 0x03
	SubPassword     = 0x01 // security
	SubClearPasswd  = 0x02
	SubReadClock    = 0x01 // time functions
	SubSetClock     = 0x02
	SubReadClockFol = 0x03
)

// UDParam is a userdata parameter block: 8 bytes in requests, 12 in responses and in
// follow-up requests (data unit reference, last-unit flag and error code).
type UDParam struct {
	Method  byte // 0x11 request, 0x12 response
	Type    byte // high nibble of the type/group byte
	Group   byte // low nibble
	Sub     byte
	Seq     byte
	Long    bool // 12-byte form
	DURef   byte
	LastDU  byte // 0x00 yes, 0x01 more follows
	ErrCode uint16
}

// ParseUDParam decodes a userdata parameter block.
func ParseUDParam(b []byte) (UDParam, error) {
	var u UDParam
	if len(b) < 8 || b[0] != udHead0 || b[1] != udHead1 || b[2] != udHead2 {
		return u, fmt.Errorf("%w: userdata parameter head % x", ErrS7, b[:min(len(b), 3)])
	}
	if int(b[3])+4 != len(b) || (b[3] != 4 && b[3] != 8) {
		return u, fmt.Errorf("%w: userdata parameter length %d for %d bytes", ErrS7, b[3], len(b))
	}
	u.Method = b[4]
	u.Type, u.Group = b[5]>>4, b[5]&0x0F
	u.Sub, u.Seq = b[6], b[7]
	if b[3] == 8 {
		u.Long = true
		u.DURef, u.LastDU = b[8], b[9]
		u.ErrCode = binary.BigEndian.Uint16(b[10:])
	}
	return u, nil
}

// Append encodes the parameter block (the long form when Long is set).
func (u UDParam) Append(dst []byte) []byte {
	l := byte(4)
	if u.Long {
		l = 8
	}
	dst = append(dst, udHead0, udHead1, udHead2, l, u.Method, u.Type<<4|u.Group&0x0F, u.Sub, u.Seq)
	if u.Long {
		dst = append(dst, u.DURef, u.LastDU, byte(u.ErrCode>>8), byte(u.ErrCode))
	}
	return dst
}

// UDData is the data part of a userdata PDU: return code, transport size, length, payload.
type UDData struct {
	RC      byte
	TS      byte
	Payload []byte
}

// ParseUDData decodes the data part of a userdata PDU. An empty data part is valid (some
// requests carry none).
func ParseUDData(b []byte) (UDData, error) {
	if len(b) == 0 {
		return UDData{}, nil
	}
	if len(b) < 4 {
		return UDData{}, fmt.Errorf("%w: userdata data of %d bytes", ErrS7, len(b))
	}
	n := int(binary.BigEndian.Uint16(b[2:]))
	if 4+n != len(b) {
		return UDData{}, fmt.Errorf("%w: userdata data length %d for %d bytes", ErrS7, n, len(b)-4)
	}
	return UDData{RC: b[0], TS: b[1], Payload: b[4:]}, nil
}

// Append encodes the data part.
func (d UDData) Append(dst []byte) []byte {
	n := len(d.Payload)
	dst = append(dst, d.RC, d.TS, byte(n>>8), byte(n))
	return append(dst, d.Payload...)
}

// SZLRequest is the payload of a Read SZL request.
type SZLRequest struct{ ID, Index uint16 }

// ParseSZLRequest decodes the 4-byte SZL id and index.
func ParseSZLRequest(p []byte) (SZLRequest, error) {
	if len(p) != 4 {
		return SZLRequest{}, fmt.Errorf("%w: SZL request of %d bytes", ErrS7, len(p))
	}
	return SZLRequest{ID: binary.BigEndian.Uint16(p), Index: binary.BigEndian.Uint16(p[2:])}, nil
}
