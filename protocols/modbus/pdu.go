package modbus

import "encoding/binary"

// Request is a decoded, validated request PDU.
type Request struct {
	Function uint8
	// Address is the first address (FC 23: the read address; FC 8: the sub-function).
	Address uint16
	// Quantity is the number of items (FC 23: the number to read).
	Quantity uint16
	// Value is the FC 5/6 value and the FC 22 AND mask.
	Value uint16
	// OrMask is the FC 22 OR mask.
	OrMask uint16
	// WriteAddress and WriteQuantity are FC 23's write part.
	WriteAddress, WriteQuantity uint16
	// Data holds the values to write (FC 15, 16, 23) or the FC 8 data; it aliases the PDU.
	Data []byte
	// DevIDCode and ObjectID are FC 43/14's Read Device ID code and object id.
	DevIDCode, ObjectID uint8
}

// HasRange reports whether Address and Quantity describe a data range (for events).
func (r *Request) HasRange() bool {
	switch r.Function {
	case FuncReadCoils, FuncReadDiscreteInputs, FuncReadHoldingRegisters, FuncReadInputRegisters,
		FuncWriteMultipleCoils, FuncWriteMultipleRegisters, FuncReadWriteRegisters:
		return true
	case FuncWriteSingleCoil, FuncWriteSingleRegister, FuncMaskWriteRegister:
		return true // Quantity is 1
	}
	return false
}

// IsWrite reports whether the function only writes, so a serial broadcast (unit 0) may carry it.
func IsWrite(fc uint8) bool {
	switch fc {
	case FuncWriteSingleCoil, FuncWriteSingleRegister, FuncWriteMultipleCoils,
		FuncWriteMultipleRegisters, FuncMaskWriteRegister:
		return true
	}
	return false
}

// ParseRequest decodes and validates a request PDU (function code and data). A non-zero
// exception code means the request must be refused with it: 01 for a function this server
// does not implement, 03 for a malformed PDU or a quantity outside the specification's
// limits, 02 for a range that runs past address 0xFFFF. Checks follow the order of the
// specification's state diagrams (function, then quantity, then address).
func ParseRequest(pdu []byte) (Request, uint8) {
	var r Request
	if len(pdu) == 0 {
		return r, ExIllegalValue
	}
	r.Function = pdu[0]
	d := pdu[1:]
	u16 := func(i int) uint16 { return binary.BigEndian.Uint16(d[i:]) }
	switch r.Function {
	case FuncReadCoils, FuncReadDiscreteInputs, FuncReadHoldingRegisters, FuncReadInputRegisters:
		if len(d) != 4 {
			return r, ExIllegalValue
		}
		r.Address, r.Quantity = u16(0), u16(2)
		limit := uint16(maxReadBits)
		if r.Function >= FuncReadHoldingRegisters {
			limit = maxReadRegisters
		}
		if r.Quantity < 1 || r.Quantity > limit {
			return r, ExIllegalValue
		}
		return r, rangeCheck(r.Address, r.Quantity)
	case FuncWriteSingleCoil:
		if len(d) != 4 {
			return r, ExIllegalValue
		}
		r.Address, r.Value, r.Quantity = u16(0), u16(2), 1
		if r.Value != coilOn && r.Value != coilOff {
			return r, ExIllegalValue
		}
		return r, 0
	case FuncWriteSingleRegister:
		if len(d) != 4 {
			return r, ExIllegalValue
		}
		r.Address, r.Value, r.Quantity = u16(0), u16(2), 1
		return r, 0
	case FuncWriteMultipleCoils, FuncWriteMultipleRegisters:
		if len(d) < 5 {
			return r, ExIllegalValue
		}
		r.Address, r.Quantity = u16(0), u16(2)
		n := int(d[4])
		r.Data = d[5:]
		var want int
		if r.Function == FuncWriteMultipleCoils {
			if r.Quantity < 1 || r.Quantity > maxWriteBits {
				return r, ExIllegalValue
			}
			want = (int(r.Quantity) + 7) / 8
		} else {
			if r.Quantity < 1 || r.Quantity > maxWriteRegisters {
				return r, ExIllegalValue
			}
			want = 2 * int(r.Quantity)
		}
		if n != want || len(r.Data) != n {
			return r, ExIllegalValue
		}
		return r, rangeCheck(r.Address, r.Quantity)
	case FuncMaskWriteRegister:
		if len(d) != 6 {
			return r, ExIllegalValue
		}
		r.Address, r.Value, r.OrMask, r.Quantity = u16(0), u16(2), u16(4), 1
		return r, 0
	case FuncReadWriteRegisters:
		if len(d) < 9 {
			return r, ExIllegalValue
		}
		r.Address, r.Quantity = u16(0), u16(2)
		r.WriteAddress, r.WriteQuantity = u16(4), u16(6)
		n := int(d[8])
		r.Data = d[9:]
		if r.Quantity < 1 || r.Quantity > maxReadRegisters ||
			r.WriteQuantity < 1 || r.WriteQuantity > maxRWWriteRegisters ||
			n != 2*int(r.WriteQuantity) || len(r.Data) != n {
			return r, ExIllegalValue
		}
		if ex := rangeCheck(r.WriteAddress, r.WriteQuantity); ex != 0 {
			return r, ex
		}
		return r, rangeCheck(r.Address, r.Quantity)
	case FuncDiagnostics:
		if len(d) < 2 {
			return r, ExIllegalValue
		}
		r.Address = u16(0)
		r.Data = d[2:]
		if r.Address != diagReturnQueryData {
			return r, ExIllegalFunction // only sub-function 0 (Return Query Data) is served
		}
		return r, 0
	case FuncReportServerID:
		if len(d) != 0 {
			return r, ExIllegalValue
		}
		return r, 0
	case FuncEncapsulatedInterface:
		if len(d) < 1 {
			return r, ExIllegalValue
		}
		if d[0] != MEIReadDeviceID {
			return r, ExIllegalFunction
		}
		if len(d) != 3 {
			return r, ExIllegalValue
		}
		r.DevIDCode, r.ObjectID = d[1], d[2]
		if r.DevIDCode < DevIDBasic || r.DevIDCode > DevIDIndividual {
			return r, ExIllegalValue
		}
		return r, 0
	}
	return r, ExIllegalFunction
}

func rangeCheck(addr, qty uint16) uint8 {
	if int(addr)+int(qty) > 0x10000 {
		return ExIllegalAddress
	}
	return 0
}

// AppendPackedBits appends the byte count and bits get(0..n-1) packed LSB first, as FC 1
// and FC 2 replies carry them.
func AppendPackedBits(dst []byte, n int, get func(i int) bool) []byte {
	nb := (n + 7) / 8
	dst = append(dst, byte(nb))
	for b := 0; b < nb; b++ {
		var v byte
		for i := 0; i < 8; i++ {
			if j := b*8 + i; j < n && get(j) {
				v |= 1 << i
			}
		}
		dst = append(dst, v)
	}
	return dst
}

// BitAt returns bit i of LSB-first packed data (FC 15 values).
func BitAt(data []byte, i int) bool { return data[i/8]&(1<<(i%8)) != 0 }
