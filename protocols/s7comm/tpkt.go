package s7comm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// TPKT (RFC 1006) frames every COTP TPDU on TCP: version 3, a reserved byte and the
// total frame length including the 4-byte header.
const (
	tpktVersion   = 3
	tpktHeaderLen = 4
	// tpktMinLen is the shortest frame that can carry a COTP TPDU (header + LI + code).
	tpktMinLen = tpktHeaderLen + 2
)

// ErrTPKT reports a malformed TPKT header.
var ErrTPKT = errors.New("tpkt: malformed header")

// ParseTPKTHeader checks a 4-byte TPKT header and returns the total frame length.
func ParseTPKTHeader(h []byte) (int, error) {
	if len(h) < tpktHeaderLen {
		return 0, fmt.Errorf("%w: %d bytes", ErrTPKT, len(h))
	}
	if h[0] != tpktVersion {
		return 0, fmt.Errorf("%w: version %d", ErrTPKT, h[0])
	}
	n := int(binary.BigEndian.Uint16(h[2:]))
	if n < tpktMinLen {
		return 0, fmt.Errorf("%w: length %d", ErrTPKT, n)
	}
	return n, nil
}

// ReadTPKT reads one frame from r into buf (grown as needed, never beyond max bytes) and
// returns the COTP part. The returned slice aliases buf.
func ReadTPKT(r io.Reader, buf []byte, max int) (tpdu, frame []byte, err error) {
	if cap(buf) < tpktHeaderLen {
		buf = make([]byte, 0, 512)
	}
	buf = buf[:tpktHeaderLen]
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, buf[:0], err
	}
	n, err := ParseTPKTHeader(buf)
	if err != nil {
		return nil, buf, err
	}
	if n > max {
		return nil, buf, fmt.Errorf("%w: length %d above %d", ErrTPKT, n, max)
	}
	if cap(buf) < n {
		nb := make([]byte, n)
		copy(nb, buf)
		buf = nb
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf[tpktHeaderLen:]); err != nil {
		return nil, buf, fmt.Errorf("tpkt: short frame: %w", err)
	}
	return buf[tpktHeaderLen:], buf, nil
}

// AppendTPKT appends a TPKT header for a payload of n bytes; the caller appends the
// payload itself.
func AppendTPKT(dst []byte, n int) []byte {
	total := n + tpktHeaderLen
	return append(dst, tpktVersion, 0, byte(total>>8), byte(total))
}
