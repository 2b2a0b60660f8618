package s7comm

import (
	"encoding/binary"
	"net"
	"testing"
	"time"
)

// client is a minimal S7 client that frames requests the way snap7 and plcscan do.
type client struct {
	t   testing.TB
	c   net.Conn
	ref uint16
}

func dial(t testing.TB, addr string) *client {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{t: t, c: c}
}

func (c *client) send(tpdu []byte) {
	c.t.Helper()
	out := AppendTPKT(nil, len(tpdu))
	out = append(out, tpdu...)
	c.c.SetWriteDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.c.Write(out); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// recvTPDU reads one TPKT frame and decodes its COTP TPDU.
func (c *client) recvTPDU() (TPDU, []byte) {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(3 * time.Second))
	b, frame, err := ReadTPKT(c.c, nil, 65535)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	t, err := ParseCOTP(b)
	if err != nil {
		c.t.Fatalf("COTP answer % x: %v", frame, err)
	}
	return t, append([]byte(nil), frame...)
}

// connect sends a CR with the given TSAPs (2 bytes each) and TPDU size code.
func (c *client) connect(src, dst uint16, tpdu byte) TPDU {
	c.t.Helper()
	cr := TPDU{Code: CodeCR, SrcRef: 0x0014, Params: []Param{
		{Code: ParamCallingTS, Value: []byte{byte(src >> 8), byte(src)}},
		{Code: ParamCalledTS, Value: []byte{byte(dst >> 8), byte(dst)}},
	}}
	if tpdu != 0 {
		cr.Params = append(cr.Params, Param{Code: ParamTPDUSize, Value: []byte{tpdu}})
	}
	c.send(cr.Append(nil))
	t, _ := c.recvTPDU()
	return t
}

// sendS7 sends one S7 PDU in a single DT TPDU.
func (c *client) sendS7(p *PDU) {
	c.t.Helper()
	c.ref++
	p.PDURef = c.ref
	dt := TPDU{Code: CodeDT, EOT: true, Data: p.Append(nil)}
	c.send(dt.Append(nil))
}

// recvS7 reads DT TPDUs up to EOT and decodes the S7 PDU.
func (c *client) recvS7() PDU {
	c.t.Helper()
	var data []byte
	for {
		t, frame := c.recvTPDU()
		if t.Code != CodeDT {
			c.t.Fatalf("expected DT, got % x", frame)
		}
		data = append(data, t.Data...)
		if t.EOT {
			break
		}
	}
	p, err := ParsePDU(data)
	if err != nil {
		c.t.Fatalf("S7 answer % x: %v", data, err)
	}
	if p.PDURef != c.ref {
		c.t.Fatalf("PDU reference %d, sent %d", p.PDURef, c.ref)
	}
	return p
}

func (c *client) job(param, data []byte) PDU {
	c.t.Helper()
	c.sendS7(&PDU{Header: Header{ROSCTR: ROSCTRJob}, Param: param, Data: data})
	return c.recvS7()
}

func (c *client) setup(pdu uint16) Setup {
	c.t.Helper()
	p := c.job(Setup{AmqCalling: 1, AmqCalled: 1, PDUSize: pdu}.Append(nil), nil)
	if p.ROSCTR != ROSCTRAckData || p.ErrClass != 0 {
		c.t.Fatalf("setup answer: %+v", p.Header)
	}
	s, err := ParseSetup(p.Param)
	if err != nil {
		c.t.Fatal(err)
	}
	return s
}

// userdata sends a userdata request and returns the answer's parameter and data.
func (c *client) userdata(u UDParam, d []byte) (UDParam, UDData) {
	c.t.Helper()
	u.Method, u.Type = udMethodReq, UDTypeReq
	c.sendS7(&PDU{Header: Header{ROSCTR: ROSCTRUserdata}, Param: u.Append(nil), Data: d})
	p := c.recvS7()
	if p.ROSCTR != ROSCTRUserdata {
		c.t.Fatalf("userdata answer ROSCTR %d", p.ROSCTR)
	}
	rp, err := ParseUDParam(p.Param)
	if err != nil || !rp.Long || rp.Method != udMethodRes || rp.Type != UDTypeRes || rp.Group != u.Group || rp.Sub != u.Sub {
		c.t.Fatalf("userdata answer parameter % x: %+v %v", p.Param, rp, err)
	}
	rd, err := ParseUDData(p.Data)
	if err != nil {
		c.t.Fatal(err)
	}
	return rp, rd
}

// readSZL reads a whole SZL, following fragments the way snap7 does. It returns the SZL
// payload (header and records) or the error code.
func (c *client) readSZL(id, idx uint16) ([]byte, uint16, int) {
	c.t.Helper()
	req := binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, id), idx)
	rp, rd := c.userdata(UDParam{Group: GroupCPU, Sub: SubReadSZL}, UDData{RC: RCSuccess, TS: DTSOctets, Payload: req}.Append(nil))
	if rp.ErrCode != 0 {
		if rd.RC != RCObjectNotExist || len(rd.Payload) != 0 {
			c.t.Fatalf("error answer data: %+v", rd)
		}
		return nil, rp.ErrCode, 1
	}
	out := append([]byte(nil), rd.Payload...)
	parts := 1
	for rp.LastDU != 0 {
		if rp.DURef == 0 {
			c.t.Fatalf("fragment without data unit reference")
		}
		rp, rd = c.userdata(UDParam{Group: GroupCPU, Sub: SubReadSZL, Seq: rp.Seq, Long: true}, UDData{RC: RCObjectNotExist}.Append(nil))
		if rp.ErrCode != 0 || rd.RC != RCSuccess {
			c.t.Fatalf("follow-up answer: %+v %+v", rp, rd)
		}
		out = append(out, rd.Payload...)
		parts++
		if parts > 16 {
			c.t.Fatal("endless fragments")
		}
	}
	return out, 0, parts
}

func (c *client) readVar(items ...VarItem) PDU {
	c.t.Helper()
	param := []byte{FuncReadVar, byte(len(items))}
	for _, it := range items {
		param = AppendVarItem(param, it)
	}
	return c.job(param, nil)
}

func (c *client) writeVar(items []VarItem, vals []DataItem) PDU {
	c.t.Helper()
	param := []byte{FuncWriteVar, byte(len(items))}
	for _, it := range items {
		param = AppendVarItem(param, it)
	}
	var data []byte
	for i, v := range vals {
		data = AppendDataItem(data, v, i < len(vals)-1)
	}
	return c.job(param, data)
}

// Stop and start jobs exactly as snap7 sends them.
var (
	jobStop      = append([]byte{0x29, 0, 0, 0, 0, 0, 9}, "P_PROGRAM"...)
	jobHotStart  = append([]byte{0x28, 0, 0, 0, 0, 0, 0, 0xFD, 0, 0, 9}, "P_PROGRAM"...)
	jobColdStart = append([]byte{0x28, 0, 0, 0, 0, 0, 0, 0xFD, 0, 2, 'C', ' ', 9}, "P_PROGRAM"...)
)
