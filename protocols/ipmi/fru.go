package ipmi

import (
	"encoding/binary"
	"math/rand/v2"
	"time"
)

// maxFRURead bounds one Read FRU Data answer, as BMCs do (ipmitool adapts its reads).
const maxFRURead = 32

// fruEpoch is where FRU manufacturing dates count minutes from.
var fruEpoch = time.Date(1996, 1, 1, 0, 0, 0, 0, time.UTC)

// fruField appends an 8-bit ASCII type/length field.
func fruField(b []byte, s string) []byte {
	if len(s) > 63 {
		s = s[:63]
	}
	return append(append(b, 0xC0|byte(len(s))), s...)
}

// fruArea closes an info area: end marker, padding to 8 bytes, length byte, checksum.
func fruArea(b []byte) []byte {
	b = append(b, 0xC1)
	for (len(b)+1)%8 != 0 {
		b = append(b, 0)
	}
	b[1] = byte((len(b) + 1) / 8)
	return append(b, checksum(b))
}

// The databus keys whose values, when the profile defines them, are the host's FRU serial
// numbers and BMC MAC, so IPMI shows what SNMP and HTTP show for the same host.
const (
	keyChassisSerial = "ChassisSerial"
	keyBoardSerial   = "BoardSerial"
	keySystemSerial  = "SystemSerial"
	keyMAC           = "MacAddress"
)

// newFRU builds FRU device 0 (Platform Management FRU Information Storage Definition 1.0):
// chassis, board and product areas of a 1U server. Serial numbers come from the databus
// keys above when the profile defines them, else from the seed.
func newFRU(r *rand.Rand, made time.Time, fromDatabus func(key string) (string, bool)) []byte {
	serial := func(key, prefix string, n int) string {
		const digits = "0123456789ABCDEFGHJKLMNPRSTUVWXYZ"
		b := []byte(prefix)
		for range n {
			b = append(b, digits[r.IntN(len(digits))])
		}
		if v, ok := fromDatabus(key); ok && v != "" && len(v) <= 63 { // one FRU type/length byte
			return v
		}
		return string(b)
	}
	chassis := fruField([]byte{0x01, 0, 0x17}, "CSE-813MFTQC-505CB") // rack mount chassis
	chassis = fruField(chassis, serial(keyChassisSerial, "C8130", 8))
	chassis = fruArea(chassis)

	mins := uint32(made.Sub(fruEpoch) / time.Minute)
	board := []byte{0x01, 0, 0x00, byte(mins), byte(mins >> 8), byte(mins >> 16)}
	board = fruField(board, "Supermicro")
	board = fruField(board, "X11DPi-N")
	board = fruField(board, serial(keyBoardSerial, "ZM", 8))
	board = fruField(board, "X11DPi-N")
	board = fruField(board, "")
	board = fruArea(board)

	product := []byte{0x01, 0, 0x00}
	product = fruField(product, "Supermicro")
	product = fruField(product, "SYS-6019P-MT")
	product = fruField(product, "SYS-6019P-MT")
	product = fruField(product, "0123456789")
	product = fruField(product, serial(keySystemSerial, "S", 9))
	product = fruField(product, "To be filled by O.E.M.")
	product = fruField(product, "")
	product = fruArea(product)

	hdr := []byte{0x01, 0x00, 1, byte(1 + len(chassis)/8), byte(1 + (len(chassis)+len(board))/8), 0x00, 0x00}
	hdr = append(hdr, checksum(hdr))
	out := append(hdr, chassis...)
	out = append(out, board...)
	return append(out, product...)
}

func (c *cmdCtx) fruInfo(d []byte) (byte, []byte) {
	if d[0] != 0 {
		return ccNotPresent, nil
	}
	return ccOK, []byte{byte(len(c.hs.fru)), byte(len(c.hs.fru) >> 8), 0x00}
}

func (c *cmdCtx) readFRU(d []byte) (byte, []byte) {
	if d[0] != 0 {
		return ccNotPresent, nil
	}
	off, n := int(binary.LittleEndian.Uint16(d[1:])), int(d[3])
	if off >= len(c.hs.fru) {
		return ccOutOfRange, nil
	}
	if n > maxFRURead {
		return ccCannotReturn, nil
	}
	end := min(off+n, len(c.hs.fru))
	return ccOK, append([]byte{byte(end - off)}, c.hs.fru[off:end]...)
}
