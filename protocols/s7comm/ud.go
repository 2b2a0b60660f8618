package s7comm

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/icsnare/icsnare/protocols"
)

// udNoData is the data part of an error or empty userdata answer.
var udNoData = UDData{RC: RCObjectNotExist}

func (c *conn) nextSeq() byte {
	c.seq++
	if c.seq == 0 {
		c.seq = 1
	}
	return c.seq
}

func (c *conn) udReply(req *PDU, u UDParam, seq, duRef, last byte, errCode uint16, d UDData) []byte {
	rp := UDParam{Method: udMethodRes, Type: UDTypeRes, Group: u.Group, Sub: u.Sub, Seq: seq, Long: true,
		DURef: duRef, LastDU: last, ErrCode: errCode}
	return c.reply(req, ROSCTRUserdata, 0, 0, rp.Append(make([]byte, 0, 12)), d.Append(make([]byte, 0, 4+len(d.Payload))))
}

func udErrField(code uint16) protocols.Field {
	return protocols.F("error_code", fmt.Sprintf("0x%04X", code))
}

func (c *conn) handleUserdata(p *PDU, frame []byte) {
	ref := protocols.F("pdu_ref", int(p.PDURef))
	u, err := ParseUDParam(p.Param)
	if err != nil {
		c.errors++
		c.emit("error", "malformed", true, frame, nil, protocols.F("error", err.Error()), ref)
		return
	}
	if u.Type != UDTypeReq {
		c.emit("request", "other", true, frame, nil, protocols.F("function", "userdata_push"), ref,
			protocols.F("group", int(u.Group)), protocols.F("subfunction", int(u.Sub)))
		return
	}
	d, err := ParseUDData(p.Data)
	if err != nil {
		resp := c.udReply(p, u, c.nextSeq(), 0, 0, ErrNotImpl, udNoData)
		c.emit("request", "malformed", true, frame, resp, protocols.F("function", "userdata"), ref, udErrField(ErrNotImpl),
			protocols.F("error", err.Error()))
		return
	}
	switch {
	case u.Group == GroupCPU && u.Sub == SubReadSZL:
		c.readSZL(p, u, d, frame, ref)
	case u.Group == GroupBlock:
		c.blockFunc(p, u, d, frame, ref)
	case u.Group == GroupTime && (u.Sub == SubReadClock || u.Sub == SubReadClockFol):
		c.cpu.mu.Lock()
		now := time.Now().Add(c.cpu.clock)
		c.cpu.mu.Unlock()
		resp := c.udReply(p, u, c.nextSeq(), 0, 0, 0, UDData{RC: RCSuccess, TS: DTSOctets, Payload: appendClock(nil, now)})
		c.emit("request", "clock", false, frame, resp, protocols.F("function", "read_clock"), ref)
	case u.Group == GroupTime && u.Sub == SubSetClock:
		c.setClock(p, u, d, frame, ref)
	case u.Group == GroupSecurity && (u.Sub == SubPassword || u.Sub == SubClearPasswd):
		c.password(p, u, d, frame, ref)
	default:
		resp := c.udReply(p, u, c.nextSeq(), 0, 0, ErrNotImpl, udNoData)
		c.emit("request", "other", true, frame, resp, protocols.F("function", "userdata"), ref,
			protocols.F("group", int(u.Group)), protocols.F("subfunction", int(u.Sub)), udErrField(ErrNotImpl))
	}
}

// identity gathers the host's identity and CPU state for SZL answers.
func (c *conn) identity() identity {
	id := identity{db: c.host.Databus}
	c.cpu.mu.Lock()
	id.mode, id.prev, id.changed = c.cpu.mode, c.cpu.prev, c.cpu.changed
	c.cpu.mu.Unlock()
	return id
}

func (c *conn) readSZL(p *PDU, u UDParam, d UDData, frame []byte, ref protocols.Field) {
	fields := []protocols.Field{protocols.F("function", "szl_read"), ref}
	if d.RC == RCObjectNotExist && len(d.Payload) == 0 {
		// follow-up request for the next part of a fragmented answer
		f := c.frag
		if f == nil || f.seq != u.Seq {
			resp := c.udReply(p, u, u.Seq, 0, 0, ErrSZLUnknown, udNoData)
			c.emit("request", "szl", true, frame, resp, append(fields, protocols.F("follow_up", true), udErrField(ErrSZLUnknown))...)
			return
		}
		resp := c.sendFragment(p, u, f)
		c.emit("request", "szl", false, frame, resp, append(fields, protocols.F("follow_up", true),
			protocols.F("szl_id", fmt.Sprintf("0x%04X", f.id)), protocols.F("szl_index", fmt.Sprintf("0x%04X", f.index)))...)
		return
	}
	req, err := ParseSZLRequest(d.Payload)
	if err != nil {
		resp := c.udReply(p, u, c.nextSeq(), 0, 0, ErrSZLUnknown, udNoData)
		c.emit("request", "szl", true, frame, resp, append(fields, udErrField(ErrSZLUnknown), protocols.F("error", err.Error()))...)
		return
	}
	fields = append(fields, protocols.F("szl_id", fmt.Sprintf("0x%04X", req.ID)), protocols.F("szl_index", fmt.Sprintf("0x%04X", req.Index)))
	id := c.identity()
	payload, ecode := c.cfg.szl(req, &id)
	if ecode != 0 {
		resp := c.udReply(p, u, c.nextSeq(), 0, 0, ecode, udNoData)
		c.emit("request", "szl", true, frame, resp, append(fields, udErrField(ecode))...)
		return
	}
	recLen := int(binary.BigEndian.Uint16(payload[4:]))
	f := &fragment{seq: c.nextSeq(), rest: payload, recLen: max(recLen, 1), id: req.ID, index: req.Index}
	resp := c.sendFragment(p, u, f)
	c.emit("request", "szl", false, frame, resp, fields...)
}

// sendFragment sends the next part of an answer, cut at a record boundary to fit the PDU.
func (c *conn) sendFragment(p *PDU, u UDParam, f *fragment) []byte {
	room := int(c.pdu) - 10 - 12 - 4
	n := len(f.rest)
	if n > room {
		first := f.duRef == 0 // the first part carries the 8-byte SZL header
		hdr := 0
		if first {
			hdr = 8
		}
		n = hdr + (room-hdr)/f.recLen*f.recLen
		if n <= hdr {
			n = room
		}
		if f.duRef == 0 {
			c.duRef++
			if c.duRef == 0 {
				c.duRef = 1
			}
			f.duRef = c.duRef
		}
	}
	part := f.rest[:n]
	f.rest = f.rest[n:]
	last := byte(0)
	if len(f.rest) > 0 {
		last = 1
		c.frag = f
	} else {
		c.frag = nil
	}
	return c.udReply(p, u, f.seq, f.duRef, last, 0, UDData{RC: RCSuccess, TS: DTSOctets, Payload: part})
}

func (c *conn) blockFunc(p *PDU, u UDParam, d UDData, frame []byte, ref protocols.Field) {
	room := (int(c.pdu) - 10 - 12 - 4) / 4
	switch u.Sub {
	case SubListBlocks:
		resp := c.udReply(p, u, c.nextSeq(), 0, 0, 0, UDData{RC: RCSuccess, TS: DTSOctets, Payload: c.cfg.blockCounts()})
		c.emit("request", "block", false, frame, resp, protocols.F("function", "block_list"), ref)
		return
	case SubListOfType:
		if len(d.Payload) == 2 && d.Payload[0] == 0x30 {
			fields := []protocols.Field{protocols.F("function", "block_list_type"), ref, protocols.F("block_type", blockTypeName(d.Payload[1]))}
			list := c.cfg.blocksOfType(d.Payload[1], room)
			if len(list) == 0 {
				resp := c.udReply(p, u, c.nextSeq(), 0, 0, ErrNoBlock, udNoData)
				c.emit("request", "block", true, frame, resp, append(fields, udErrField(ErrNoBlock))...)
				return
			}
			resp := c.udReply(p, u, c.nextSeq(), 0, 0, 0, UDData{RC: RCSuccess, TS: DTSOctets, Payload: list})
			c.emit("request", "block", false, frame, resp, fields...)
			return
		}
	case SubBlockInfo:
		if len(d.Payload) == 8 && d.Payload[0] == 0x30 {
			nr, ok := asciiNumber(d.Payload[2:7])
			fields := []protocols.Field{protocols.F("function", "block_info"), ref, protocols.F("block_type", blockTypeName(d.Payload[1])),
				protocols.F("block_number", nr)}
			var b *Block
			if ok {
				b = c.cfg.block(d.Payload[1], uint16(nr))
			}
			if b == nil {
				resp := c.udReply(p, u, c.nextSeq(), 0, 0, ErrBlockNF, udNoData)
				c.emit("request", "block", true, frame, resp, append(fields, udErrField(ErrBlockNF))...)
				return
			}
			resp := c.udReply(p, u, c.nextSeq(), 0, 0, 0, UDData{RC: RCSuccess, TS: DTSOctets, Payload: blockInfo(b, c.blockStamp(b))})
			c.emit("request", "block", false, frame, resp, fields...)
			return
		}
	}
	resp := c.udReply(p, u, c.nextSeq(), 0, 0, ErrNotImpl, udNoData)
	c.emit("request", "block", true, frame, resp, protocols.F("function", "block"), ref, protocols.F("subfunction", int(u.Sub)),
		udErrField(ErrNotImpl))
}

func blockTypeName(t byte) string {
	for k, v := range blockTypeNames {
		if v == t {
			return k
		}
	}
	return fmt.Sprintf("0x%02X", t)
}

func asciiNumber(b []byte) (int, bool) {
	n := 0
	for _, x := range b {
		if x < '0' || x > '9' {
			return 0, false
		}
		n = n*10 + int(x-'0')
	}
	return n, n <= 65535
}

// blockStamp is a block's programming date: stable per host and block, in the host's past.
func (c *conn) blockStamp(b *Block) time.Time {
	h := c.host.Seed ^ uint64(b.Type)<<40 ^ uint64(b.Number)<<16
	h ^= h >> 29
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 32
	base := time.Date(2016, 3, 1, 0, 0, 0, 0, time.UTC)
	days := int(c.host.Seed%1500) + int(h%120)
	return base.AddDate(0, 0, days).Add(time.Duration(h%(10*3600)+7*3600) * time.Second)
}

// parseBCDClock reads the 10-byte clock of a "set clock" request.
func parseBCDClock(b []byte) (time.Time, bool) {
	if len(b) != 10 {
		return time.Time{}, false
	}
	d := func(x byte) int { return int(x>>4)*10 + int(x&0x0F) }
	year := d(b[1])*100 + d(b[2])
	if b[1] == 0 {
		year = 1900 + d(b[2])
		if year < 1990 {
			year += 100
		}
	}
	t := time.Date(year, time.Month(d(b[3])), d(b[4]), d(b[5]), d(b[6]), d(b[7]), (d(b[8])*10+int(b[9]>>4))*1e6, time.UTC)
	return t, d(b[3]) >= 1 && d(b[3]) <= 12 && d(b[4]) >= 1 && d(b[4]) <= 31
}

func (c *conn) setClock(p *PDU, u UDParam, d UDData, frame []byte, ref protocols.Field) {
	fields := []protocols.Field{protocols.F("function", "set_clock"), ref, protocols.F("flagged", true)}
	t, ok := parseBCDClock(d.Payload)
	if !ok {
		resp := c.udReply(p, u, c.nextSeq(), 0, 0, 0xDC01, udNoData)
		c.emit("request", "clock", true, frame, resp, append(fields, udErrField(0xDC01))...)
		return
	}
	c.cpu.mu.Lock()
	c.cpu.clock = time.Until(t)
	c.cpu.mu.Unlock()
	resp := c.udReply(p, u, c.nextSeq(), 0, 0, 0, udNoData)
	c.emit("request", "clock", false, frame, resp, append(fields, protocols.F("clock", t.Format(time.RFC3339)))...)
}

// decodePassword undoes the S7 password scrambling (XOR 0x55 chained over two bytes).
func decodePassword(b []byte) string {
	out := make([]byte, len(b))
	for i := range b {
		out[i] = b[i] ^ 0x55
		if i >= 2 {
			out[i] ^= b[i-2]
		}
	}
	n := len(out)
	for n > 0 && (out[n-1] == ' ' || out[n-1] == 0) {
		n--
	}
	return string(out[:n])
}

func (c *conn) password(p *PDU, u UDParam, d UDData, frame []byte, ref protocols.Field) {
	if u.Sub == SubClearPasswd {
		c.legit = false
		resp := c.udReply(p, u, c.nextSeq(), 0, 0, 0, udNoData)
		c.emit("request", "auth", false, frame, resp, protocols.F("function", "clear_password"), ref)
		return
	}
	fields := []protocols.Field{protocols.F("function", "password"), ref, protocols.F("flagged", true)}
	var code uint16
	switch {
	case len(d.Payload) != 8:
		code = 0xD601
	case c.cfg.Password == "":
		code = ErrNoPassword
	case decodePassword(d.Payload) != c.cfg.Password:
		code = ErrPassword
	default:
		c.legit = true
	}
	if len(d.Payload) == 8 {
		fields = append(fields, protocols.F("password", printable(decodePassword(d.Payload))))
	}
	resp := c.udReply(p, u, c.nextSeq(), 0, 0, code, udNoData)
	if code != 0 {
		fields = append(fields, udErrField(code))
	}
	c.emit("auth", "auth", code != 0, frame, resp, fields...)
}
