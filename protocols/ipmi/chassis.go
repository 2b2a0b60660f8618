package ipmi

import (
	"encoding/binary"

	"github.com/icsnare/icsnare/protocols"
)

// Boot option parameters this BMC keeps (IPMI v2.0 §28.13): their data lengths.
var bootParamLen = map[byte]int{0: 1, 3: 1, 4: 2, 5: 5}

// setBootOptions is Set System Boot Options: what `ipmitool chassis bootdev` sends to boot
// a server from the network, per host.
func (c *cmdCtx) setBootOptions(d []byte) (byte, []byte) {
	c.r.must = true
	p := d[0] & 0x7F
	c.r.add(protocols.F("parameter", p))
	n, ok := bootParamLen[p]
	if !ok {
		return ccParamUnsupported, nil
	}
	if len(d)-1 != n {
		return ccBadLength, nil
	}
	c.hs.mu.Lock()
	defer c.hs.mu.Unlock()
	if p == 5 {
		copy(c.hs.bootFlags[:], d[1:])
		c.hs.saveBoot(c.sess.Host.Databus)
		c.r.add(protocols.F("boot_device", bootDevice(c.hs.bootFlags)))
	}
	return ccOK, nil
}

func (c *cmdCtx) getBootOptions(d []byte) (byte, []byte) {
	p := d[0] & 0x7F
	n, ok := bootParamLen[p]
	if !ok {
		return ccParamUnsupported, nil
	}
	out := []byte{0x01, p} // parameter version 1, valid
	c.hs.mu.Lock()
	defer c.hs.mu.Unlock()
	if p == 5 {
		return ccOK, append(out, c.hs.bootFlags[:]...)
	}
	return ccOK, append(out, make([]byte, n)...)
}

// bootDevice names the device selector of boot flags (for the event).
func bootDevice(f [5]byte) string {
	switch f[1] >> 2 & 0x0F {
	case 0:
		return "none"
	case 1:
		return "pxe"
	case 2:
		return "disk"
	case 3:
		return "safe"
	case 4:
		return "diag"
	case 5:
		return "cdrom"
	case 6:
		return "bios"
	case 0x0F:
		return "floppy"
	}
	return "other"
}

// pohCounter is Get POH Counter: hours powered on since the board was made, most of them.
func (c *cmdCtx) pohCounter([]byte) (byte, []byte) {
	hours := uint32(c.now.Sub(c.hs.made).Hours() * 0.93)
	return ccOK, binary.LittleEndian.AppendUint32([]byte{60}, hours)
}

// getSessionInfo is Get Session Info (IPMI v2.0 §22.20) about the caller's own session;
// a BMC shows no other client's address.
func (c *cmdCtx) getSessionInfo(d []byte) (byte, []byte) {
	switch d[0] {
	case 0x00, 0x01:
	case 0xFE:
		if len(d) < 5 || le32(d[1:]) != c.rs.bmcID {
			return ccInvalidField, nil
		}
	default:
		return ccInvalidField, nil
	}
	c.hs.mu.Lock()
	active := min(c.hs.sessions, 0x3F)
	c.hs.mu.Unlock()
	typ := byte(0x10) // IPMI v2.0/RMCP+
	if c.rs.v15 {
		typ = 0x00
	}
	out := []byte{c.rs.handle, byte(c.s.cfg.maxPerHost) & 0x3F, byte(active), byte(c.rs.user.id), c.rs.priv, typ | lanChannel}
	ip := c.sess.Remote.Addr().Unmap()
	if ip.Is4() {
		a := ip.As4()
		out = append(out, a[:]...)
	} else {
		out = append(out, 0, 0, 0, 0)
	}
	out = append(out, 0, 0, 0, 0, 0, 0) // the console's MAC: not known behind a router
	return ccOK, binary.LittleEndian.AppendUint16(out, c.sess.Remote.Port())
}

// restartCause is Get System Restart Cause: a chassis control command once one was sent,
// else the power-up after AC returned under the "restore previous state" policy.
func (c *cmdCtx) restartCause([]byte) (byte, []byte) {
	c.hs.mu.Lock()
	defer c.hs.mu.Unlock()
	if c.hs.lastEvent&0x10 != 0 {
		return ccOK, []byte{0x01, lanChannel}
	}
	return ccOK, []byte{0x07, 0x00}
}

// solConfig is Get SOL Configuration Parameters (IPMI v2.0 §26.3) of a BMC whose SOL is
// disabled.
func (c *cmdCtx) solConfig(d []byte) (byte, []byte) {
	if _, ok := c.channel(d[0]); !ok {
		return ccInvalidField, nil
	}
	out := []byte{0x01} // parameter revision
	if d[0]&0x80 != 0 {
		return ccOK, out
	}
	switch d[1] {
	case 0: // set in progress
		return ccOK, append(out, 0x00)
	case 1: // SOL enable: disabled
		return ccOK, append(out, 0x00)
	case 2: // authentication: forced encryption and authentication, USER level
		return ccOK, append(out, 0xC2)
	case 3: // character accumulate interval (5 ms units), send threshold
		return ccOK, append(out, 0x0C, 0x60)
	case 4: // retry count, retry interval (10 ms units)
		return ccOK, append(out, 0x07, 0x32)
	case 5, 6: // bit rate: 115.2 kbps
		return ccOK, append(out, 0x0A)
	case 7: // payload channel
		return ccOK, append(out, lanChannel)
	case 8: // payload port
		return ccOK, binary.LittleEndian.AppendUint16(out, Port)
	}
	return ccParamUnsupported, nil
}
