package iec104

import (
	"errors"
	"fmt"
)

// APCI framing (IEC 60870-5-104, clause 5).
const (
	startByte = 0x68
	// maxAPDULen is the largest length field: 4 control octets and a 249-octet ASDU.
	maxAPDULen = 253
	minAPDULen = 4
	// seqMod is the sequence number modulus (15 bits).
	seqMod = 1 << 15
)

// U-frame functions (the first control octet).
const (
	uStartDTAct byte = 0x07
	uStartDTCon byte = 0x0B
	uStopDTAct  byte = 0x13
	uStopDTCon  byte = 0x23
	uTestFRAct  byte = 0x43
	uTestFRCon  byte = 0x83
)

// uName names a U-frame function for events.
func uName(f byte) string {
	switch f {
	case uStartDTAct:
		return "startdt_act"
	case uStartDTCon:
		return "startdt_con"
	case uStopDTAct:
		return "stopdt_act"
	case uStopDTCon:
		return "stopdt_con"
	case uTestFRAct:
		return "testfr_act"
	case uTestFRCon:
		return "testfr_con"
	}
	return "invalid"
}

// Frame formats.
const (
	formatI = iota
	formatS
	formatU
)

// apdu is one decoded frame; ASDU aliases the input.
type apdu struct {
	Format int
	NS, NR uint16 // sequence numbers (I: both; S: NR)
	U      byte   // U-frame function
	ASDU   []byte
}

var errFraming = errors.New("not an IEC 104 APDU")

// nextAPDU returns the length of the complete frame at the start of b, 0 when more bytes
// are needed, or an error when the framing is broken.
func nextAPDU(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	if b[0] != startByte {
		return 0, fmt.Errorf("%w: start octet 0x%02x", errFraming, b[0])
	}
	if len(b) < 2 {
		return 0, nil
	}
	l := int(b[1])
	if l < minAPDULen || l > maxAPDULen {
		return 0, fmt.Errorf("%w: length %d", errFraming, l)
	}
	if len(b) < 2+l {
		return 0, nil
	}
	return 2 + l, nil
}

// parseAPDU decodes one complete frame as nextAPDU delimited it.
func parseAPDU(f []byte) (apdu, error) {
	c := f[2:6]
	switch {
	case c[0]&1 == 0:
		a := apdu{Format: formatI, NS: (uint16(c[0]) | uint16(c[1])<<8) >> 1,
			NR: (uint16(c[2]) | uint16(c[3])<<8) >> 1, ASDU: f[6:]}
		if len(a.ASDU) < asduHeaderLen || c[2]&1 != 0 {
			return a, fmt.Errorf("%w: I-format with a %d-octet ASDU", errFraming, len(a.ASDU))
		}
		return a, nil
	case c[0]&3 == 1:
		if len(f) != 6 || c[0] != 1 || c[1] != 0 || c[2]&1 != 0 {
			return apdu{}, fmt.Errorf("%w: S-format % x", errFraming, f)
		}
		return apdu{Format: formatS, NR: (uint16(c[2]) | uint16(c[3])<<8) >> 1}, nil
	default:
		if len(f) != 6 || c[1] != 0 || c[2] != 0 || c[3] != 0 || uName(c[0]) == "invalid" {
			return apdu{}, fmt.Errorf("%w: U-format % x", errFraming, f)
		}
		return apdu{Format: formatU, U: c[0]}, nil
	}
}

// appendU appends a U-frame.
func appendU(dst []byte, f byte) []byte { return append(dst, startByte, 4, f, 0, 0, 0) }

// appendS appends an S-frame acknowledging up to nr.
func appendS(dst []byte, nr uint16) []byte {
	return append(dst, startByte, 4, 1, 0, byte(nr<<1), byte(nr>>7))
}

// appendI appends an I-frame carrying asdu.
func appendI(dst []byte, ns, nr uint16, asdu []byte) []byte {
	dst = append(dst, startByte, byte(4+len(asdu)), byte(ns<<1), byte(ns>>7), byte(nr<<1), byte(nr>>7))
	return append(dst, asdu...)
}

// seqDiff is (a - b) modulo the sequence space.
func seqDiff(a, b uint16) int { return (int(a) - int(b) + seqMod) % seqMod }
