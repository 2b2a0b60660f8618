package s7comm

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/icsnare/icsnare/protocols"
)

// handleS7 dispatches one reassembled S7 PDU; false ends the connection.
func (c *conn) handleS7(b, frame []byte) bool {
	p, err := ParsePDU(b)
	if err != nil {
		if len(b) < 10 || b[0] != ProtocolID {
			// not S7comm at all (S7comm-plus, garbage): a CPU drops such connections
			c.emit("error", "malformed", true, frame, nil, protocols.F("error", err.Error()))
			return false
		}
		c.errors++
		ack := PDU{Header: Header{ROSCTR: ROSCTRAck, PDURef: binary.BigEndian.Uint16(b[4:]), ErrClass: 0x81, ErrCode: 0x04}}
		resp := c.sendS7(ack.Append(nil))
		c.emit("error", "malformed", true, frame, resp, protocols.F("error", err.Error()))
		return c.errors < maxErrors
	}
	switch p.ROSCTR {
	case ROSCTRJob:
		c.handleJob(&p, frame)
	case ROSCTRUserdata:
		c.handleUserdata(&p, frame)
	default: // Ack and Ack-Data are answers; a CPU ignores them from a client
		c.emit("request", "other", true, frame, nil, protocols.F("function", "unexpected_ack"), protocols.F("rosctr", int(p.ROSCTR)))
	}
	return true
}

func (c *conn) reply(req *PDU, rosctr byte, errClass, errCode byte, param, data []byte) []byte {
	r := PDU{Header: Header{ROSCTR: rosctr, RedID: req.RedID, PDURef: req.PDURef, ErrClass: errClass, ErrCode: errCode},
		Param: param, Data: data}
	c.pduBuf = r.Append(c.pduBuf[:0]) // scratch: sendS7 frames a copy
	return c.sendS7(c.pduBuf)
}

func errField(class, code byte) protocols.Field {
	return protocols.F("error_code", fmt.Sprintf("0x%02X%02X", class, code))
}

func (c *conn) handleJob(p *PDU, frame []byte) {
	if len(p.Param) == 0 {
		resp := c.reply(p, ROSCTRAck, 0x81, 0x04, nil, nil)
		c.emit("request", "other", true, frame, resp, protocols.F("function", "empty_job"), errField(0x81, 0x04))
		return
	}
	if p.Param[0] == FuncReadVar { // the hot path: it builds its fields only for a kept event
		c.readVar(p, frame)
		return
	}
	ref := protocols.F("pdu_ref", int(p.PDURef))
	switch fn := p.Param[0]; fn {
	case FuncSetup:
		c.setupComm(p, frame, ref)
	case FuncWriteVar:
		c.writeVar(p, frame, ref)
	case FuncPLCStop:
		c.plcStop(p, frame, ref)
	case FuncPIService:
		c.piService(p, frame, ref)
	case FuncReqDownload, FuncDownloadBlock, FuncDownloadEnded, FuncStartUpload, FuncUpload, FuncEndUpload:
		kind, name := "upload", "upload"
		if fn <= FuncDownloadEnded {
			kind, name = "download", "download"
		}
		resp := c.reply(p, ROSCTRAck, 0x81, 0x04, nil, nil)
		c.emit(kind, kind, true, frame, resp, protocols.F("function", name), protocols.F("function_code", int(fn)), ref,
			errField(0x81, 0x04), protocols.F("flagged", true))
	default:
		resp := c.reply(p, ROSCTRAck, 0x81, 0x04, nil, nil)
		c.emit("request", "other", true, frame, resp, protocols.F("function", "unknown"), protocols.F("function_code", int(fn)), ref,
			errField(0x81, 0x04))
	}
}

func (c *conn) setupComm(p *PDU, frame []byte, ref protocols.Field) {
	st, err := ParseSetup(p.Param)
	if err != nil {
		resp := c.reply(p, ROSCTRAck, 0x81, 0x04, nil, nil)
		c.emit("request", "setup", true, frame, resp, protocols.F("function", "setup"), ref, errField(0x81, 0x04))
		return
	}
	c.pdu = max(min(st.PDUSize, c.cfg.PDUSize), 64)
	c.amq = max(min(st.AmqCalling, st.AmqCalled, c.cfg.MaxAmq), 1)
	c.setup = true
	ans := Setup{AmqCalling: c.amq, AmqCalled: c.amq, PDUSize: c.pdu}
	resp := c.reply(p, ROSCTRAckData, 0, 0, ans.Append(nil), nil)
	c.emit("request", "setup", false, frame, resp, protocols.F("function", "setup"), ref,
		protocols.F("pdu_requested", int(st.PDUSize)), protocols.F("pdu_size", int(c.pdu)), protocols.F("amq", int(c.amq)))
}

// itemResult checks an item against the profile's areas: the area and byte range, or a
// return code.
func (c *conn) itemArea(it VarItem) (*Area, int, int, byte) {
	if it.Syntax != syntaxS7Any {
		return nil, 0, 0, RCTypeNotSupported
	}
	if ElemSize(it.TransportSize) == 0 {
		return nil, 0, 0, RCTypeNotSupported
	}
	if it.TransportSize == TSBit && it.Count != 1 {
		return nil, 0, 0, RCTypeInconsistent
	}
	code := it.Area
	if code == AreaDI {
		code = AreaDB
	}
	a := c.cfg.area(code, it.DB)
	if a == nil {
		if code == AreaDB {
			return nil, 0, 0, RCObjectNotExist
		}
		return nil, 0, 0, RCOutOfRange
	}
	off, n := it.ByteOffset(), it.ByteLen()
	if it.Count == 0 || off+n > a.Size {
		return nil, 0, 0, RCOutOfRange
	}
	return a, off, n, RCSuccess
}

func resultTS(ts byte) byte {
	switch ts {
	case TSBit:
		return DTSBit
	case TSInt, TSDInt:
		return DTSInt
	case TSReal:
		return DTSReal
	case TSChar, TSCounter, TSTimer:
		return DTSOctets
	}
	return DTSByte
}

func (c *conn) badVarJob(p *PDU, frame []byte, ref protocols.Field, name, kind string, err error) {
	class, code := byte(0x81), byte(0x04)
	if p.ParamLen > 1 && int(p.Param[1]) > MaxItems {
		class, code = 0x85, 0x00
	}
	resp := c.reply(p, ROSCTRAck, class, code, nil, nil)
	c.emit(kind, kind, true, frame, resp, protocols.F("function", name), ref, errField(class, code), protocols.F("error", err.Error()))
}

func (c *conn) readVar(p *PDU, frame []byte) {
	var err error
	c.items, err = appendVarJob(c.items[:0], p.Param)
	if err != nil {
		c.badVarJob(p, frame, protocols.F("pdu_ref", int(p.PDURef)), "read_var", "read", err)
		return
	}
	items := c.items
	data := c.data[:0]
	fields := c.itemFields[:0] // scratch: copied for an event that is kept
	failed, oversize := false, false
	for i, it := range items {
		a, off, n, rc := c.itemArea(it)
		item := DataItem{RC: rc}
		if rc == RCSuccess && 12+2+len(data)+4+n > int(c.pdu) {
			oversize = true // checked before reading, so a large item costs nothing
			fields = append(fields, itemField{it: it, rc: rc})
			break
		}
		if rc == RCSuccess {
			if c.mem == nil {
				c.mem = hostMemory(c.host)
			}
			c.area = appendAreaMem(c.area[:0], c.host, c.mem, a, off, n)
			v := c.area
			if it.TransportSize == TSBit {
				v[0] = v[0] >> (it.BitAddr & 7) & 1
			}
			item.TS, item.Data = resultTS(it.TransportSize), v
		} else {
			failed = true
		}
		data = AppendDataItem(data, item, i < len(items)-1)
		fields = append(fields, itemField{it: it, rc: rc})
	}
	c.itemFields = fields[:0]
	if oversize || 12+2+len(data) > int(c.pdu) {
		resp := c.reply(p, ROSCTRAck, 0x85, 0x00, nil, nil)
		c.emit("request", "read", true, frame, resp, protocols.F("function", "read_var"), protocols.F("pdu_ref", int(p.PDURef)),
			protocols.F("items", slices.Clone(fields)), errField(0x85, 0x00))
		return
	}
	c.param = append(c.param[:0], FuncReadVar, byte(len(items)))
	resp := c.reply(p, ROSCTRAckData, 0, 0, c.param, data)
	c.data = data[:0] // scratch: the answer is in c.out now
	// Counted as note counts a read; volume control decides as Skip does.
	if c.s.RequestSkip("read", failed, "request", frame, resp, protocols.F("function", "read_var")) {
		c.flush()
		return
	}
	c.send("request", frame, resp, protocols.F("function", "read_var"), protocols.F("pdu_ref", int(p.PDURef)),
		protocols.F("items", slices.Clone(fields)))
}

func (c *conn) writeVar(p *PDU, frame []byte, ref protocols.Field) {
	_, items, err := ParseVarJob(p.Param)
	var vals []DataItem
	if err == nil {
		vals, err = ParseDataItems(p.Data, len(items))
	}
	if err != nil {
		c.badVarJob(p, frame, ref, "write_var", "write", err)
		return
	}
	rcs := make([]byte, len(items))
	fields := make(itemFields, 0, len(items))
	failed := false
	for i, it := range items {
		a, off, n, rc := c.itemArea(it)
		v := vals[i]
		if rc == RCSuccess && len(v.Data) != n {
			rc = RCTypeInconsistent
		}
		if rc == RCSuccess {
			if it.TransportSize == TSBit {
				bit := byte(1) << (it.BitAddr & 7)
				val := byte(0)
				if v.Data[0]&1 != 0 {
					val = bit
				}
				writeArea(c.host, a, off, []byte{val}, bit)
			} else {
				writeArea(c.host, a, off, v.Data, 0)
			}
		}
		if rc != RCSuccess {
			failed = true
		}
		rcs[i] = rc
		fields = append(fields, itemField{it: it, rc: rc, value: hex.EncodeToString(v.Data), write: true})
	}
	resp := c.reply(p, ROSCTRAckData, 0, 0, []byte{FuncWriteVar, byte(len(items))}, rcs)
	c.emit("write", "write", failed, frame, resp, protocols.F("function", "write_var"), ref, protocols.F("items", fields),
		protocols.F("flagged", true))
}

// setMode changes the host's operating mode and keeps it in the host's state.
func (c *conn) setMode(mode byte) {
	c.cpu.mu.Lock()
	c.cpu.prev, c.cpu.mode, c.cpu.changed = c.cpu.mode, mode, time.Now()
	c.host.Persist(modeKey, []byte{c.cpu.mode, c.cpu.prev}) // under the lock: saved in order
	if k := c.cfg.ModeKey; k != "" && c.host.Databus != nil {
		c.host.Databus.Set(k, modeName(mode)) // every protocol of the host shows the new mode
	}
	c.cpu.mu.Unlock()
}

func (c *conn) mode() byte {
	c.cpu.mu.Lock()
	defer c.cpu.mu.Unlock()
	return c.cpu.mode
}

// protected reports whether the protection level forbids changing the CPU on this
// connection (level 2 or 3 with a password the client has not given).
func (c *conn) protected() bool {
	return c.cfg.Protection > 1 && c.cfg.Password != "" && !c.legit
}

func (c *conn) plcStop(p *PDU, frame []byte, ref protocols.Field) {
	name := ""
	if len(p.Param) >= 7 && int(p.Param[6])+7 <= len(p.Param) {
		name = string(p.Param[7 : 7+int(p.Param[6])])
	}
	fields := []protocols.Field{protocols.F("function", "plc_stop"), ref, protocols.F("service", printable(name)), protocols.F("flagged", true)}
	var resp []byte
	failed := true
	switch {
	case c.protected():
		resp = c.reply(p, ROSCTRAckData, 0xD2, 0x41, []byte{FuncPLCStop}, nil)
		fields = append(fields, errField(0xD2, 0x41))
	case c.mode() == ModeStop:
		resp = c.reply(p, ROSCTRAckData, 0x84, 0x04, []byte{FuncPLCStop, 0x07}, nil)
		fields = append(fields, errField(0x84, 0x04), protocols.F("mode", "STOP"))
	default:
		c.setMode(ModeStop)
		resp = c.reply(p, ROSCTRAckData, 0, 0, []byte{FuncPLCStop}, nil)
		fields = append(fields, protocols.F("mode", "STOP"))
		failed = false
	}
	c.emit("stop", "stop", failed, frame, resp, fields...)
}

// parsePI decodes a PI service job: the parameter block and the service name.
func parsePI(param []byte) (args []byte, name string, ok bool) {
	if len(param) < 11 {
		return nil, "", false
	}
	n := int(binary.BigEndian.Uint16(param[8:]))
	if 10+n+1 > len(param) {
		return nil, "", false
	}
	args = param[10 : 10+n]
	l := int(param[10+n])
	if 11+n+l != len(param) {
		return nil, "", false
	}
	return args, string(param[11+n:]), true
}

func (c *conn) piService(p *PDU, frame []byte, ref protocols.Field) {
	args, name, ok := parsePI(p.Param)
	if !ok {
		resp := c.reply(p, ROSCTRAck, 0x81, 0x04, nil, nil)
		c.emit("request", "pi", true, frame, resp, protocols.F("function", "pi_service"), ref, errField(0x81, 0x04),
			protocols.F("flagged", true))
		return
	}
	fields := []protocols.Field{ref, protocols.F("service", printable(name)),
		protocols.F("arguments", printable(string(args))), protocols.F("flagged", true)}
	if name != "P_PROGRAM" {
		resp := c.reply(p, ROSCTRAckData, 0x81, 0x04, []byte{FuncPIService}, nil)
		fields = append(fields, protocols.F("function", "pi_service"), errField(0x81, 0x04))
		c.emit("request", "pi", true, frame, resp, fields...)
		return
	}
	cold := len(args) > 0 && args[0] == 'C'
	restart := "hot"
	if cold {
		restart = "cold"
	}
	fields = append(fields, protocols.F("function", "plc_start"), protocols.F("restart", restart))
	var resp []byte
	failed := true
	switch {
	case c.protected():
		resp = c.reply(p, ROSCTRAckData, 0xD2, 0x41, []byte{FuncPIService}, nil)
		fields = append(fields, errField(0xD2, 0x41))
	case c.cfg.Switch == SwitchStop:
		resp = c.reply(p, ROSCTRAckData, 0xD0, 0x81, []byte{FuncPIService}, nil)
		fields = append(fields, errField(0xD0, 0x81))
	case c.mode() == ModeRun:
		resp = c.reply(p, ROSCTRAckData, 0x84, 0x04, []byte{FuncPIService, 0x02}, nil)
		fields = append(fields, errField(0x84, 0x04), protocols.F("mode", "RUN"))
	default:
		c.setMode(ModeRun)
		resp = c.reply(p, ROSCTRAckData, 0, 0, []byte{FuncPIService}, nil)
		fields = append(fields, protocols.F("mode", "RUN"))
		failed = false
	}
	c.emit("start", "start", failed, frame, resp, fields...)
}

// printable keeps ASCII text for events, replacing anything else.
func printable(s string) string {
	b := []byte(s)
	for i, x := range b {
		if x < 0x20 || x > 0x7E {
			b[i] = '.'
		}
	}
	return string(b)
}
