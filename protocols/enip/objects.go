package enip

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
)

// device is one host's identity beyond the profile: drawn once from its seed.
type device struct {
	tagMu    sync.Mutex // serialises tag writes
	serial   uint32
	mac      [6]byte
	ip       [4]byte // the host's address; 0.0.0.0 for IPv6 hosts
	mask     [4]byte
	gateway  [4]byte
	hostname string
}

// ouis maps vendor ids to the MAC prefix their devices carry.
var ouis = map[uint16][3]byte{
	1: {0x00, 0x00, 0xBC}, // Rockwell Automation/Allen-Bradley
}

// hostDevice returns the host's device, creating it from the seed on first use.
func (s *service) hostDevice(h *protocols.Host) *device {
	return h.State(Name+".device", func() any { return newDevice(h, &s.cfg.id) }).(*device)
}

func newDevice(h *protocols.Host, id *identity) *device {
	env := h.Databus.Env()
	d := &device{}
	r := env.Rand(Name + ".serial")
	for d.serial == 0 || d.serial == cpppoSerial {
		d.serial = r.Uint32()
	}
	m := env.Rand(Name + ".mac")
	oui, ok := ouis[id.vendor]
	if !ok {
		oui = [3]byte{0x02, byte(m.Uint32()), byte(m.Uint32())} // locally administered
	}
	copy(d.mac[:3], oui[:])
	for i := 3; i < 6; i++ {
		d.mac[i] = byte(m.Uint32())
	}
	if _, macOUIs, ok, err := h.Profile.MACOUIs(); ok && err == nil && len(macOUIs) > 0 {
		// The persona's MAC (icsnare.mac): the one SNMP, the web pages and ARP show.
		copy(d.mac[:], profiles.HostMACIn(h.Seed, macOUIs))
	}
	if a := h.Addr.Unmap(); a.Is4() {
		d.ip = a.As4()
		if mask, err := netip.ParseAddr(profiles.Netmask(env)); err == nil {
			d.mask = mask.As4() // the host rule's subnet
		}
		d.gateway = [4]byte{d.ip[0], d.ip[1], d.ip[2], 1}
		if d.gateway == d.ip {
			d.gateway[3] = 254
		}
	}
	return d
}

// serialOf returns the host's serial: the databus key the profile names, else the seed's.
func (x *exec) serial() uint32 {
	if k := x.svc.cfg.id.serialKey; k != "" && x.db != nil {
		if v, err := x.db.GetInt(k); err == nil {
			return uint32(v)
		}
	}
	return x.dev.serial
}

// revision returns the host's revision: the databus key the profile names (its drawn
// firmware), else the profile's literal.
func (x *exec) revision() (major, minor uint8) {
	id := &x.svc.cfg.id
	if k := id.revisionKey; k != "" && x.db != nil {
		if v, err := x.db.GetString(k); err == nil {
			if a, b, ok := revisionOf(v); ok {
				return a, b
			}
		}
	}
	return id.major, id.minor
}

// appendIdentityItem appends the ListIdentity CPF item (2-4.2.3) for host address addr.
func (x *exec) appendIdentityItem(dst []byte, addr netip.Addr, port uint16) []byte {
	id := &x.svc.cfg.id
	name := id.productName
	start := len(dst)
	dst = appendItemHeader(dst, itemIdentity, 0)
	dst = binary.LittleEndian.AppendUint16(dst, protocolVersion)
	// sockaddr_in, big-endian as the structure is
	dst = binary.BigEndian.AppendUint16(dst, 2) // AF_INET
	dst = binary.BigEndian.AppendUint16(dst, port)
	var ip [4]byte
	if a := addr.Unmap(); a.Is4() {
		ip = a.As4()
	}
	dst = append(dst, ip[:]...)
	dst = append(dst, 0, 0, 0, 0, 0, 0, 0, 0)
	dst = binary.LittleEndian.AppendUint16(dst, id.vendor)
	dst = binary.LittleEndian.AppendUint16(dst, id.deviceType)
	dst = binary.LittleEndian.AppendUint16(dst, id.productCode)
	major, minor := x.revision()
	dst = append(dst, major, minor)
	dst = binary.LittleEndian.AppendUint16(dst, id.status)
	dst = binary.LittleEndian.AppendUint32(dst, x.serial())
	dst = appendShortString(dst, name)
	dst = append(dst, id.state)
	binary.LittleEndian.PutUint16(dst[start+2:], uint16(len(dst)-start-4))
	return dst
}

// classRevision is the revision class attribute 1 reports.
func classRevision(class uint32) uint16 {
	switch class {
	case classTCPIP, classEthernetLink:
		return 4
	}
	return 1
}

// objectList is what the Message Router's attribute 1 lists.
var objectList = []uint16{uint16(classIdentity), uint16(classMessageRouter), uint16(classConnectionManager),
	uint16(classTCPIP), uint16(classEthernetLink)}

// attribute appends attribute attr of instance inst of class to dst, or returns the
// general status that says why not.
func (x *exec) attribute(dst []byte, class, inst, attr uint32) ([]byte, byte) {
	if inst == 0 { // class attributes
		switch attr {
		case 1:
			return binary.LittleEndian.AppendUint16(dst, classRevision(class)), gsSuccess
		case 2, 3: // max instance, number of instances
			return binary.LittleEndian.AppendUint16(dst, 1), gsSuccess
		}
		return dst, gsAttributeUnsupported
	}
	if inst != 1 {
		return dst, gsObjectDoesNotExist
	}
	id := &x.svc.cfg.id
	le16 := binary.LittleEndian.AppendUint16
	le32 := binary.LittleEndian.AppendUint32
	switch class {
	case classIdentity:
		switch attr {
		case 1:
			return le16(dst, id.vendor), gsSuccess
		case 2:
			return le16(dst, id.deviceType), gsSuccess
		case 3:
			return le16(dst, id.productCode), gsSuccess
		case 4:
			major, minor := x.revision()
			return append(dst, major, minor), gsSuccess
		case 5:
			return le16(dst, id.status), gsSuccess
		case 6:
			return le32(dst, x.serial()), gsSuccess
		case 7:
			return appendShortString(dst, id.productName), gsSuccess
		case 8:
			return append(dst, id.state), gsSuccess
		}
	case classMessageRouter:
		switch attr {
		case 1:
			dst = le16(dst, uint16(len(objectList)))
			for _, c := range objectList {
				dst = le16(dst, c)
			}
			return dst, gsSuccess
		case 2:
			return le16(dst, maxConnections), gsSuccess
		}
	case classTCPIP:
		d := x.dev
		switch attr {
		case 1: // status: a valid configuration obtained
			return le32(dst, 1), gsSuccess
		case 2: // capability: BOOTP and DHCP client, settable
			return le32(dst, 0x15), gsSuccess
		case 3: // control: static configuration
			return le32(dst, 0), gsSuccess
		case 4: // physical link object: the Ethernet Link instance
			dst = le16(dst, 2)
			return append(dst, 0x20, byte(classEthernetLink), 0x24, 0x01), gsSuccess
		case 5:
			for _, a := range [][4]byte{d.ip, d.mask, d.gateway, {}, {}} {
				dst = le32(dst, binary.BigEndian.Uint32(a[:]))
			}
			return appendPaddedString(dst, ""), gsSuccess
		case 6:
			return appendPaddedString(dst, d.hostname), gsSuccess
		}
	case classEthernetLink:
		switch attr {
		case 1: // interface speed, Mbit/s
			return le32(dst, 100), gsSuccess
		case 2: // link active, full duplex, speed and duplex negotiated
			return le32(dst, 0x0F), gsSuccess
		case 3:
			return append(dst, x.dev.mac[:]...), gsSuccess
		}
	default:
		return dst, gsPathDestUnknown
	}
	return dst, gsAttributeUnsupported
}

// allAttributes lists what Get Attributes All returns per class.
func allAttributes(class uint32) []uint32 {
	switch class {
	case classIdentity:
		return []uint32{1, 2, 3, 4, 5, 6, 7}
	case classTCPIP:
		return []uint32{1, 2, 3, 4, 5, 6}
	case classEthernetLink:
		return []uint32{1, 2, 3}
	case classMessageRouter:
		return []uint32{1, 2}
	}
	return nil
}

// macString formats a MAC address.
func macString(m [6]byte) string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}
