package ipmi

import (
	"encoding/binary"
	"time"

	"github.com/icsnare/icsnare/protocols"
)

// Network functions.
const (
	netFnChassis   = 0x00
	netFnSensor    = 0x04
	netFnApp       = 0x06
	netFnStorage   = 0x0A
	netFnTransport = 0x0C
	netFnGroup     = 0x2C
	netFnOEMGroup  = 0x2E
)

// Completion codes (IPMI v2.0 table 5-2).
const (
	ccOK               = 0x00
	ccParamUnsupported = 0x80 // command-specific: parameter not supported
	ccPrivExceeded     = 0x81 // Set Session Privilege: above the limit
	ccInvalidSessionID = 0x87 // Close Session
	ccInvalidCommand   = 0xC1
	ccReservation      = 0xC5
	ccBadLength        = 0xC7
	ccOutOfRange       = 0xC9
	ccCannotReturn     = 0xCA
	ccNotPresent       = 0xCB
	ccInvalidField     = 0xCC
	ccInsufficientPriv = 0xD4
	ccNotInState       = 0xD5
)

// The LAN channel this BMC answers on, and the "this channel" alias.
const (
	lanChannel     = 0x01
	currentChannel = 0x0E
)

// cmdCtx is one command being answered.
type cmdCtx struct {
	s          *service
	sess       *protocols.Session
	hs         *hostState
	f          *flow
	rs         *rsession // nil outside a session
	now        time.Time
	r          *request
	closeAfter bool
}

// command is one IPMI command this BMC implements.
type command struct {
	name     string
	priv     byte // 0: also answered outside a session
	min, max int  // request data length bounds
	fn       func(c *cmdCtx, d []byte) (byte, []byte)
}

var commands map[uint16]*command

func init() {
	commands = map[uint16]*command{}
	add := func(netFn, cmd byte, name string, priv byte, min, max int, fn func(*cmdCtx, []byte) (byte, []byte)) {
		commands[uint16(netFn)<<8|uint16(cmd)] = &command{name: name, priv: priv, min: min, max: max, fn: fn}
	}
	add(netFnApp, 0x01, "get_device_id", privUser, 0, 0, (*cmdCtx).getDeviceID)
	add(netFnApp, 0x02, "cold_reset", privAdmin, 0, 0, (*cmdCtx).reset)
	add(netFnApp, 0x03, "warm_reset", privAdmin, 0, 0, (*cmdCtx).reset)
	add(netFnApp, 0x04, "get_self_test", privUser, 0, 0, func(*cmdCtx, []byte) (byte, []byte) { return ccOK, []byte{0x55, 0x00} })
	add(netFnApp, 0x07, "get_acpi_power_state", privUser, 0, 0, (*cmdCtx).getACPI)
	add(netFnApp, 0x08, "get_device_guid", privUser, 0, 0, func(c *cmdCtx, _ []byte) (byte, []byte) { return ccOK, c.hs.deviceGUID() })
	add(netFnApp, 0x37, "get_system_guid", 0, 0, 0, func(c *cmdCtx, _ []byte) (byte, []byte) { return ccOK, c.hs.guid[:] })
	add(netFnApp, 0x38, "get_channel_auth_caps", 0, 2, 2, (*cmdCtx).getAuthCaps)
	add(netFnApp, 0x39, "get_session_challenge", 0, 17, 17, (*cmdCtx).getSessionChallenge)
	add(netFnApp, 0x3B, "set_session_privilege", privCallback, 1, 1, (*cmdCtx).setPrivilege)
	add(netFnApp, 0x3C, "close_session", privCallback, 4, 5, (*cmdCtx).closeSession)
	add(netFnApp, 0x41, "get_channel_access", privUser, 2, 2, (*cmdCtx).getChannelAccess)
	add(netFnApp, 0x42, "get_channel_info", privUser, 1, 1, (*cmdCtx).getChannelInfo)
	add(netFnApp, 0x44, "get_user_access", privOperator, 2, 2, (*cmdCtx).getUserAccess)
	add(netFnApp, 0x46, "get_user_name", privOperator, 1, 1, (*cmdCtx).getUserName)
	add(netFnApp, 0x43, "set_user_access", privAdmin, 3, 4, (*cmdCtx).setUserAccess)
	add(netFnApp, 0x45, "set_user_name", privAdmin, 17, 17, (*cmdCtx).setUserName)
	add(netFnApp, 0x47, "set_user_password", privAdmin, 2, 22, (*cmdCtx).setUserPassword)
	add(netFnApp, 0x48, "activate_payload", privUser, 6, 6, (*cmdCtx).activatePayload)
	add(netFnApp, 0x54, "get_channel_cipher_suites", 0, 3, 3, (*cmdCtx).getCipherSuites)
	add(netFnChassis, 0x01, "get_chassis_status", privUser, 0, 0, (*cmdCtx).chassisStatus)
	add(netFnChassis, 0x02, "chassis_control", privOperator, 1, 1, (*cmdCtx).chassisControl)
	add(netFnChassis, 0x08, "set_boot_options", privOperator, 1, 6, (*cmdCtx).setBootOptions)
	add(netFnChassis, 0x09, "get_boot_options", privOperator, 3, 3, (*cmdCtx).getBootOptions)
	add(netFnApp, 0x3D, "get_session_info", privUser, 1, 5, (*cmdCtx).getSessionInfo)
	add(netFnChassis, 0x04, "chassis_identify", privOperator, 0, 2, func(*cmdCtx, []byte) (byte, []byte) { return ccOK, nil })
	add(netFnSensor, 0x27, "get_sensor_thresholds", privUser, 1, 1, (*cmdCtx).getThresholds)
	add(netFnSensor, 0x2D, "get_sensor_reading", privUser, 1, 1, (*cmdCtx).getSensorReading)
	add(netFnStorage, 0x10, "get_fru_inventory_area_info", privUser, 1, 1, (*cmdCtx).fruInfo)
	add(netFnStorage, 0x11, "read_fru_data", privUser, 4, 4, (*cmdCtx).readFRU)
	add(netFnChassis, 0x07, "get_restart_cause", privUser, 0, 0, (*cmdCtx).restartCause)
	add(netFnApp, 0x2F, "get_bmc_global_enables", privUser, 0, 0, func(*cmdCtx, []byte) (byte, []byte) {
		return ccOK, []byte{0x0D} // SEL logging, event message buffer, receive queue interrupt
	})
	add(netFnTransport, 0x22, "get_sol_config", privUser, 4, 4, (*cmdCtx).solConfig)
	add(netFnChassis, 0x0F, "get_poh_counter", privUser, 0, 0, (*cmdCtx).pohCounter)
	add(netFnStorage, 0x20, "get_sdr_repository_info", privUser, 0, 0, (*cmdCtx).sdrInfo)
	add(netFnStorage, 0x22, "reserve_sdr_repository", privUser, 0, 0, (*cmdCtx).reserve)
	add(netFnStorage, 0x23, "get_sdr", privUser, 6, 6, (*cmdCtx).getSDR)
	add(netFnStorage, 0x40, "get_sel_info", privUser, 0, 0, (*cmdCtx).selInfo)
	add(netFnStorage, 0x42, "reserve_sel", privUser, 0, 0, (*cmdCtx).reserve)
	add(netFnStorage, 0x43, "get_sel_entry", privUser, 6, 6, (*cmdCtx).getSELEntry)
	add(netFnStorage, 0x47, "clear_sel", privOperator, 6, 6, (*cmdCtx).clearSEL)
	add(netFnStorage, 0x48, "get_sel_time", privUser, 0, 0, func(c *cmdCtx, _ []byte) (byte, []byte) {
		return ccOK, binary.LittleEndian.AppendUint32(nil, uint32(c.now.Unix()))
	})
	add(netFnTransport, 0x02, "get_lan_config", privOperator, 4, 4, (*cmdCtx).getLANConfig)
}

// run answers one request message.
func (c *cmdCtx) run(m *lanRequest) (byte, []byte) {
	c.r.add(protocols.F("netfn", m.netFn), protocols.F("cmd", m.cmd))
	cmd, ok := commands[uint16(m.netFn)<<8|uint16(m.cmd)]
	cc, data := byte(ccInvalidCommand), []byte(nil)
	switch {
	case !ok || m.netFn&1 != 0 || m.rsLUN != 0:
		c.r.kind = "unknown"
	case c.rs != nil && cmd.priv > c.rs.priv:
		c.r.kind, cc = cmd.name, ccInsufficientPriv
	case len(m.data) < cmd.min || len(m.data) > cmd.max:
		c.r.kind, cc = cmd.name, ccBadLength
	default:
		c.r.kind = cmd.name
		cc, data = cmd.fn(c, m.data)
	}
	if cc != ccOK {
		c.r.failed = true
		data = nil
		// Group extension and OEM/group responses start with the defining body (one byte)
		// or IANA number (three) of the request, errors included (IPMI v2.0 §5.1).
		switch m.netFn {
		case netFnGroup:
			data = append(data, m.data[:min(1, len(m.data))]...)
		case netFnOEMGroup:
			data = append(data, m.data[:min(3, len(m.data))]...)
		}
	}
	c.r.add(protocols.F("completion_code", cc))
	return cc, data
}

func (c *cmdCtx) channel(b byte) (byte, bool) {
	ch := b & 0x0F
	if ch == currentChannel {
		ch = lanChannel
	}
	return ch, ch == lanChannel
}

func (c *cmdCtx) getDeviceID([]byte) (byte, []byte) {
	cfg := c.s.cfg
	d := []byte{cfg.deviceID, cfg.deviceRev & 0x0F, cfg.fwMajor & 0x7F, cfg.fwMinor,
		0x02, // IPMI 2.0
		0x9F, // chassis, event receiver, FRU, SEL, SDR repository, sensors
		byte(cfg.manufacturer), byte(cfg.manufacturer >> 8), byte(cfg.manufacturer >> 16),
		byte(cfg.product), byte(cfg.product >> 8),
		0x00, 0x00, 0x00, 0x00}
	return ccOK, d
}

func (c *cmdCtx) reset([]byte) (byte, []byte) {
	c.r.must = true
	return ccOK, nil
}

func (c *cmdCtx) getACPI([]byte) (byte, []byte) {
	c.hs.mu.Lock()
	off := c.hs.powerOff
	c.hs.mu.Unlock()
	if off {
		return ccOK, []byte{0x05, 0x03} // S5/G2 soft-off, D3
	}
	return ccOK, []byte{0x00, 0x00} // S0/G0 working, D0
}

func (hs *hostState) deviceGUID() []byte {
	g := hs.guid
	for i := range g[:6] {
		g[i] ^= 0x5A
	}
	return g[:]
}

func (c *cmdCtx) getAuthCaps(d []byte) (byte, []byte) {
	ch, ok := c.channel(d[0])
	if !ok || d[1]&0x0F == 0 || d[1]&0x0F > privOEM {
		return ccInvalidField, nil
	}
	c.r.add(protocols.F("v2_data", d[0]&0x80 != 0))
	// The profile's IPMI v1.5 authentication types and IPMI v2.0 extended data; non-null
	// user names only, per-message and user-level authentication on; the channel does
	// IPMI v2.0 (RMCP+), and v1.5 sessions when any v1.5 type is on.
	ext := byte(0x02)
	if len(c.s.cfg.v15Auth) > 0 {
		ext |= 0x01
	}
	return ccOK, []byte{ch, 0x80 | c.s.cfg.v15AuthBits(), 0x04, ext, 0x00, 0x00, 0x00, 0x00}
}

func (c *cmdCtx) getCipherSuites(d []byte) (byte, []byte) {
	ch, ok := c.channel(d[0])
	if !ok || d[1] > payloadSOL {
		return ccInvalidField, nil
	}
	var recs []byte
	if d[2]&0x80 != 0 {
		for _, su := range c.s.cfg.suites {
			recs = append(recs, 0xC0, su.id, su.auth, 0x40|su.integ, 0x80|su.conf)
		}
	} else {
		seen := map[byte]bool{}
		for _, su := range c.s.cfg.suites {
			for _, a := range []byte{su.auth, 0x40 | su.integ, 0x80 | su.conf} {
				if !seen[a] {
					seen[a] = true
					recs = append(recs, a)
				}
			}
		}
	}
	i := int(d[2]&0x3F) * 16
	out := []byte{ch}
	if i < len(recs) {
		out = append(out, recs[i:min(i+16, len(recs))]...)
	}
	return ccOK, out
}

func (c *cmdCtx) setPrivilege(d []byte) (byte, []byte) {
	p := d[0] & 0x0F
	switch {
	case p == 0:
		return ccOK, []byte{c.rs.priv}
	case p > privOEM:
		return ccInvalidField, nil
	case p > c.rs.limit:
		c.r.add(protocols.F("requested_privilege", p))
		return ccPrivExceeded, nil
	}
	c.rs.priv = p
	c.r.add(protocols.F("privilege", p))
	return ccOK, []byte{p}
}

func (c *cmdCtx) closeSession(d []byte) (byte, []byte) {
	if le32(d) != c.rs.bmcID {
		return ccInvalidSessionID, nil
	}
	c.closeAfter = true
	return ccOK, nil
}

func (c *cmdCtx) getChannelAccess(d []byte) (byte, []byte) {
	_, ok := c.channel(d[0])
	if !ok {
		return ccInvalidField, nil
	}
	switch d[1] >> 6 {
	case 1, 2: // non-volatile, present
		return ccOK, []byte{0x02, privAdmin} // always available; administrator limit
	}
	return ccInvalidField, nil
}

func (c *cmdCtx) getChannelInfo(d []byte) (byte, []byte) {
	ch := d[0] & 0x0F
	if ch == currentChannel {
		ch = lanChannel
	}
	switch ch {
	case 0: // primary IPMB
		return ccOK, []byte{0x00, 0x01, 0x01, 0x00, 0xF2, 0x1B, 0x00, 0x00, 0x00}
	case lanChannel: // 802.3 LAN, IPMB-1.0 protocol, multi-session
		c.hs.mu.Lock()
		n := min(c.hs.sessions, 0x3F)
		c.hs.mu.Unlock()
		return ccOK, []byte{lanChannel, 0x04, 0x01, 0x80 | byte(n), 0xF2, 0x1B, 0x00, 0x00, 0x00}
	case 0x0F: // system interface (KCS), session-less
		return ccOK, []byte{0x0F, 0x0C, 0x05, 0x00, 0xF2, 0x1B, 0x00, 0x00, 0x00}
	}
	return ccInvalidField, nil
}

func (c *cmdCtx) activatePayload(d []byte) (byte, []byte) {
	c.r.must = true
	if d[0]&0x3F == payloadSOL {
		return ccPrivExceeded, nil // payload type disabled: SOL is off on this BMC
	}
	return ccInvalidField, nil
}

func (c *cmdCtx) chassisStatus([]byte) (byte, []byte) {
	c.hs.mu.Lock()
	defer c.hs.mu.Unlock()
	state := byte(0x20) // restore policy: previous state
	if !c.hs.powerOff {
		state |= 0x01
	}
	return ccOK, []byte{state, c.hs.lastEvent, 0x40}
}

var controlNames = [...]string{"power down", "power up", "power cycle", "hard reset", "pulse diagnostic interrupt", "soft shutdown"}

func (c *cmdCtx) chassisControl(d []byte) (byte, []byte) {
	op := d[0] & 0x0F
	c.r.must = true
	if int(op) >= len(controlNames) {
		return ccInvalidField, nil
	}
	c.hs.mu.Lock()
	defer c.hs.mu.Unlock()
	was := !c.hs.powerOff
	c.r.add(protocols.F("control", controlNames[op]), protocols.F("power_was_on", was))
	switch op {
	case 0, 5:
		c.hs.powerOff = true
	case 1:
		c.hs.powerOff = false
	case 2, 3:
		if !was {
			return ccNotInState, nil
		}
	case 4:
		return ccInvalidField, nil
	}
	c.hs.savePower(c.sess.Host.Databus)
	c.hs.lastEvent = 0x10 // last power event: by IPMI command
	c.hs.lastPower = c.now
	c.r.add(protocols.F("power_on", !c.hs.powerOff))
	return ccOK, nil
}

func (c *cmdCtx) sensor(num byte) *sensor {
	for i := range c.hs.sensors {
		if c.hs.sensors[i].num == num {
			return &c.hs.sensors[i]
		}
	}
	return nil
}

func (c *cmdCtx) poweredOff() bool {
	c.hs.mu.Lock()
	defer c.hs.mu.Unlock()
	return c.hs.powerOff
}

func (c *cmdCtx) getSensorReading(d []byte) (byte, []byte) {
	s := c.sensor(d[0])
	if s == nil {
		return ccNotPresent, nil
	}
	v := c.hs.reading(s, c.now, c.poweredOff())
	return ccOK, []byte{v, 0xC0, 0xC0 | s.status(v)}
}

func (c *cmdCtx) getThresholds(d []byte) (byte, []byte) {
	s := c.sensor(d[0])
	if s == nil {
		return ccNotPresent, nil
	}
	return ccOK, []byte{s.thrMask, s.thr[2], s.thr[1], s.thr[0], s.thr[3], s.thr[4], s.thr[5]}
}

func (c *cmdCtx) sdrInfo([]byte) (byte, []byte) {
	d := []byte{sdrVersion}
	d = binary.LittleEndian.AppendUint16(d, uint16(len(c.hs.sensors)))
	d = binary.LittleEndian.AppendUint16(d, 0x0C00) // free bytes
	d = binary.LittleEndian.AppendUint32(d, uint32(c.hs.start.Unix()))
	d = binary.LittleEndian.AppendUint32(d, uint32(c.hs.start.Unix()))
	return ccOK, append(d, 0x22) // non-modal updates; Reserve SDR Repository supported
}

func (c *cmdCtx) reserve([]byte) (byte, []byte) {
	return ccOK, binary.LittleEndian.AppendUint16(nil, c.hs.reserve())
}

// readRecord answers Get SDR and Get SEL Entry: a part of one record of recs.
func readRecord(recs [][]byte, d []byte) (byte, []byte) {
	resv, id, off, n := binary.LittleEndian.Uint16(d), binary.LittleEndian.Uint16(d[2:]), int(d[4]), int(d[5])
	if len(recs) == 0 {
		return ccNotPresent, nil
	}
	i := int(id) - 1
	switch id {
	case 0x0000:
		i = 0
	case 0xFFFF:
		i = len(recs) - 1
	}
	if i < 0 || i >= len(recs) {
		return ccNotPresent, nil
	}
	if off != 0 && resv == 0 {
		return ccReservation, nil
	}
	rec := recs[i]
	if off > len(rec) {
		return ccOutOfRange, nil
	}
	end := len(rec)
	if n != 0xFF {
		end = min(off+n, len(rec))
	}
	next := uint16(i + 2)
	if i == len(recs)-1 {
		next = 0xFFFF
	}
	return ccOK, append(binary.LittleEndian.AppendUint16(nil, next), rec[off:end]...)
}

func (c *cmdCtx) getSDR(d []byte) (byte, []byte) {
	return readRecord(c.hs.sdrs(), d)
}

func (c *cmdCtx) selRecords() [][]byte {
	c.hs.mu.Lock()
	defer c.hs.mu.Unlock()
	out := make([][]byte, len(c.hs.sel))
	for i := range c.hs.sel {
		out[i] = c.hs.sel[i].record(uint16(i + 1))
	}
	return out
}

func (c *cmdCtx) selInfo([]byte) (byte, []byte) {
	c.hs.mu.Lock()
	defer c.hs.mu.Unlock()
	n := len(c.hs.sel)
	d := []byte{sdrVersion}
	d = binary.LittleEndian.AppendUint16(d, uint16(n))
	d = binary.LittleEndian.AppendUint16(d, uint16((512-n)*16))
	var last, erased uint32
	if n > 0 {
		last, erased = uint32(c.hs.sel[n-1].at.Unix()), uint32(c.hs.sel[0].at.Unix())
	}
	d = binary.LittleEndian.AppendUint32(d, last)
	d = binary.LittleEndian.AppendUint32(d, erased)
	return ccOK, append(d, 0x02) // Reserve SEL supported
}

func (c *cmdCtx) getSELEntry(d []byte) (byte, []byte) {
	return readRecord(c.selRecords(), d)
}
