package ipmi

import (
	"encoding/binary"
	"net/netip"

	"github.com/icsnare/icsnare/protocols"
)

// lanParamRevision is the parameter revision Get LAN Configuration Parameters reports.
const lanParamRevision = 0x11

// getLANConfig answers Get LAN Configuration Parameters (IPMI v2.0 §23.2) from the host's
// identity: its address in a /24 with the gateway at .1, a MAC of the profile's vendor.
func (c *cmdCtx) getLANConfig(d []byte) (byte, []byte) {
	if _, ok := c.channel(d[0]); !ok {
		return ccInvalidField, nil
	}
	out := []byte{lanParamRevision}
	if d[0]&0x80 != 0 {
		return ccOK, out
	}
	c.r.add(protocols.F("parameter", d[1]))
	addr := c.sess.Host.Addr
	if !addr.Is4() {
		addr = netip.AddrFrom4([4]byte{192, 168, 1, 120})
	}
	ip := addr.As4()
	gw := ip
	gw[3] = 1
	if ip[3] == 1 {
		gw[3] = 254
	}
	switch d[1] {
	case 0: // set in progress
		return ccOK, append(out, 0x00)
	case 1: // IPMI v1.5 authentication type support
		return ccOK, append(out, c.s.cfg.v15AuthBits())
	case 2: // authentication type enables: callback, user, operator, administrator, OEM
		a := c.s.cfg.v15AuthBits()
		return ccOK, append(out, a, a, a, a, 0x00)
	case 3:
		return ccOK, append(out, ip[:]...)
	case 4: // address source: static
		return ccOK, append(out, 0x01)
	case 5:
		return ccOK, append(out, c.hs.mac[:]...)
	case 6:
		return ccOK, append(out, 255, 255, 255, 0)
	case 7: // IPv4 header: TTL, flags (don't fragment), precedence and TOS
		return ccOK, append(out, 0x40, 0x40, 0x10)
	case 10: // BMC-generated ARP: gratuitous ARP off, ARP responses on
		return ccOK, append(out, 0x02)
	case 11: // gratuitous ARP interval, 500 ms units
		return ccOK, append(out, 0x04)
	case 12:
		return ccOK, append(out, gw[:]...)
	case 13:
		return ccOK, append(out, c.hs.gwMAC[:]...)
	case 14:
		return ccOK, append(out, 0, 0, 0, 0)
	case 15:
		return ccOK, append(out, 0, 0, 0, 0, 0, 0)
	case 16: // community string for PET
		return ccOK, append(out, append([]byte("public"), make([]byte, 12)...)...)
	case 20: // 802.1q VLAN: disabled
		return ccOK, binary.LittleEndian.AppendUint16(out, 0)
	case 21:
		return ccOK, append(out, 0x00)
	case 22: // cipher suite entry count
		return ccOK, append(out, byte(len(c.s.cfg.suites)))
	case 23: // cipher suite entries
		out = append(out, 0x00)
		for _, su := range c.s.cfg.suites {
			out = append(out, su.id)
		}
		return ccOK, out
	case 24: // maximum privilege per cipher suite entry: administrator for each
		out = append(out, 0x00)
		var nib [16]byte
		for i := range c.s.cfg.suites {
			if i < 16 {
				nib[i] = privAdmin
			}
		}
		for i := 0; i < 16; i += 2 {
			out = append(out, nib[i]|nib[i+1]<<4)
		}
		return ccOK, out
	}
	return ccParamUnsupported, nil
}
