package s7comm

import "strconv"

// itemField is one Read Var or Write Var item as the request's event shows it.
type itemField struct {
	it    VarItem
	rc    byte
	value string // Write Var: the value written, in hex (the request buffer is reused)
	write bool
}

// itemFields is the "items" list of a Read Var or Write Var event: per item its area,
// offset, length, transport size and return code, the DB number, bit and syntax id where
// they apply and, written, the value in hex. It encodes itself without maps or reflection,
// with the keys in the order encoding/json gives a map's.
type itemFields []itemField

// AppendJSON implements protocols.JSONAppender.
func (l itemFields) AppendJSON(b []byte) []byte {
	b = append(b, '[')
	for i, f := range l {
		if i > 0 {
			b = append(b, ',')
		}
		it := f.it
		b = append(b, `{"area":"`...)
		b = append(b, areaName(it.Area)...) // letters and hex digits only
		b = append(b, '"')
		if it.TransportSize == TSBit {
			b = strconv.AppendInt(append(b, `,"bit":`...), int64(it.BitAddr&7), 10)
		}
		if it.Area == AreaDB || it.Area == AreaDI {
			b = strconv.AppendInt(append(b, `,"db":`...), int64(it.DB), 10)
		}
		b = strconv.AppendInt(append(b, `,"length":`...), int64(it.ByteLen()), 10)
		b = strconv.AppendInt(append(b, `,"offset":`...), int64(it.ByteOffset()), 10)
		b = append(b, `,"return_code":"0x`...)
		b = append(b, hexUpper[f.rc>>4], hexUpper[f.rc&15], '"')
		if it.Syntax != syntaxS7Any {
			b = strconv.AppendInt(append(b, `,"syntax":`...), int64(it.Syntax), 10)
		}
		b = strconv.AppendInt(append(b, `,"transport_size":`...), int64(it.TransportSize), 10)
		if f.write {
			b = append(b, `,"value":"`...)
			b = append(append(b, f.value...), '"')
		}
		b = append(b, '}')
	}
	return append(b, ']')
}

// MarshalJSON implements json.Marshaler.
func (l itemFields) MarshalJSON() ([]byte, error) { return l.AppendJSON(nil), nil }

const hexUpper = "0123456789ABCDEF"
