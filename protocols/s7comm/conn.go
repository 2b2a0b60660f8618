package s7comm

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"

	"github.com/icsnare/icsnare/protocols"
)

// conn is one ISO-on-TCP connection.
type conn struct {
	ctx  context.Context
	svc  *service
	cfg  *config
	s    *protocols.Session
	nc   net.Conn
	rd   *bufio.Reader // over nc: a frame's header and body come with one read
	host *protocols.Host
	cpu  *cpuState

	connected bool
	tpdu      int    // negotiated TPDU size in bytes
	peerRef   uint16 // the client's source reference
	ourRef    uint16
	pdu       uint16 // negotiated S7 PDU size
	amq       uint16
	setup     bool
	legit     bool // a correct password was given on this connection
	seq       byte
	duRef     byte
	frag      *fragment
	errors    int

	rbuf    []byte
	dt      []byte // DT user data being reassembled
	dtRaw   []byte // the frames that carried it
	out     []byte
	pending []byte  // the answer not yet written: it goes out once its event is emitted
	pduBuf  []byte  // scratch: the S7 PDU of an answer before its framing
	data    []byte  // scratch: a Read Var answer's data items
	area    []byte  // scratch: one item's bytes
	mem     *memory // the host's memory, once a Read Var needed it
	param   []byte  // scratch: an answer's parameter
	items   []VarItem
	// itemFields is scratch for a Read Var's items field, cloned for an event that is kept.
	itemFields itemFields
}

// fragment is the rest of a userdata answer that did not fit one PDU.
type fragment struct {
	seq, duRef byte
	rest       []byte
	recLen     int
	id, index  uint16
}

func (c *conn) run(ctx context.Context) {
	for ctx.Err() == nil {
		tpdu, frame, err := ReadTPKT(c.rd, c.rbuf, maxFrame)
		c.rbuf = frame[:0]
		if err != nil {
			if errors.Is(err, ErrTPKT) {
				c.emit("error", "malformed", true, frame, nil, protocols.F("error", err.Error()))
			} else if len(frame) > 0 && !errors.Is(err, io.EOF) && !errors.Is(err, os.ErrDeadlineExceeded) {
				c.emit("error", "malformed", true, frame, nil, protocols.F("error", err.Error()))
			}
			return
		}
		ok := c.handleTPDU(tpdu, frame)
		c.flush()
		if !ok {
			return
		}
	}
}

// handleTPDU processes one COTP TPDU; false ends the connection.
func (c *conn) handleTPDU(b, frame []byte) bool {
	t, err := ParseCOTP(b)
	if err != nil {
		cause := byte(RejectParamValue)
		if len(b) >= 2 {
			if _, ok := fixedLen(t.Code); !ok {
				cause = RejectTPDUType
			}
		}
		return c.reject(cause, t.Header, frame, err)
	}
	switch t.Code {
	case CodeCR:
		if c.connected {
			return c.reject(RejectTPDUType, t.Header, frame, errors.New("connection request on an open connection"))
		}
		return c.handleCR(&t, frame)
	case CodeDT:
		if !c.connected {
			return c.reject(RejectTPDUType, t.Header, frame, errors.New("data before connection"))
		}
		if t.EOT && len(c.dt) == 0 { // a PDU in one TPDU, as clients send them: no reassembly copy
			return c.handleS7(t.Data, frame)
		}
		if len(c.dt)+len(t.Data) > maxReassembly {
			c.emit("error", "malformed", true, frame, nil, protocols.F("error", "segmented PDU above 8192 bytes"))
			return false
		}
		c.dt = append(c.dt, t.Data...)
		c.dtRaw = append(c.dtRaw, frame...)
		if !t.EOT {
			return true
		}
		req := c.dtRaw
		if len(req) == len(frame) {
			req = frame
		}
		ok := c.handleS7(c.dt, req)
		c.dt, c.dtRaw = c.dt[:0], c.dtRaw[:0]
		return ok
	case CodeDR:
		dc := TPDU{Code: CodeDC, DstRef: t.SrcRef, SrcRef: c.ourRef}
		resp := c.sendTPDU(&dc)
		c.emit("disconnect", "disconnect", false, frame, resp, protocols.F("reason", int(t.Reason)))
		return false
	case CodeER:
		c.emit("error", "malformed", true, frame, nil, protocols.F("error", fmt.Sprintf("peer sent TPDU error, cause 0x%02x", t.Reason)))
		return false
	default: // CC, DC: not something a client sends
		return c.reject(RejectTPDUType, t.Header, frame, fmt.Errorf("unexpected TPDU 0x%02x", t.Code))
	}
}

// reject answers a bad TPDU with a COTP ER naming the offending header.
func (c *conn) reject(cause byte, header, frame []byte, err error) bool {
	c.errors++
	inv := header
	if len(inv) > 32 {
		inv = inv[:32]
	}
	if len(inv) == 0 && len(frame) > tpktHeaderLen {
		inv = frame[tpktHeaderLen:min(len(frame), tpktHeaderLen+8)]
	}
	er := TPDU{Code: CodeER, DstRef: c.peerRef, Reason: cause, Params: []Param{{Code: ParamInvalidTPD, Value: inv}}}
	resp := c.sendTPDU(&er)
	c.emit("error", "malformed", true, frame, resp, protocols.F("error", err.Error()), protocols.F("reject_cause", int(cause)))
	return c.connected && c.errors < maxErrors
}

// handleCR answers a connection request: CC when the called TSAP names this CPU's rack and
// slot, DR otherwise.
func (c *conn) handleCR(t *TPDU, frame []byte) bool {
	calling, okCalling := t.TSAP(ParamCallingTS)
	called, okCalled := t.TSAP(ParamCalledTS)
	fields := []protocols.Field{
		protocols.F("calling_tsap", fmt.Sprintf("%04X", calling)),
		protocols.F("called_tsap", fmt.Sprintf("%04X", called)),
		protocols.F("src_ref", int(t.SrcRef)),
	}
	rack, slot := int(called&0xFF)>>5, int(called&0x1F)
	connType := called >> 8
	accept := okCalling && okCalled && rack == c.cfg.Rack && slot == c.cfg.Slot &&
		(connType == 0x01 || connType == 0x02 || connType == 0x03 || connType >= 0x10 && connType <= 0x1F)
	fields = append(fields, protocols.F("rack", rack), protocols.F("slot", slot))
	if !accept {
		dr := TPDU{Code: CodeDR, DstRef: t.SrcRef, SrcRef: 0, Reason: ReasonAddrUnknown}
		resp := c.sendTPDU(&dr)
		c.emit("connect", "refused", true, frame, resp, append(fields, protocols.F("accepted", false))...)
		return false
	}
	code := byte(defaultTPDUSizeCod)
	if v, ok := t.Param(ParamTPDUSize); ok {
		code = min(v[0], c.cfg.MaxTPDUCode)
	}
	c.tpdu = TPDUSize(code)
	c.peerRef = t.SrcRef
	c.ourRef = uint16(c.cpu.ref.Add(1))
	if c.ourRef == 0 {
		c.ourRef = uint16(c.cpu.ref.Add(1))
	}
	cc := TPDU{Code: CodeCC, DstRef: t.SrcRef, SrcRef: c.ourRef, Class: 0}
	if _, ok := t.Param(ParamTPDUSize); ok {
		cc.Params = append(cc.Params, Param{Code: ParamTPDUSize, Value: []byte{code}})
	}
	cv, _ := t.Param(ParamCallingTS)
	dv, _ := t.Param(ParamCalledTS)
	cc.Params = append(cc.Params, Param{Code: ParamCallingTS, Value: cv}, Param{Code: ParamCalledTS, Value: dv})
	resp := c.sendTPDU(&cc)
	c.connected = true
	c.emit("connect", "connect", false, frame, resp, append(fields, protocols.F("accepted", true), protocols.F("tpdu_size", c.tpdu))...)
	return true
}

// sendTPDU writes one non-DT TPDU and returns the bytes written.
func (c *conn) sendTPDU(t *TPDU) []byte {
	body := t.Append(nil)
	out := AppendTPKT(make([]byte, 0, len(body)+tpktHeaderLen), len(body))
	out = append(out, body...)
	c.flush()
	c.pending = out
	return out
}

// sendS7 writes an S7 PDU in as many DT TPDUs as the TPDU size requires and returns the
// bytes written.
func (c *conn) sendS7(pdu []byte) []byte {
	c.flush() // c.out is reused below
	out := c.out[:0]
	chunk := max(c.tpdu-3, 16)
	for first := true; first || len(pdu) > 0; first = false {
		n := min(len(pdu), chunk)
		dt := TPDU{Code: CodeDT, EOT: n == len(pdu), Data: pdu[:n]}
		out = AppendTPKT(out, 3+n)
		out = dt.Append(out)
		pdu = pdu[n:]
	}
	c.out = out
	c.pending = out
	return out
}

// flush writes the pending answer, once the CPU's answer latency has passed.
func (c *conn) flush() {
	if len(c.pending) > 0 {
		if t := c.cfg.Timing; t != nil && c.ctx != nil {
			ok, done := t.Wait(c.ctx, c.host, timingKey)
			defer done()
			if !ok {
				c.pending = nil
				return
			}
		}
		c.nc.Write(c.pending)
		c.pending = nil
	}
}

// timingKey keeps a host's draw of the timing model.
const timingKey = "s7comm.timing"

// emit sends one event, counts one request and then writes the answer, so whoever reads
// the answer finds the request's event already emitted.
func (c *conn) emit(typ, kind string, failed bool, req, resp []byte, fields ...protocols.Field) {
	c.note(kind, failed)
	c.send(typ, req, resp, fields...)
}

// note counts one request of kind; volume control keeps all but reads (writes, PLC
// control, set-up, errors).
func (c *conn) note(kind string, failed bool) {
	c.s.Request(kind, failed)
	c.s.NotableIf(kind != "read")
}

// send emits the event of the request note counted, then writes the answer.
func (c *conn) send(typ string, req, resp []byte, fields ...protocols.Field) {
	c.s.Emit(typ, req, resp, fields...)
	c.flush()
}
