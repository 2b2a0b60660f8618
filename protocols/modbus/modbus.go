// Package modbus serves Modbus/TCP (MBAP framing, port 502) from a Conpot modbus.xml
// profile section: coils, discrete inputs, input and holding registers backed by the
// host's databus, Read Device Identification, Report Server ID and diagnostics echo, with
// the unit-id semantics of a directly attached device (tcp mode) or of a TCP/serial
// gateway (serial mode). See README.md.
package modbus

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"sync"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
)

// Port is the standard Modbus/TCP port.
const Port = 502

// service serves one profile's Modbus/TCP section for every host of that profile.
type service struct {
	cfg *config
	// units maps a unit id to the slave that answers it; nil means nobody answers
	// (silence, or exception 0x0B when the profile asks for gateway behaviour).
	units [256]*slave
}

var _ protocols.StreamService = (*service)(nil)

func newService(c *config) *service {
	s := &service{cfg: c}
	byID := map[uint8]*slave{}
	for _, sl := range c.slaves {
		byID[sl.id] = sl
	}
	switch c.mode {
	case modeTCP:
		// The device itself answers units 0 and 255 (Messaging Implementation Guide §4.4.1.2):
		// the slave configured under that id, else under the other one, else the first slave.
		var dflt *slave
		if len(c.slaves) > 0 {
			dflt = c.slaves[0]
		} else {
			dflt = &slave{id: 255, info: c.info}
		}
		for u := range 256 {
			if u != 0 && u != 255 {
				if c.unknown == unitDevice {
					s.units[u] = dflt // a stack that ignores the unit identifier
				}
				continue
			}
			switch {
			case byID[uint8(u)] != nil:
				s.units[u] = byID[uint8(u)]
			case byID[uint8(255-u)] != nil:
				s.units[u] = byID[uint8(255-u)]
			default:
				s.units[u] = dflt
			}
		}
	case modeSerial:
		for u := 1; u <= 247; u++ {
			s.units[u] = byID[uint8(u)]
		}
	}
	return s
}

// Endpoints implements protocols.Service.
func (s *service) Endpoints() []protocols.Endpoint {
	return []protocols.Endpoint{{Transport: protocols.TCP, Port: Port}}
}

// Buffer sizes: the read buffer holds many pipelined ADUs; replies are written in one
// Write per read, or earlier when flushAt bytes are pending.
const (
	readBufSize = 4096
	outBufSize  = 8192
	flushAt     = outBufSize - MaxADU
)

// conn is the per-connection state; pooled so a connection flood does not churn buffers.
type conn struct {
	svc  *service
	sess *protocols.Session
	db   *profiles.Databus
	nc   net.Conn
	buf  [readBufSize]byte
	out  []byte
	objs []DeviceObject
}

var connPool = sync.Pool{New: func() any { return &conn{out: make([]byte, 0, outBufSize)} }}

// ServeConn implements protocols.StreamService: it reads MBAP frames until the peer
// closes, the idle timeout fires or the framing breaks, answering every complete frame in
// each read and writing the replies of one read together.
func (s *service) ServeConn(ctx context.Context, sess *protocols.Session, nc net.Conn) {
	c := connPool.Get().(*conn)
	c.svc, c.sess, c.nc, c.out = s, sess, nc, c.out[:0]
	if sess.Host != nil {
		c.db = sess.Host.Databus
	}
	defer func() {
		c.sess, c.db, c.nc = nil, nil, nil
		connPool.Put(c)
	}()
	c.serve(ctx)
}

func (c *conn) serve(ctx context.Context) {
	n := 0
	for ctx.Err() == nil {
		m, rerr := c.nc.Read(c.buf[n:])
		n += m
		off := 0
		for off < n {
			l, err := NextFrame(c.buf[off:n])
			if err != nil {
				var resp []byte
				if c.svc.cfg.badLengthException && n-off >= HeaderLen+1 {
					// Answer what the header bytes say, as stacks that read a fixed 8 bytes do.
					b := c.buf[off:n]
					resp = AppendHeader(c.out[len(c.out):len(c.out)], binary.BigEndian.Uint16(b), 0, b[6], 2)
					resp = AppendException(resp, b[7], ExIllegalFunction)
					c.out = append(c.out, resp...)
				}
				c.flush()
				c.sess.Emit(evBadFrame, c.buf[off:n], resp)
				c.sess.Request("invalid", true)
				c.log().Debug("modbus: closing, bad MBAP length", "err", err)
				return
			}
			if l == 0 {
				break
			}
			broadcast := c.handle(c.buf[off : off+l])
			off += l
			if broadcast && c.svc.cfg.delay > 0 {
				// Serial turnaround: the gateway waits after a broadcast before the next request.
				if !c.flush() || !protocols.Sleep(ctx, c.svc.cfg.delay) {
					return
				}
			}
			if len(c.out) >= flushAt && !c.flush() {
				return
			}
		}
		n = copy(c.buf[:], c.buf[off:n])
		if t := c.svc.cfg.timing; t != nil && len(c.out) > 0 {
			// the device's answer latency: one wait per batch of pipelined requests
			ok, done := t.Wait(ctx, c.sess.Host, timingKey)
			if !ok || !c.flush() {
				done()
				return
			}
			done()
		}
		if !c.flush() {
			return
		}
		if rerr != nil {
			if n > 0 {
				// A truncated frame before EOF or timeout (Conpot spun at 100 % CPU here).
				c.sess.Emit(evPartialFrame, c.buf[:n], nil)
				c.sess.Request("invalid", true)
			}
			if !errors.Is(rerr, net.ErrClosed) {
				c.log().Debug("modbus: connection ends", "err", rerr)
			}
			return
		}
	}
}

func (c *conn) log() *slog.Logger {
	if c.sess.Log != nil {
		return c.sess.Log
	}
	return slog.Default()
}

// flush writes the pending replies; false means the connection is unusable.
func (c *conn) flush() bool {
	if len(c.out) == 0 {
		return true
	}
	_, err := c.nc.Write(c.out)
	c.out = c.out[:0]
	return err == nil
}

// timingKey keeps a host's draw of the timing model.
const timingKey = "modbus.timing"

// Reasons a request gets no reply (event field "no_reply").
const (
	dropBroadcast   = "broadcast"
	dropUnknownUnit = "unknown_unit"
	dropProtocolID  = "protocol_id"
)

// handle answers one complete ADU, appending the reply to c.out. It reports whether the
// frame was a serial-mode broadcast write that ran (the turnaround delay follows it).
func (c *conn) handle(frame []byte) (broadcast bool) {
	h := ParseHeader(frame)
	pdu := frame[HeaderLen:]
	fc := pdu[0]
	start := len(c.out)
	c.out = append(c.out, 0, 0, 0, 0, 0, 0, 0) // the MBAP header, filled in below
	var (
		req  Request
		ex   uint8
		drop string
	)
	svc := c.svc
	switch {
	case h.Protocol != 0 && svc.cfg.pidException:
		ex = ExIllegalFunction // the profile's device answers it as an unknown request
	case h.Protocol != 0:
		drop = dropProtocolID // not Modbus: a device discards it
	default:
		req, ex = ParseRequest(pdu)
		sl := svc.units[h.Unit]
		switch {
		case svc.cfg.mode == modeSerial && h.Unit == 0:
			drop = dropBroadcast
			if ex == 0 && IsWrite(fc) {
				broadcast = true
				for _, t := range svc.cfg.slaves {
					c.exec(t, &req, pdu)
					c.out = c.out[:start+HeaderLen]
				}
			}
		case sl == nil:
			switch svc.cfg.unknown {
			case unitGateway:
				ex = ExGatewayNoResponse
			case unitFailure:
				ex = ExServerFailure
			default:
				drop = dropUnknownUnit
			}
		case ex == 0:
			ex = c.exec(sl, &req, pdu)
		}
	}
	var resp []byte
	if drop != "" {
		c.out = c.out[:start]
	} else {
		if ex != 0 {
			c.out = AppendException(c.out[:start+HeaderLen], fc, ex)
		}
		AppendHeader(c.out[start:start], h.Transaction, 0, h.Unit, len(c.out)-start-HeaderLen)
		resp = c.out[start:]
	}
	c.emit(frame, resp, &h, &req, fc, ex, drop)
	return broadcast
}

// Event types, with the protocol prefix so Session.Emit need not build the string.
const (
	evRequest      = Name + ".request"
	evBadFrame     = Name + ".bad_frame"
	evPartialFrame = Name + ".partial_frame"
)

// emit counts the request and sends its event. It is on the hot path: one exactly sized field slice,
// small integers (boxed without allocating up to 255), constant strings.
func (c *conn) emit(frame, resp []byte, h *Header, req *Request, fc, ex uint8, drop string) {
	// The request is counted, and volume control decides on the function code (it keeps
	// writes): the fields are built only for an event it keeps.
	if c.sess.RequestSkip(FuncName(fc), ex != 0 || drop != "", evRequest, frame, resp, protocols.F("function_code", fc)) {
		return
	}
	rng := drop != dropProtocolID && req.HasRange()
	var fa [8]protocols.Field // on the stack: Emit copies the fields into the pooled event
	f := fa[:0]
	f = append(f, protocols.F("unit_id", h.Unit), protocols.F("function_code", fc))
	if rng {
		f = append(f, protocols.F("address", req.Address), protocols.F("quantity", req.Quantity))
		if fc == FuncReadWriteRegisters {
			f = append(f, protocols.F("write_address", req.WriteAddress), protocols.F("write_quantity", req.WriteQuantity))
		}
	}
	if ex != 0 {
		f = append(f, protocols.F("exception", ex))
	}
	if drop != "" {
		f = append(f, protocols.F("no_reply", drop))
	}
	c.sess.Emit(evRequest, frame, resp, f...)
}

// exec runs a validated request against slave sl, appending the reply PDU to c.out, or
// returns the exception code to answer instead.
func (c *conn) exec(sl *slave, r *Request, pdu []byte) uint8 {
	db := c.db
	if db == nil {
		return ExServerFailure
	}
	addr, qty := int(r.Address), int(r.Quantity)
	var err error
	switch r.Function {
	case FuncReadCoils, FuncReadDiscreteInputs:
		t := coils
		if r.Function == FuncReadDiscreteInputs {
			t = discreteInputs
		}
		b := sl.find(t, addr, qty)
		if b == nil {
			return ExIllegalAddress
		}
		c.out = append(c.out, r.Function)
		c.out, err = appendBits(c.out, db, b, addr, qty)
	case FuncReadHoldingRegisters, FuncReadInputRegisters:
		t := holdingRegisters
		if r.Function == FuncReadInputRegisters {
			t = inputRegisters
		}
		b := sl.find(t, addr, qty)
		if b == nil {
			return ExIllegalAddress
		}
		c.out = append(c.out, r.Function)
		c.out, err = appendRegisters(c.out, db, b, addr, qty)
	case FuncWriteSingleCoil:
		b := sl.find(coils, addr, 1)
		if b == nil {
			return ExIllegalAddress
		}
		on := r.Value == coilOn
		err = writeBits(db, b, addr, 1, func(int) bool { return on })
		c.out = append(c.out, pdu...)
	case FuncWriteMultipleCoils:
		b := sl.find(coils, addr, qty)
		if b == nil {
			return ExIllegalAddress
		}
		data := r.Data
		err = writeBits(db, b, addr, qty, func(i int) bool { return BitAt(data, i) })
		c.out = append(c.out, pdu[:5]...)
	case FuncWriteSingleRegister:
		b := sl.find(holdingRegisters, addr, 1)
		if b == nil {
			return ExIllegalAddress
		}
		err = writeRegisters(db, b, addr, pdu[3:5])
		c.out = append(c.out, pdu...)
	case FuncWriteMultipleRegisters:
		b := sl.find(holdingRegisters, addr, qty)
		if b == nil {
			return ExIllegalAddress
		}
		err = writeRegisters(db, b, addr, r.Data)
		c.out = append(c.out, pdu[:5]...)
	case FuncMaskWriteRegister:
		b := sl.find(holdingRegisters, addr, 1)
		if b == nil {
			return ExIllegalAddress
		}
		err = maskWrite(db, b, addr, r.Value, r.OrMask)
		c.out = append(c.out, pdu...)
	case FuncReadWriteRegisters:
		wb := sl.find(holdingRegisters, int(r.WriteAddress), int(r.WriteQuantity))
		rb := sl.find(holdingRegisters, addr, qty)
		if wb == nil || rb == nil {
			return ExIllegalAddress
		}
		if err = writeRegisters(db, wb, int(r.WriteAddress), r.Data); err == nil {
			c.out = append(c.out, r.Function)
			c.out, err = appendRegisters(c.out, db, rb, addr, qty)
		}
	case FuncDiagnostics:
		c.out = append(c.out, pdu...) // sub-function 0: return query data
	case FuncReportServerID:
		return c.reportServerID(sl)
	case FuncEncapsulatedInterface:
		if sl.info == nil {
			return ExIllegalFunction
		}
		c.objs = c.objs[:0]
		for _, o := range sl.info.objects {
			c.objs = append(c.objs, DeviceObject{ID: o.id, Value: []byte(o.get(db))})
		}
		var ex uint8
		start := r.ObjectID
		if c.svc.cfg.addressing == literal && r.DevIDCode != 4 {
			start = 0 // Conpot (modbus-tk) streams every object whatever the start object
		}
		c.out, ex = AppendDeviceID(c.out, r.DevIDCode, start, c.objs)
		return ex
	default:
		return ExIllegalFunction
	}
	if err != nil {
		c.log().Warn("modbus: databus", "err", err)
		return ExServerFailure
	}
	return 0
}

// reportServerID appends the FC 17 reply: byte count, server id, run indicator (0xFF ON)
// and the device's additional data.
func (c *conn) reportServerID(sl *slave) uint8 {
	if sl.info == nil {
		return ExIllegalFunction
	}
	id := sl.info.serverID
	if id < 0 {
		id = int(sl.id)
	}
	data := sl.info.serverData.get(c.db)
	if len(data) > MaxPDU-4 {
		data = data[:MaxPDU-4]
	}
	c.out = append(c.out, FuncReportServerID, byte(2+len(data)), byte(id), 0xFF)
	c.out = append(c.out, data...)
	return 0
}
