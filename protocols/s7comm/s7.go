package s7comm

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ProtocolID is the first byte of every S7comm PDU.
const ProtocolID = 0x32

// ROSCTR values (PDU types).
const (
	ROSCTRJob      = 0x01
	ROSCTRAck      = 0x02
	ROSCTRAckData  = 0x03
	ROSCTRUserdata = 0x07
)

// Job function codes (first parameter byte).
const (
	FuncSetup         = 0xF0
	FuncReadVar       = 0x04
	FuncWriteVar      = 0x05
	FuncReqDownload   = 0x1A
	FuncDownloadBlock = 0x1B
	FuncDownloadEnded = 0x1C
	FuncStartUpload   = 0x1D
	FuncUpload        = 0x1E
	FuncEndUpload     = 0x1F
	FuncPIService     = 0x28
	FuncPLCStop       = 0x29
)

// ErrS7 reports a malformed S7comm PDU.
var ErrS7 = errors.New("s7comm: malformed PDU")

// Header is the S7comm header: 10 bytes, 12 for Ack and Ack-Data (error class and code).
type Header struct {
	ROSCTR   byte
	RedID    uint16
	PDURef   uint16
	ParamLen uint16
	DataLen  uint16
	ErrClass byte
	ErrCode  byte
}

// Len is the encoded header length.
func (h *Header) Len() int {
	if h.ROSCTR == ROSCTRAck || h.ROSCTR == ROSCTRAckData {
		return 12
	}
	return 10
}

// PDU is one S7comm PDU; Param and Data alias the input when parsed.
type PDU struct {
	Header
	Param []byte
	Data  []byte
}

// ParsePDU decodes an S7comm PDU and checks that the declared lengths match the input.
func ParsePDU(b []byte) (PDU, error) {
	var p PDU
	if len(b) < 10 {
		return p, fmt.Errorf("%w: %d bytes", ErrS7, len(b))
	}
	if b[0] != ProtocolID {
		return p, fmt.Errorf("%w: protocol id 0x%02x", ErrS7, b[0])
	}
	p.ROSCTR = b[1]
	switch p.ROSCTR {
	case ROSCTRJob, ROSCTRAck, ROSCTRAckData, ROSCTRUserdata:
	default:
		return p, fmt.Errorf("%w: ROSCTR 0x%02x", ErrS7, p.ROSCTR)
	}
	p.RedID = binary.BigEndian.Uint16(b[2:])
	p.PDURef = binary.BigEndian.Uint16(b[4:])
	p.ParamLen = binary.BigEndian.Uint16(b[6:])
	p.DataLen = binary.BigEndian.Uint16(b[8:])
	hl := p.Header.Len()
	if len(b) < hl {
		return p, fmt.Errorf("%w: %d bytes for a %d-byte header", ErrS7, len(b), hl)
	}
	if hl == 12 {
		p.ErrClass, p.ErrCode = b[10], b[11]
	}
	if hl+int(p.ParamLen)+int(p.DataLen) != len(b) {
		return p, fmt.Errorf("%w: parameter %d + data %d bytes do not match %d", ErrS7, p.ParamLen, p.DataLen, len(b)-hl)
	}
	p.Param = b[hl : hl+int(p.ParamLen)]
	p.Data = b[hl+int(p.ParamLen):]
	return p, nil
}

// Append encodes p after dst, filling in the parameter and data lengths.
func (p *PDU) Append(dst []byte) []byte {
	dst = append(dst, ProtocolID, p.ROSCTR, byte(p.RedID>>8), byte(p.RedID), byte(p.PDURef>>8), byte(p.PDURef),
		byte(len(p.Param)>>8), byte(len(p.Param)), byte(len(p.Data)>>8), byte(len(p.Data)))
	if p.Header.Len() == 12 {
		dst = append(dst, p.ErrClass, p.ErrCode)
	}
	dst = append(dst, p.Param...)
	return append(dst, p.Data...)
}

// Setup is the Setup Communication parameter block.
type Setup struct {
	AmqCalling, AmqCalled, PDUSize uint16
}

// ParseSetup decodes a Setup Communication parameter block (8 bytes, function 0xF0).
func ParseSetup(param []byte) (Setup, error) {
	if len(param) != 8 || param[0] != FuncSetup {
		return Setup{}, fmt.Errorf("%w: setup parameter of %d bytes", ErrS7, len(param))
	}
	return Setup{
		AmqCalling: binary.BigEndian.Uint16(param[2:]),
		AmqCalled:  binary.BigEndian.Uint16(param[4:]),
		PDUSize:    binary.BigEndian.Uint16(param[6:]),
	}, nil
}

// Append encodes the setup parameter block.
func (s Setup) Append(dst []byte) []byte {
	return append(dst, FuncSetup, 0, byte(s.AmqCalling>>8), byte(s.AmqCalling), byte(s.AmqCalled>>8), byte(s.AmqCalled),
		byte(s.PDUSize>>8), byte(s.PDUSize))
}

// Item transport sizes in a variable specification (S7ANY).
const (
	TSBit     = 0x01
	TSByte    = 0x02
	TSChar    = 0x03
	TSWord    = 0x04
	TSInt     = 0x05
	TSDWord   = 0x06
	TSDInt    = 0x07
	TSReal    = 0x08
	TSCounter = 0x1C
	TSTimer   = 0x1D
)

// Data transport sizes in read answers and write requests.
const (
	DTSNull   = 0x00
	DTSBit    = 0x03
	DTSByte   = 0x04 // length in bits
	DTSInt    = 0x05 // length in bits
	DTSReal   = 0x07 // length in bytes
	DTSOctets = 0x09 // length in bytes
)

// Item return codes.
const (
	RCReserved         = 0x00
	RCHardwareFault    = 0x01
	RCAccessFault      = 0x03
	RCOutOfRange       = 0x05
	RCTypeNotSupported = 0x06
	RCTypeInconsistent = 0x07
	RCObjectNotExist   = 0x0A
	RCSuccess          = 0xFF
)

// Memory areas.
const (
	AreaP        = 0x80
	AreaI        = 0x81
	AreaQ        = 0x82
	AreaM        = 0x83
	AreaDB       = 0x84
	AreaDI       = 0x85
	AreaL        = 0x86
	AreaV        = 0x87
	AreaCounter  = 0x1C
	AreaTimer    = 0x1D
	syntaxS7Any  = 0x10
	varSpecTag   = 0x12
	s7AnyItemLen = 10
)

// MaxItems is the most variables one Read/Write Var job may name (an S7-300/400 limit).
const MaxItems = 20

// VarItem is one S7ANY variable specification.
type VarItem struct {
	Syntax        byte
	TransportSize byte
	Count         uint16 // number of elements of TransportSize
	DB            uint16
	Area          byte
	BitAddr       uint32 // byte offset * 8 + bit
}

// ByteOffset is the item's start byte.
func (v VarItem) ByteOffset() int { return int(v.BitAddr >> 3) }

// ElemSize is the size of one element in bytes (bits count as one byte).
func ElemSize(ts byte) int {
	switch ts {
	case TSBit, TSByte, TSChar:
		return 1
	case TSWord, TSInt, TSCounter, TSTimer:
		return 2
	case TSDWord, TSDInt, TSReal:
		return 4
	}
	return 0
}

// ByteLen is the number of bytes the item covers (0 for unsupported transport sizes).
func (v VarItem) ByteLen() int { return ElemSize(v.TransportSize) * int(v.Count) }

// ParseVarJob decodes the parameter block of a Read Var or Write Var job. Items with a
// syntax other than S7ANY are returned with Syntax set and the other fields zero.
func ParseVarJob(param []byte) (fn byte, items []VarItem, err error) {
	if len(param) >= 2 {
		items = make([]VarItem, 0, min(int(param[1]), MaxItems+1))
	}
	return parseVarJob(items, param)
}

// appendVarJob is ParseVarJob appending the items to items (a scratch slice of the
// connection, so a request allocates nothing); the function code must be Read or Write Var.
func appendVarJob(items []VarItem, param []byte) ([]VarItem, error) {
	_, items, err := parseVarJob(items, param)
	return items, err
}

func parseVarJob(items []VarItem, param []byte) (fn byte, _ []VarItem, err error) {
	if len(param) < 2 {
		return 0, nil, fmt.Errorf("%w: var job parameter of %d bytes", ErrS7, len(param))
	}
	fn, n := param[0], int(param[1])
	if fn != FuncReadVar && fn != FuncWriteVar {
		return fn, nil, fmt.Errorf("%w: function 0x%02x is not a var job", ErrS7, fn)
	}
	if n == 0 {
		return fn, nil, fmt.Errorf("%w: no items", ErrS7)
	}
	b := param[2:]
	for i := 0; i < n; i++ {
		if len(b) < 2 || b[0] != varSpecTag {
			return fn, nil, fmt.Errorf("%w: item %d: bad variable specification", ErrS7, i)
		}
		l := int(b[1])
		if 2+l > len(b) || l < 1 {
			return fn, nil, fmt.Errorf("%w: item %d: length %d overruns", ErrS7, i, l)
		}
		spec := b[2 : 2+l]
		it := VarItem{Syntax: spec[0]}
		if it.Syntax == syntaxS7Any {
			if l != s7AnyItemLen {
				return fn, nil, fmt.Errorf("%w: item %d: S7ANY of %d bytes", ErrS7, i, l)
			}
			it.TransportSize = spec[1]
			it.Count = binary.BigEndian.Uint16(spec[2:])
			it.DB = binary.BigEndian.Uint16(spec[4:])
			it.Area = spec[6]
			it.BitAddr = uint32(spec[7])<<16 | uint32(spec[8])<<8 | uint32(spec[9])
		}
		if len(items) <= MaxItems {
			items = append(items, it)
		}
		b = b[2+l:]
	}
	if len(b) != 0 {
		return fn, nil, fmt.Errorf("%w: %d trailing parameter bytes", ErrS7, len(b))
	}
	if n > MaxItems {
		return fn, items, fmt.Errorf("%w: %d items, at most %d", ErrS7, n, MaxItems)
	}
	return fn, items, nil
}

// AppendVarItem encodes an S7ANY item (used by tests and clients).
func AppendVarItem(dst []byte, v VarItem) []byte {
	return append(dst, varSpecTag, s7AnyItemLen, syntaxS7Any, v.TransportSize, byte(v.Count>>8), byte(v.Count),
		byte(v.DB>>8), byte(v.DB), v.Area, byte(v.BitAddr>>16), byte(v.BitAddr>>8), byte(v.BitAddr))
}

// DataItem is one item of Write Var data or of a Read Var answer.
type DataItem struct {
	RC   byte
	TS   byte // data transport size
	Data []byte
}

// dataLen converts a data item length field to bytes.
func dataLen(ts byte, n int) int {
	switch ts {
	case DTSByte, DTSInt:
		return (n + 7) / 8
	}
	return n
}

// ParseDataItems decodes n data items (Write Var request data or Read Var answer data).
// Items are padded to even length except the last.
func ParseDataItems(b []byte, n int) ([]DataItem, error) {
	out := make([]DataItem, 0, min(n, MaxItems))
	for i := 0; i < n; i++ {
		if len(b) < 4 {
			return nil, fmt.Errorf("%w: data item %d truncated", ErrS7, i)
		}
		it := DataItem{RC: b[0], TS: b[1]}
		l := dataLen(it.TS, int(binary.BigEndian.Uint16(b[2:])))
		if 4+l > len(b) {
			return nil, fmt.Errorf("%w: data item %d: %d bytes overrun", ErrS7, i, l)
		}
		it.Data = b[4 : 4+l]
		b = b[4+l:]
		if l%2 == 1 && i < n-1 && len(b) > 0 {
			b = b[1:]
		}
		out = append(out, it)
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing data bytes", ErrS7, len(b))
	}
	return out, nil
}

// AppendDataItem encodes a data item; the length field counts bits for the byte and
// integer transport sizes and bytes otherwise. pad adds the fill byte after odd-length
// items (every item but the last).
func AppendDataItem(dst []byte, it DataItem, pad bool) []byte {
	n := len(it.Data)
	switch it.TS {
	case DTSByte, DTSInt:
		n *= 8
	}
	dst = append(dst, it.RC, it.TS, byte(n>>8), byte(n))
	dst = append(dst, it.Data...)
	if pad && len(it.Data)%2 == 1 {
		dst = append(dst, 0)
	}
	return dst
}
