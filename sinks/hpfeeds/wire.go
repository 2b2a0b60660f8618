package hpfeeds

import (
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Opcodes of the hpfeeds broker protocol.
const (
	OpError       = 0 // broker → client: an error message, text
	OpInfo        = 1 // broker → client: name, nonce
	OpAuth        = 2 // client → broker: ident, SHA-1(nonce || secret)
	OpPublish     = 3 // client ↔ broker: ident, channel, payload
	OpSubscribe   = 4 // client → broker: ident, channel
	OpUnsubscribe = 5 // client → broker: ident, channel
)

// headerLen is a message's header: a 32-bit big-endian length (header included) and the
// opcode.
const headerLen = 5

// MaxMessage is the largest message brokers accept (1 MiB, as hpfeeds brokers bound it).
const MaxMessage = 1 << 20

var (
	// ErrTooLong is returned for a message or a field over its limit.
	ErrTooLong = errors.New("hpfeeds: too long")
	// ErrMalformed is returned for a message that does not parse.
	ErrMalformed = errors.New("hpfeeds: malformed message")
)

// AppendMessage appends one message: header and payload.
func AppendMessage(b []byte, op byte, payload []byte) ([]byte, error) {
	if headerLen+len(payload) > MaxMessage {
		return b, fmt.Errorf("%w: message of %d bytes (at most %d)", ErrTooLong, headerLen+len(payload), MaxMessage)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(headerLen+len(payload)))
	b = append(b, op)
	return append(b, payload...), nil
}

// appendString appends s with its one-byte length.
func appendString(b []byte, s string) ([]byte, error) {
	if len(s) > 255 {
		return b, fmt.Errorf("%w: %q is longer than 255 bytes", ErrTooLong, s[:32]+"…")
	}
	b = append(b, byte(len(s)))
	return append(b, s...), nil
}

// AppendPublish appends an OP_PUBLISH message.
func AppendPublish(b []byte, ident, channel string, payload []byte) ([]byte, error) {
	n := headerLen + 2 + len(ident) + len(channel) + len(payload)
	if n > MaxMessage {
		return b, fmt.Errorf("%w: publish of %d bytes (at most %d)", ErrTooLong, n, MaxMessage)
	}
	start := len(b)
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	b = append(b, OpPublish)
	var err error
	if b, err = appendString(b, ident); err != nil {
		return b[:start], err
	}
	if b, err = appendString(b, channel); err != nil {
		return b[:start], err
	}
	return append(b, payload...), nil
}

// AuthHash is the secret's proof: SHA-1(nonce || secret).
func AuthHash(nonce []byte, secret string) [sha1.Size]byte {
	h := sha1.New()
	h.Write(nonce)
	h.Write([]byte(secret))
	var sum [sha1.Size]byte
	h.Sum(sum[:0])
	return sum
}

// AppendAuth appends an OP_AUTH message answering the nonce of the broker's OP_INFO.
func AppendAuth(b []byte, ident string, nonce []byte, secret string) ([]byte, error) {
	p, err := appendString(nil, ident)
	if err != nil {
		return b, err
	}
	h := AuthHash(nonce, secret)
	return AppendMessage(b, OpAuth, append(p, h[:]...))
}

// AppendInfo appends an OP_INFO message (what a broker sends first).
func AppendInfo(b []byte, name string, nonce []byte) ([]byte, error) {
	p, err := appendString(nil, name)
	if err != nil {
		return b, err
	}
	return AppendMessage(b, OpInfo, append(p, nonce...))
}

// ParseMessage reads one message from the start of b: its opcode, its payload (a slice of
// b) and its length. n is 0 (and err nil) when b holds only part of a message.
func ParseMessage(b []byte, max int) (op byte, payload []byte, n int, err error) {
	if len(b) < headerLen {
		return 0, nil, 0, nil
	}
	l := binary.BigEndian.Uint32(b)
	if l < headerLen {
		return 0, nil, 0, fmt.Errorf("%w: length %d is shorter than the header", ErrMalformed, l)
	}
	if int64(l) > int64(max) {
		return 0, nil, 0, fmt.Errorf("%w: message of %d bytes (at most %d)", ErrTooLong, l, max)
	}
	if len(b) < int(l) {
		return 0, nil, 0, nil
	}
	return b[4], b[headerLen:l], int(l), nil
}

// ReadMessage reads one message from r into buf (grown as needed, at most max bytes).
func ReadMessage(r io.Reader, buf []byte, max int) (op byte, payload, newBuf []byte, err error) {
	if cap(buf) < headerLen {
		buf = make([]byte, 0, 512)
	}
	buf = buf[:headerLen]
	if _, err := io.ReadFull(r, buf); err != nil {
		return 0, nil, buf, err
	}
	l := binary.BigEndian.Uint32(buf)
	if l < headerLen {
		return 0, nil, buf, fmt.Errorf("%w: length %d is shorter than the header", ErrMalformed, l)
	}
	if int64(l) > int64(max) {
		return 0, nil, buf, fmt.Errorf("%w: message of %d bytes (at most %d)", ErrTooLong, l, max)
	}
	if cap(buf) < int(l) {
		nb := make([]byte, l)
		copy(nb, buf)
		buf = nb
	}
	buf = buf[:l]
	if _, err := io.ReadFull(r, buf[headerLen:]); err != nil {
		return 0, nil, buf, fmt.Errorf("hpfeeds: reading a message of %d bytes: %w", l, err)
	}
	return buf[4], buf[headerLen:], buf, nil
}

// readString reads a string with its one-byte length from the start of p.
func readString(p []byte) (string, []byte, error) {
	if len(p) < 1 || len(p) < 1+int(p[0]) {
		return "", nil, fmt.Errorf("%w: string runs past the message", ErrMalformed)
	}
	return string(p[1 : 1+p[0]]), p[1+p[0]:], nil
}

// ParseInfo reads an OP_INFO payload: the broker's name and its nonce.
func ParseInfo(p []byte) (name string, nonce []byte, err error) {
	name, nonce, err = readString(p)
	if err != nil {
		return "", nil, fmt.Errorf("OP_INFO: %w", err)
	}
	return name, nonce, nil
}

// ParseAuth reads an OP_AUTH payload: the ident and the 20-byte hash.
func ParseAuth(p []byte) (ident string, hash []byte, err error) {
	ident, hash, err = readString(p)
	if err != nil {
		return "", nil, fmt.Errorf("OP_AUTH: %w", err)
	}
	if len(hash) != sha1.Size {
		return "", nil, fmt.Errorf("%w: OP_AUTH hash of %d bytes", ErrMalformed, len(hash))
	}
	return ident, hash, nil
}

// ParsePublish reads an OP_PUBLISH payload: ident, channel and the published data.
func ParsePublish(p []byte) (ident, channel string, data []byte, err error) {
	if ident, p, err = readString(p); err != nil {
		return "", "", nil, fmt.Errorf("OP_PUBLISH ident: %w", err)
	}
	if channel, data, err = readString(p); err != nil {
		return "", "", nil, fmt.Errorf("OP_PUBLISH channel: %w", err)
	}
	return ident, channel, data, nil
}

// ParseSubscribe reads an OP_SUBSCRIBE or OP_UNSUBSCRIBE payload: ident, then the channel
// (the rest of the message).
func ParseSubscribe(p []byte) (ident, channel string, err error) {
	ident, rest, err := readString(p)
	if err != nil {
		return "", "", fmt.Errorf("OP_SUBSCRIBE: %w", err)
	}
	return ident, string(rest), nil
}
