package enip

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Encapsulation commands (CIP Vol. 2, 2-3.2).
const (
	cmdNOP               uint16 = 0x0000
	cmdListServices      uint16 = 0x0004
	cmdListIdentity      uint16 = 0x0063
	cmdListInterfaces    uint16 = 0x0064
	cmdRegisterSession   uint16 = 0x0065
	cmdUnRegisterSession uint16 = 0x0066
	cmdSendRRData        uint16 = 0x006F
	cmdSendUnitData      uint16 = 0x0070
	cmdIndicateStatus    uint16 = 0x0072
	cmdCancel            uint16 = 0x0073
)

// commandName names a command for events and metrics (a fixed set).
func commandName(c uint16) string {
	switch c {
	case cmdNOP:
		return "nop"
	case cmdListServices:
		return "list_services"
	case cmdListIdentity:
		return "list_identity"
	case cmdListInterfaces:
		return "list_interfaces"
	case cmdRegisterSession:
		return "register_session"
	case cmdUnRegisterSession:
		return "unregister_session"
	case cmdSendRRData:
		return "send_rr_data"
	case cmdSendUnitData:
		return "send_unit_data"
	case cmdIndicateStatus:
		return "indicate_status"
	case cmdCancel:
		return "cancel"
	}
	return "unknown"
}

// Encapsulation status codes (2-3.3).
const (
	statusSuccess             uint32 = 0x0000
	statusInvalidCommand      uint32 = 0x0001
	statusIncorrectData       uint32 = 0x0003
	statusInvalidSession      uint32 = 0x0064
	statusInvalidLength       uint32 = 0x0065
	statusUnsupportedProtocol uint32 = 0x0069
)

// headerLen is the size of the encapsulation header.
const headerLen = 24

// maxData bounds the encapsulated data this server accepts: a Large Forward Open allows
// 4002-byte connected messages, and nothing a client sends legitimately is bigger.
const maxData = 8192

// protocolVersion is the only encapsulation protocol version.
const protocolVersion = 1

// header is the encapsulation header; every field is little-endian on the wire.
type header struct {
	Command uint16
	Length  uint16
	Session uint32
	Status  uint32
	Context [8]byte
	Options uint32
}

// parseHeader decodes the first headerLen bytes of b.
func parseHeader(b []byte) (header, bool) {
	if len(b) < headerLen {
		return header{}, false
	}
	var h header
	h.Command = binary.LittleEndian.Uint16(b)
	h.Length = binary.LittleEndian.Uint16(b[2:])
	h.Session = binary.LittleEndian.Uint32(b[4:])
	h.Status = binary.LittleEndian.Uint32(b[8:])
	copy(h.Context[:], b[12:20])
	h.Options = binary.LittleEndian.Uint32(b[20:])
	return h, true
}

// appendHeader appends h with the given length and status.
func appendHeader(dst []byte, h *header, length int, status uint32) []byte {
	dst = binary.LittleEndian.AppendUint16(dst, h.Command)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(length))
	dst = binary.LittleEndian.AppendUint32(dst, h.Session)
	dst = binary.LittleEndian.AppendUint32(dst, status)
	dst = append(dst, h.Context[:]...)
	return binary.LittleEndian.AppendUint32(dst, h.Options)
}

// errFrameTooLong is a header announcing more data than maxData.
var errFrameTooLong = errors.New("encapsulated data longer than the server accepts")

// nextFrame returns the length of the complete frame at the start of b, 0 when more bytes
// are needed, or errFrameTooLong.
func nextFrame(b []byte) (int, error) {
	if len(b) < headerLen {
		return 0, nil
	}
	l := int(binary.LittleEndian.Uint16(b[2:]))
	if l > maxData {
		return 0, errFrameTooLong
	}
	if len(b) < headerLen+l {
		return 0, nil
	}
	return headerLen + l, nil
}

// Common Packet Format item types (2-6.3).
const (
	itemNullAddress      uint16 = 0x0000
	itemIdentity         uint16 = 0x000C
	itemConnectedAddress uint16 = 0x00A1
	itemConnectedData    uint16 = 0x00B1
	itemUnconnectedData  uint16 = 0x00B2
	itemServices         uint16 = 0x0100
	itemSockaddrOT       uint16 = 0x8000
	itemSockaddrTO       uint16 = 0x8001
	itemSequencedAddress uint16 = 0x8002
)

// cpfItem is one Common Packet Format item; Data aliases the parsed buffer.
type cpfItem struct {
	Type uint16
	Data []byte
}

// maxItems bounds the items of one CPF: address, data and two socket address items.
const maxItems = 4

// parseCPF decodes a Common Packet Format into items (which it reuses), rejecting counts
// and lengths the data cannot hold.
func parseCPF(b []byte, items []cpfItem) ([]cpfItem, error) {
	items = items[:0]
	if len(b) < 2 {
		return items, errors.New("CPF: no item count")
	}
	n := int(binary.LittleEndian.Uint16(b))
	if n > maxItems {
		return items, fmt.Errorf("CPF: %d items, at most %d", n, maxItems)
	}
	b = b[2:]
	for i := 0; i < n; i++ {
		if len(b) < 4 {
			return items, fmt.Errorf("CPF: item %d truncated", i)
		}
		t := binary.LittleEndian.Uint16(b)
		l := int(binary.LittleEndian.Uint16(b[2:]))
		if len(b) < 4+l {
			return items, fmt.Errorf("CPF: item %d of type 0x%04x claims %d bytes, %d left", i, t, l, len(b)-4)
		}
		items = append(items, cpfItem{Type: t, Data: b[4 : 4+l]})
		b = b[4+l:]
	}
	if len(b) != 0 {
		return items, fmt.Errorf("CPF: %d bytes after the last item", len(b))
	}
	return items, nil
}

// appendItemHeader appends an item's type and length.
func appendItemHeader(dst []byte, typ uint16, length int) []byte {
	dst = binary.LittleEndian.AppendUint16(dst, typ)
	return binary.LittleEndian.AppendUint16(dst, uint16(length))
}
