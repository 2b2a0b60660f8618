package modbus

import (
	"encoding/binary"
	"errors"
)

// MBAP framing limits (Modbus Messaging on TCP/IP Implementation Guide V1.0b §3.1).
const (
	HeaderLen = 7   // transaction id, protocol id, length, unit id
	MaxPDU    = 253 // function code plus data
	MaxADU    = HeaderLen + MaxPDU
	// MaxLength is the largest MBAP length field: the unit id plus a full PDU.
	MaxLength = 1 + MaxPDU
	// MinLength is the smallest useful MBAP length field: the unit id and a function code.
	MinLength = 2
)

// Function codes this server implements.
const (
	FuncReadCoils              = 0x01
	FuncReadDiscreteInputs     = 0x02
	FuncReadHoldingRegisters   = 0x03
	FuncReadInputRegisters     = 0x04
	FuncWriteSingleCoil        = 0x05
	FuncWriteSingleRegister    = 0x06
	FuncDiagnostics            = 0x08
	FuncWriteMultipleCoils     = 0x0F
	FuncWriteMultipleRegisters = 0x10
	FuncReportServerID         = 0x11
	FuncMaskWriteRegister      = 0x16
	FuncReadWriteRegisters     = 0x17
	FuncEncapsulatedInterface  = 0x2B

	// MEIReadDeviceID is the MEI type of Read Device Identification (FC 43/14).
	MEIReadDeviceID = 0x0E
)

// Exception codes (Modbus Application Protocol V1.1b3 §7).
const (
	ExIllegalFunction    = 0x01
	ExIllegalAddress     = 0x02
	ExIllegalValue       = 0x03
	ExServerFailure      = 0x04
	ExGatewayPath        = 0x0A
	ExGatewayNoResponse  = 0x0B
	exceptionFlag        = 0x80
	maxReadBits          = 2000 // 0x07D0
	maxReadRegisters     = 125  // 0x007D
	maxWriteBits         = 1968 // 0x07B0
	maxWriteRegisters    = 123  // 0x007B
	maxRWWriteRegisters  = 121  // 0x0079, FC 23
	coilOn, coilOff      = 0xFF00, 0x0000
	diagReturnQueryData  = 0x0000
	maxDeviceObjectValue = MaxPDU - 9 // one object alone in a 43/14 reply
)

// ErrFrameLength reports an MBAP length field outside MinLength..MaxLength: the stream has
// lost its framing and the connection should be closed.
var ErrFrameLength = errors.New("modbus: MBAP length field out of range")

// Header is the MBAP header.
type Header struct {
	Transaction uint16
	Protocol    uint16 // 0 for Modbus
	Length      uint16 // bytes that follow the length field: unit id plus PDU
	Unit        uint8
}

// ParseHeader decodes the MBAP header at the start of b (at least HeaderLen bytes).
func ParseHeader(b []byte) Header {
	_ = b[HeaderLen-1]
	return Header{
		Transaction: binary.BigEndian.Uint16(b[0:]),
		Protocol:    binary.BigEndian.Uint16(b[2:]),
		Length:      binary.BigEndian.Uint16(b[4:]),
		Unit:        b[6],
	}
}

// AppendHeader appends an MBAP header for a PDU of pduLen bytes.
func AppendHeader(dst []byte, transaction, protocol uint16, unit uint8, pduLen int) []byte {
	n := pduLen + 1
	return append(dst, byte(transaction>>8), byte(transaction), byte(protocol>>8), byte(protocol),
		byte(n>>8), byte(n), unit)
}

// NextFrame returns the length of the first complete ADU in b: 0 when more bytes are needed,
// or ErrFrameLength when the header's length field is impossible. Several ADUs may follow
// each other in b (pipelined requests); call NextFrame again on the rest.
func NextFrame(b []byte) (int, error) {
	if len(b) < 6 {
		return 0, nil
	}
	l := int(binary.BigEndian.Uint16(b[4:]))
	if l < MinLength || l > MaxLength {
		return 0, ErrFrameLength
	}
	if len(b) < 6+l {
		return 0, nil
	}
	return 6 + l, nil
}

// AppendException appends an exception PDU for function fc.
func AppendException(dst []byte, fc, code uint8) []byte {
	return append(dst, fc|exceptionFlag, code)
}

// FuncName returns the metrics kind of a function code: "fcN" for implemented codes and
// "other" for everything else, so metric labels stay a small fixed set.
func FuncName(fc uint8) string { return kinds[fc] }

var kinds = func() (k [256]string) {
	for i := range k {
		k[i] = "other"
	}
	for _, fc := range []struct {
		c uint8
		n string
	}{{1, "fc1"}, {2, "fc2"}, {3, "fc3"}, {4, "fc4"}, {5, "fc5"}, {6, "fc6"}, {8, "fc8"}, {15, "fc15"},
		{16, "fc16"}, {17, "fc17"}, {22, "fc22"}, {23, "fc23"}, {43, "fc43"}} {
		k[fc.c] = fc.n
	}
	return k
}()
