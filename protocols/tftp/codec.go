package tftp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strconv"
)

// Opcodes (RFC 1350, RFC 2347).
const (
	opRRQ   = 1
	opWRQ   = 2
	opDATA  = 3
	opACK   = 4
	opERROR = 5
	opOACK  = 6
)

// Error codes (RFC 1350, RFC 2347).
const (
	errUndefined   = 0
	errNotFound    = 1
	errAccess      = 2
	errDiskFull    = 3
	errIllegal     = 4
	errUnknownTID  = 5
	errExists      = 6
	errNoUser      = 7
	errOptionsDeny = 8
)

// Codec bounds.
const (
	maxRequest  = 1024 // bytes of an RRQ/WRQ
	maxOptions  = 16
	maxFilename = 512
	defBlksize  = 512
	minBlksize  = 8
	maxBlksize  = 8192 // RFC 2348 allows 65464; a server may offer less (memory per transfer)
	minTimeout  = 1
	maxTimeout  = 255
)

var errMalformed = errors.New("malformed TFTP packet")

// request is a parsed RRQ or WRQ.
type request struct {
	op       uint16
	filename string
	mode     string // lower-cased: "octet", "netascii", "mail"
	options  []option
}

type option struct{ name, value string } // name lower-cased

// parseRequest decodes an RRQ or WRQ: opcode, filename NUL, mode NUL, then option/value
// pairs each NUL-terminated.
func parseRequest(b []byte) (*request, error) {
	if len(b) < 4 || len(b) > maxRequest {
		return nil, errMalformed
	}
	op := binary.BigEndian.Uint16(b)
	if op != opRRQ && op != opWRQ {
		return nil, errMalformed
	}
	fields := bytes.Split(b[2:], []byte{0})
	// A well-formed request ends with NUL, so the last field is empty.
	if len(fields) < 3 || len(fields[len(fields)-1]) != 0 {
		return nil, errMalformed
	}
	fields = fields[:len(fields)-1]
	r := &request{op: op, filename: string(fields[0]), mode: asciiLower(fields[1])}
	if r.filename == "" || len(r.filename) > maxFilename || r.mode == "" {
		return nil, errMalformed
	}
	rest := fields[2:]
	if len(rest)%2 != 0 || len(rest)/2 > maxOptions {
		return nil, errMalformed
	}
	for i := 0; i < len(rest); i += 2 {
		r.options = append(r.options, option{name: asciiLower(rest[i]), value: string(rest[i+1])})
	}
	return r, nil
}

// asciiLower lower-cases ASCII letters only, so a name never changes length.
func asciiLower(b []byte) string {
	out := []byte(string(b))
	for i, c := range out {
		if 'A' <= c && c <= 'Z' {
			out[i] = c + 32
		}
	}
	return string(out)
}

func encodeRequest(op uint16, filename, mode string, opts ...option) []byte {
	b := binary.BigEndian.AppendUint16(nil, op)
	b = append(append(b, filename...), 0)
	b = append(append(b, mode...), 0)
	for _, o := range opts {
		b = append(append(b, o.name...), 0)
		b = append(append(b, o.value...), 0)
	}
	return b
}

func encodeData(block uint16, data []byte) []byte {
	b := make([]byte, 4, 4+len(data))
	binary.BigEndian.PutUint16(b, opDATA)
	binary.BigEndian.PutUint16(b[2:], block)
	return append(b, data...)
}

func encodeACK(block uint16) []byte {
	return []byte{0, opACK, byte(block >> 8), byte(block)}
}

func encodeError(code uint16, msg string) []byte {
	b := []byte{0, opERROR, byte(code >> 8), byte(code)}
	return append(append(b, msg...), 0)
}

func encodeOACK(opts []option) []byte {
	b := []byte{0, opOACK}
	for _, o := range opts {
		b = append(append(b, o.name...), 0)
		b = append(append(b, o.value...), 0)
	}
	return b
}

// packet is a decoded DATA, ACK, ERROR or OACK.
type packet struct {
	op    uint16
	block uint16 // DATA, ACK; the error code for ERROR
	data  []byte // DATA payload; the message for ERROR
}

// parsePacket decodes the packets of a transfer.
func parsePacket(b []byte) (packet, error) {
	if len(b) < 4 {
		return packet{}, errMalformed
	}
	p := packet{op: binary.BigEndian.Uint16(b), block: binary.BigEndian.Uint16(b[2:])}
	switch p.op {
	case opDATA:
		p.data = b[4:]
	case opACK:
		if len(b) != 4 {
			// Some clients pad; accept trailing bytes but ignore them.
			p.data = nil
		}
	case opERROR:
		p.data = bytes.TrimRight(b[4:], "\x00")
	default:
		return packet{}, errMalformed
	}
	return p, nil
}

// blksizeOption parses a blksize value and clamps it to what this server offers.
func blksizeOption(v string) (int, bool) {
	n, err := strconv.Atoi(v)
	if err != nil || n < minBlksize || n > 65464 {
		return 0, false
	}
	return min(n, maxBlksize), true
}

// toNetascii converts Unix text to netascii: LF → CR LF, CR → CR NUL.
func toNetascii(b []byte) []byte {
	out := make([]byte, 0, len(b)+len(b)/16)
	for _, x := range b {
		switch x {
		case '\n':
			out = append(out, '\r', '\n')
		case '\r':
			out = append(out, '\r', 0)
		default:
			out = append(out, x)
		}
	}
	return out
}

// netasciiLen is len(toNetascii(b)) without converting.
func netasciiLen(b []byte) int {
	return len(b) + bytes.Count(b, []byte{'\n'}) + bytes.Count(b, []byte{'\r'})
}

// fromNetascii reverses toNetascii: CR LF → LF, CR NUL → CR.
func fromNetascii(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] == '\r' && i+1 < len(b) {
			switch b[i+1] {
			case '\n':
				out = append(out, '\n')
				i++
				continue
			case 0:
				out = append(out, '\r')
				i++
				continue
			}
		}
		out = append(out, b[i])
	}
	return out
}
