package kamstrupmeter

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
)

// Frame bytes of the Kamstrup Meter Protocol (KMP) data link layer.
const (
	RequestMagic  = 0x80 // starts a frame to the meter
	ResponseMagic = 0x40 // starts a frame from the meter
	EOT           = 0x0D // ends every frame
	Escape        = 0x1B // the next byte is XORed with 0xFF
	ACK           = 0x06 // the meter's acknowledgement of a write
)

// Command ids (CID).
const (
	CmdGetType     = 0x01
	CmdGetSerialNo = 0x02
	CmdGetRegister = 0x10
	CmdPutRegister = 0x11
	CmdLogin       = 0x92
)

// MaxFrame bounds a frame on the wire (escaped, with start and stop bytes). A GetRegister
// request for 255 registers is 2*(3+510+2)+2 bytes at worst; nothing longer is KMP.
const MaxFrame = 1100

// MaxRegisterLength bounds a register's value length; the 382's longest are 16 bytes.
const MaxRegisterLength = 64

// Errors of the codec.
var (
	ErrShort    = errors.New("kamstrup: frame too short")
	ErrCRC      = errors.New("kamstrup: invalid CRC")
	ErrEscape   = errors.New("kamstrup: escape byte at end of frame")
	ErrTooLong  = errors.New("kamstrup: frame too long")
	ErrNotFrame = errors.New("kamstrup: not a frame")
)

// needsEscape reports whether b is stuffed between the start and stop bytes.
func needsEscape(b byte) bool {
	switch b {
	case ACK, EOT, Escape, ResponseMagic, RequestMagic:
		return true
	}
	return false
}

// CRC16 is CRC-16/XMODEM (polynomial 0x1021, initial value 0, no reflection).
func CRC16(b []byte) uint16 {
	var crc uint16
	for _, c := range b {
		crc ^= uint16(c) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// Stuff appends body to dst with the bytes that need it escaped.
func Stuff(dst, body []byte) []byte {
	for _, b := range body {
		if needsEscape(b) {
			dst = append(dst, Escape, b^0xFF)
		} else {
			dst = append(dst, b)
		}
	}
	return dst
}

// Unstuff appends the unescaped form of stuffed to dst.
func Unstuff(dst, stuffed []byte) ([]byte, error) {
	for i := 0; i < len(stuffed); i++ {
		b := stuffed[i]
		if b == Escape {
			if i+1 >= len(stuffed) {
				return dst, ErrEscape
			}
			i++
			b = stuffed[i] ^ 0xFF
		}
		dst = append(dst, b)
	}
	return dst, nil
}

// Message is one KMP application message: the destination (or, in a response, source)
// communication address, the command id and its data.
type Message struct {
	Addr byte
	Cmd  byte
	Data []byte
}

// AppendFrame appends m as a complete frame starting with magic: address, command, data
// and the CRC, stuffed, then EOT.
func AppendFrame(dst []byte, magic byte, m Message) []byte {
	body := make([]byte, 0, 4+len(m.Data))
	body = append(body, m.Addr, m.Cmd)
	body = append(body, m.Data...)
	body = binary.BigEndian.AppendUint16(body, CRC16(body))
	dst = append(dst, magic)
	dst = Stuff(dst, body)
	return append(dst, EOT)
}

// ParseFrame decodes a complete frame (start byte through EOT, as Scanner returns it).
// With ErrCRC the message is still filled in from the unverified bytes.
func ParseFrame(raw []byte) (Message, error) {
	if len(raw) < 2 || (raw[0] != RequestMagic && raw[0] != ResponseMagic) || raw[len(raw)-1] != EOT {
		return Message{}, ErrNotFrame
	}
	body, err := Unstuff(make([]byte, 0, len(raw)), raw[1:len(raw)-1])
	if err != nil {
		return Message{}, err
	}
	if len(body) < 4 {
		return Message{}, ErrShort
	}
	m := Message{Addr: body[0], Cmd: body[1], Data: body[2 : len(body)-2]}
	if binary.BigEndian.Uint16(body[len(body)-2:]) != CRC16(body[:len(body)-2]) {
		return m, ErrCRC
	}
	return m, nil
}

// Scanner splits a byte stream into frames that begin with one start byte and end with
// EOT; bytes outside frames are skipped (and counted). It holds at most MaxFrame bytes.
type Scanner struct {
	Start byte
	buf   []byte
	in    bool
	// Skipped counts bytes discarded outside frames, and frames dropped for length.
	Skipped int
}

// Frame is one complete frame a Scanner found, or the error that ended a partial one
// (ErrTooLong, with the bytes that were dropped in Raw, clipped).
type Frame struct {
	Raw []byte
	Err error
}

// Feed scans p and returns the frames it completes. The frames' bytes are fresh copies.
func (s *Scanner) Feed(p []byte) []Frame {
	var out []Frame
	for _, b := range p {
		if !s.in {
			if b == s.Start {
				s.in = true
				s.buf = append(s.buf[:0], b)
			} else {
				s.Skipped++
			}
			continue
		}
		if b == s.Start { // an unescaped start byte begins a new frame: resynchronise
			s.Skipped += len(s.buf)
			s.buf = append(s.buf[:0], b)
			continue
		}
		s.buf = append(s.buf, b)
		if b == EOT {
			out = append(out, Frame{Raw: append([]byte(nil), s.buf...)})
			s.in, s.buf = false, s.buf[:0]
			continue
		}
		if len(s.buf) >= MaxFrame {
			s.Skipped += len(s.buf)
			out = append(out, Frame{Raw: append([]byte(nil), s.buf[:64]...), Err: ErrTooLong})
			s.in, s.buf = false, s.buf[:0]
		}
	}
	return out
}

// Pending reports how many bytes of an unfinished frame the scanner holds.
func (s *Scanner) Pending() int { return len(s.buf) }

// ParseGetRegister decodes a GetRegister request's data: a count, then that many 16-bit
// register ids.
func ParseGetRegister(data []byte) ([]uint16, error) {
	if len(data) < 1 {
		return nil, fmt.Errorf("kamstrup: GetRegister without a register count")
	}
	n := int(data[0])
	if len(data) != 1+2*n {
		return nil, fmt.Errorf("kamstrup: GetRegister for %d registers carries %d bytes of ids", n, len(data)-1)
	}
	ids := make([]uint16, n)
	for i := range ids {
		ids[i] = binary.BigEndian.Uint16(data[1+2*i:])
	}
	return ids, nil
}

// AppendGetRegister appends the data of a GetRegister request for ids.
func AppendGetRegister(dst []byte, ids ...uint16) []byte {
	dst = append(dst, byte(len(ids)))
	for _, id := range ids {
		dst = binary.BigEndian.AppendUint16(dst, id)
	}
	return dst
}

// RegisterValue is one register in a GetRegister response.
type RegisterValue struct {
	ID    uint16
	Units byte
	SiEx  byte // sign and exponent of the value (Conpot's "unknown" byte)
	Value []byte
}

// AppendRegister appends one register record of a GetRegister response: id, units,
// length, sign/exponent, value.
func AppendRegister(dst []byte, r RegisterValue) []byte {
	dst = binary.BigEndian.AppendUint16(dst, r.ID)
	dst = append(dst, r.Units, byte(len(r.Value)), r.SiEx)
	return append(dst, r.Value...)
}

// ParseRegisters decodes the data of a GetRegister response. It returns the records it
// could read and an error when bytes were left over or a record was cut short.
func ParseRegisters(data []byte) ([]RegisterValue, error) {
	var out []RegisterValue
	for len(data) > 0 {
		if len(data) < 5 {
			return out, fmt.Errorf("kamstrup: register record header cut short (%d bytes)", len(data))
		}
		n := int(data[3])
		if len(data) < 5+n {
			return out, fmt.Errorf("kamstrup: register %d value cut short", binary.BigEndian.Uint16(data))
		}
		out = append(out, RegisterValue{ID: binary.BigEndian.Uint16(data), Units: data[2], SiEx: data[4], Value: data[5 : 5+n]})
		data = data[5+n:]
	}
	return out, nil
}

// EncodeValue renders a databus value as a big-endian unsigned integer of length bytes, as
// the meter sends register values: numbers (negative ones in two's complement, larger
// ones keep their low bytes), numeric strings, and other text as ASCII, right-aligned.
func EncodeValue(v any, length int) []byte {
	out := make([]byte, length)
	var n *big.Int
	switch x := v.(type) {
	case int64:
		n = big.NewInt(x)
	case int:
		n = big.NewInt(int64(x))
	case float64:
		n, _ = big.NewFloat(x).Int(nil)
	case bool:
		if x {
			n = big.NewInt(1)
		} else {
			n = new(big.Int)
		}
	case *big.Int:
		n = new(big.Int).Set(x)
	case string:
		s := strings.TrimSpace(x)
		if i, err := strconv.ParseInt(s, 0, 64); err == nil {
			n = big.NewInt(i)
		} else if b, ok := new(big.Int).SetString(s, 10); ok {
			n = b
		} else {
			tail := []byte(x)
			if len(tail) > length {
				tail = tail[len(tail)-length:]
			}
			copy(out[length-len(tail):], tail)
			return out
		}
	default:
		return out
	}
	if n.Sign() < 0 { // two's complement in length bytes
		n.Add(n, new(big.Int).Lsh(big.NewInt(1), uint(8*length)))
	}
	b := n.Bytes()
	if len(b) > length {
		b = b[len(b)-length:]
	}
	copy(out[length-len(b):], b)
	return out
}
