package clone

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
)

func init() { register(s7Prober{}) }

// s7TSAPs are the called TSAPs tried, in order: PG connections to rack 0 slots 2, 1, 3
// and 0, an OP and a basic connection to slot 2.
var s7TSAPs = []uint16{0x0102, 0x0101, 0x0103, 0x0100, 0x0202, 0x0302}

// s7SZLs are the lists read (id, index), when the SZL list names them.
var s7SZLs = [][2]uint16{{0x0011, 0}, {0x001C, 0}, {0x0131, 1}, {0x0232, 4}, {0x0424, 0}}

type s7Prober struct{}

func (s7Prober) Name() string     { return "s7comm" }
func (s7Prober) DefaultPort() int { return 102 }

type s7Client struct {
	p    *Probe
	conn net.Conn
	ref  uint16
	pdu  int
	amq  int
}

func (c *s7Client) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

func (c *s7Client) send(payload []byte) error {
	frame := binary.BigEndian.AppendUint16([]byte{3, 0}, uint16(4+len(payload)))
	c.conn.SetDeadline(c.p.Deadline())
	_, err := c.conn.Write(append(frame, payload...))
	return err
}

// recv reads one TPKT frame's payload (at most 8 KiB).
func (c *s7Client) recv() ([]byte, error) {
	var h [4]byte
	c.conn.SetDeadline(c.p.Deadline())
	if _, err := io.ReadFull(c.conn, h[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(h[2:]))
	if h[0] != 3 || n < 7 || n > 8192 {
		return nil, fmt.Errorf("s7comm: not a TPKT frame (% x)", h)
	}
	b := make([]byte, n-4)
	_, err := io.ReadFull(c.conn, b)
	return b, err
}

// connect opens a COTP connection to the called TSAP dst.
func (c *s7Client) connect(ctx context.Context, dst uint16) (bool, error) {
	c.close()
	if err := c.p.Request(ctx); err != nil {
		return false, err
	}
	d := net.Dialer{Timeout: c.p.Opts.Timeout}
	conn, err := d.DialContext(ctx, "tcp", c.p.Addr())
	if err != nil {
		return false, err
	}
	c.conn = conn
	cr := []byte{17, 0xE0, 0, 0, 0, 1, 0, 0xC1, 2, 0x01, 0x00, 0xC2, 2, byte(dst >> 8), byte(dst), 0xC0, 1, 0x0A}
	if err := c.send(cr); err != nil {
		return false, err
	}
	b, err := c.recv()
	if err != nil {
		c.close()
		return false, nil // a device that drops the connection refuses the TSAP
	}
	if len(b) < 2 || b[1]&0xF0 != 0xD0 {
		c.close()
		return false, nil
	}
	return true, nil
}

// exchange sends one S7 PDU in a COTP DT and returns the S7 PDU answered.
func (c *s7Client) exchange(ctx context.Context, pdu []byte) ([]byte, error) {
	if err := c.p.Request(ctx); err != nil {
		return nil, err
	}
	if err := c.send(append([]byte{2, 0xF0, 0x80}, pdu...)); err != nil {
		return nil, err
	}
	var out []byte
	for len(out) < 16384 {
		b, err := c.recv()
		if err != nil {
			return nil, err
		}
		if len(b) < 3 || b[1] != 0xF0 {
			return nil, fmt.Errorf("s7comm: not a COTP DT (% x)", b[:min(len(b), 3)])
		}
		out = append(out, b[3:]...)
		if b[2]&0x80 != 0 {
			return out, nil
		}
	}
	return nil, errors.New("s7comm: answer over 16 KiB")
}

func (c *s7Client) header(typ byte, param, data []byte) []byte {
	c.ref++
	h := []byte{0x32, typ, 0, 0, byte(c.ref >> 8), byte(c.ref), byte(len(param) >> 8), byte(len(param)), byte(len(data) >> 8), byte(len(data))}
	return append(append(h, param...), data...)
}

// setup negotiates the PDU size and AmQ.
func (c *s7Client) setup(ctx context.Context) error {
	resp, err := c.exchange(ctx, c.header(1, []byte{0xF0, 0, 0, 8, 0, 8, 0x03, 0xC0}, nil))
	if err != nil {
		return err
	}
	if len(resp) < 20 || resp[0] != 0x32 || resp[1] != 3 {
		return fmt.Errorf("s7comm: setup answered % x", resp[:min(len(resp), 12)])
	}
	if resp[10] != 0 || resp[11] != 0 {
		return fmt.Errorf("s7comm: setup refused: error %02x%02x", resp[10], resp[11])
	}
	c.amq = int(binary.BigEndian.Uint16(resp[14:]))
	c.pdu = int(binary.BigEndian.Uint16(resp[18:]))
	return nil
}

// errSZL is an SZL the CPU refused.
type errSZL uint16

func (e errSZL) Error() string { return fmt.Sprintf("refused: error %#04x", uint16(e)) }

// readSZL reads one SZL (id, index) with its follow-up fragments and returns the record
// length and the records.
func (c *s7Client) readSZL(ctx context.Context, id, idx uint16) (int, []byte, error) {
	param := []byte{0, 1, 0x12, 4, 0x11, 0x44, 0x01, 0}
	data := []byte{0xFF, 0x09, 0, 4, byte(id >> 8), byte(id), byte(idx >> 8), byte(idx)}
	var all []byte
	recLen := 0
	for frag := 0; frag < 16; frag++ {
		resp, err := c.exchange(ctx, c.header(7, param, data))
		if err != nil {
			return 0, nil, err
		}
		if len(resp) < 10 || resp[0] != 0x32 || resp[1] != 7 {
			return 0, nil, errors.New("s7comm: not a userdata answer")
		}
		pl, dl := int(binary.BigEndian.Uint16(resp[6:])), int(binary.BigEndian.Uint16(resp[8:]))
		if len(resp) < 10+pl+dl || pl < 12 {
			return 0, nil, errors.New("s7comm: short userdata answer")
		}
		p := resp[10 : 10+pl]
		d := resp[10+pl : 10+pl+dl]
		if code := binary.BigEndian.Uint16(p[10:]); code != 0 {
			return 0, nil, errSZL(code)
		}
		if len(d) < 4 || d[0] != 0xFF {
			return 0, nil, errSZL(0)
		}
		body := d[4:]
		if frag == 0 {
			if len(body) < 8 {
				return 0, nil, errors.New("s7comm: short SZL header")
			}
			recLen = int(binary.BigEndian.Uint16(body[4:]))
			body = body[8:]
		}
		all = append(all, body...)
		if p[9] == 0 { // last data unit
			break
		}
		// Fetch the next fragment with the data unit reference.
		param = []byte{0, 1, 0x12, 8, 0x12, 0x44, 0x01, p[7], p[8], 0, 0, 0}
		data = []byte{0x0A, 0, 0, 0}
	}
	return recLen, all, nil
}

func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return strings.TrimRight(string(b), " ")
}

// s7Records1C names the component identification records.
var s7Records1C = map[uint16]string{1: "system_name", 2: "module_name", 3: "plant_ident", 4: "copyright", 5: "serial",
	7: "module_type_name", 8: "memory_card_serial", 0x0A: "oem_id", 0x0B: "location"}

func (s7Prober) Probe(ctx context.Context, p *Probe) error {
	c := &s7Client{p: p}
	defer c.close()
	rep, tpl := p.Report, p.Template
	var working []uint16
	for _, t := range s7TSAPs {
		ok, err := c.connect(ctx, t)
		if err != nil {
			if len(working) == 0 && !errors.Is(err, ErrBudget) && ctx.Err() == nil {
				return fmt.Errorf("%w: %v", ErrAbsent, err)
			}
			return err
		}
		if ok {
			working = append(working, t)
		}
	}
	if len(working) == 0 {
		return fmt.Errorf("%w: no TSAP of %04x accepted", ErrAbsent, s7TSAPs)
	}
	for _, t := range working {
		rep.Find("called TSAP %04X accepted", t)
	}
	for _, t := range s7TSAPs {
		if !slices.Contains(working, t) {
			rep.Refuse("called TSAP %04X", t)
		}
	}
	if ok, err := c.connect(ctx, working[0]); err != nil || !ok {
		return fmt.Errorf("s7comm: reconnect to TSAP %04X: %v", working[0], err)
	}
	if err := c.setup(ctx); err != nil {
		return err
	}
	rep.Find("PDU size %d, AmQ %d", c.pdu, c.amq)
	ids := map[uint16]bool{}
	if _, list, err := c.readSZL(ctx, 0, 0); err == nil {
		for i := 0; i+1 < len(list); i += 2 {
			ids[binary.BigEndian.Uint16(list[i:])] = true
		}
		rep.Find("SZL list: %d ids", len(ids))
	} else {
		rep.Refuse("SZL 0x0000: %v", err)
	}
	var cpu strings.Builder
	slot := working[0] & 0x1F
	rack := (working[0] & 0xFF) >> 5
	fmt.Fprintf(&cpu, "        <rack>%d</rack>\n        <slot>%d</slot>\n        <pdu_size>%d</pdu_size>\n        <max_amq>%d</max_amq>\n",
		rack, slot, max(240, min(960, c.pdu)), max(1, c.amq))
	var ssl11, ssl1C strings.Builder
	for _, q := range s7SZLs {
		id, idx := q[0], q[1]
		if len(ids) > 0 && !ids[id] && !ids[id&0x00FF] {
			rep.Skip("SZL %#04x: not in the SZL list", id)
			continue
		}
		recLen, recs, err := c.readSZL(ctx, id, idx)
		if err != nil {
			var ez errSZL
			if errors.As(err, &ez) {
				rep.Refuse("SZL %#04x index %#04x: %v", id, idx, err)
				continue
			}
			return err
		}
		rep.Find("SZL %#04x index %#04x: %d bytes", id, idx, len(recs))
		if recLen <= 0 {
			continue
		}
		for i := 0; i+recLen <= len(recs); i += recLen {
			r := recs[i : i+recLen]
			switch id {
			case 0x0011:
				s7Record11(p, r, &ssl11, &cpu)
			case 0x001C:
				s7Record1C(p, r, &ssl1C)
			case 0x0131:
				if len(r) >= 14 {
					fmt.Fprintf(&cpu, "        <max_connections>%d</max_connections>\n        <mpi_rate>%d</mpi_rate>\n        <bus_rate>%d</bus_rate>\n",
						binary.BigEndian.Uint16(r[4:]), binary.BigEndian.Uint32(r[6:]), binary.BigEndian.Uint32(r[10:]))
				}
			case 0x0232:
				if len(r) >= 10 {
					level := binary.BigEndian.Uint16(r[6:])
					sw := map[uint16]string{1: "RUN", 2: "RUN-P", 3: "STOP"}[binary.BigEndian.Uint16(r[8:])]
					fmt.Fprintf(&cpu, "        <protection_level>%d</protection_level>\n", max(1, min(3, level)))
					if sw != "" {
						fmt.Fprintf(&cpu, "        <mode_switch>%s</mode_switch>\n", sw)
					}
					rep.Find("protection level %d, mode switch %s", level, sw)
				}
			case 0x0424:
				if len(r) >= 4 {
					mode := map[byte]string{0x08: "RUN", 0x04: "STOP"}[r[3]]
					if mode != "" {
						fmt.Fprintf(&cpu, "        <operating_mode>%s</operating_mode>\n", mode)
						rep.Find("operating mode %s", mode)
					}
				}
			}
		}
	}
	var blocksXML, memXML string
	{
		x, list, err := c.blocks(ctx, p)
		switch {
		case err == nil:
			blocksXML = x
			if memXML, err = c.dbAreas(ctx, p, list); err != nil {
				if errors.Is(err, ErrBudget) || ctx.Err() != nil {
					return err
				}
				rep.Refuse("DB reads: %v", err)
			}
		case errors.Is(err, ErrBudget) || ctx.Err() != nil:
			return err
		default: // the identity is cloned: a device that fails here keeps it
			rep.Refuse("block functions: %v", err)
		}
	}
	rep.Skip("the password: the cloner sends none")
	var b strings.Builder
	b.WriteString("    <system_status_lists>\n")
	if ssl1C.Len() > 0 {
		b.WriteString("        <ssl id=\"W#16#xy1C\" name=\"Component Identification\">\n" + ssl1C.String() + "        </ssl>\n")
	}
	if ssl11.Len() > 0 {
		b.WriteString("        <ssl id=\"W#16#xy11\" name=\"Module Identification\">\n" + ssl11.String() + "        </ssl>\n")
	}
	b.WriteString("    </system_status_lists>\n    <cpu>\n" + cpu.String() + "    </cpu>\n" + memXML + blocksXML)
	tpl.Section("s7comm", 102, b.String())
	return nil
}

// s7Record11 adds one module identification record: index, MLFB (20), BGTyp, Ausbg, Ausbe.
func s7Record11(p *Probe, r []byte, ssl, cpu *strings.Builder) {
	if len(r) < 28 {
		return
	}
	tpl := p.Template
	idx := binary.BigEndian.Uint16(r)
	mlfb := strings.TrimSpace(string(bytes.TrimRight(r[2:22], "\x00")))
	bgtyp, ausbg, ausbe := binary.BigEndian.Uint16(r[22:]), binary.BigEndian.Uint16(r[24:]), binary.BigEndian.Uint16(r[26:])
	switch idx {
	case 1:
		k := tpl.Literal("OrderNumber", mlfb)
		fmt.Fprintf(ssl, "            <module_identification id=\"W#16#0001\">%s</module_identification>\n", k)
		fmt.Fprintf(cpu, "        <module_type>W#16#%04X</module_type>\n", bgtyp)
		p.Report.Find("order number %s, module type %#04x", mlfb, bgtyp)
	case 6:
		k := tpl.Literal("HardwareVersion", fmt.Sprint(ausbe))
		fmt.Fprintf(ssl, "            <hardware_identification id=\"W#16#0006\">%s</hardware_identification>\n", k)
		p.Report.Find("hardware release %d", ausbe)
	case 7:
		v := fmt.Sprintf("V%d.%d.%d", ausbg&0xFF, ausbe>>8, ausbe&0xFF)
		k := tpl.Literal("FirmwareVersion", v)
		fmt.Fprintf(ssl, "            <firmware_identification id=\"W#16#0007\">%s</firmware_identification>\n", k)
		p.Report.Find("firmware %s", v)
	default:
		p.Report.Skip("SZL 0x0011 record %#04x", idx)
	}
}

// s7Record1C adds one component identification record: index and text.
func s7Record1C(p *Probe, r []byte, ssl *strings.Builder) {
	if len(r) < 4 {
		return
	}
	tpl := p.Template
	idx := binary.BigEndian.Uint16(r)
	name, ok := s7Records1C[idx]
	if !ok {
		if idx != 9 { // 0x0009 (manufacturer and profile) is fixed in the agent
			p.Report.Skip("SZL 0x001C record %#04x", idx)
		}
		return
	}
	text := cString(r[2:])
	if idx == 0x0A && len(r) >= 22 {
		text = cString(r[2:22])
	}
	var k string
	switch {
	case idx == 5 || idx == 8:
		if text != "" {
			k = tpl.Seed(KindSerial, "s7comm", "SZL 0x001C "+name, text)
		}
	case idx == 1:
		if text != "" {
			k = tpl.Seed(KindHostname, "s7comm", "SZL 0x001C "+name, text)
		}
	default:
		if sk, seeded := tpl.SeededKey(text); seeded && text != "" {
			k = sk
		}
	}
	if k == "" {
		k = tpl.Literal("s7_"+name, text)
	}
	fmt.Fprintf(ssl, "            <%s id=\"W#16#%04X\">%s</%s>\n", name, idx, k, name)
	p.Report.Find("%s: %q", name, text)
	switch idx {
	case 2:
		if tpl.Unit == "" {
			tpl.Unit = text
		}
	case 4:
		if tpl.Vendor == "" && strings.Contains(text, "Siemens") {
			tpl.Vendor = "Siemens"
		}
	}
}
