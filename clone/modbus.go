package clone

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"strconv"
	"strings"
	"time"
)

func init() { register(modbusProber{}) }

// Modbus scan bounds.
const (
	modbusSpace      = 10000 // wire addresses 0..9999 of each table are scanned
	modbusGiveUp     = 16    // units in a row that do not answer end the unit scan
	modbusMaxDevIDRq = 16    // device identification requests per unit
)

// modbusReadFCs are the only function codes the cloner sends: reads.
var modbusReadFCs = map[byte]bool{1: true, 2: true, 3: true, 4: true, 17: true, 43: true}

type modbusProber struct{}

func (modbusProber) Name() string     { return "modbus" }
func (modbusProber) DefaultPort() int { return 502 }

// errException is a Modbus exception reply.
type errException byte

func (e errException) Error() string { return fmt.Sprintf("exception %#02x", byte(e)) }

// errSilent is a request the device did not answer in time.
var errSilent = errors.New("no answer")

type mbClient struct {
	p    *Probe
	conn net.Conn
	tid  uint16
	buf  [260]byte
}

func (c *mbClient) dial(ctx context.Context) error {
	if c.conn != nil {
		c.conn.Close()
	}
	d := net.Dialer{Timeout: c.p.Opts.Timeout}
	conn, err := d.DialContext(ctx, "tcp", c.p.Addr())
	if err != nil {
		return err
	}
	c.conn = conn
	return nil
}

// call sends one read request (pdu) to unit and returns the reply PDU without the
// function code. It refuses every function code that is not a read.
func (c *mbClient) call(ctx context.Context, unit byte, pdu []byte) ([]byte, error) {
	if len(pdu) == 0 || !modbusReadFCs[pdu[0]] {
		return nil, fmt.Errorf("modbus: refusing to send function %d: the cloner only reads", pdu[0])
	}
	if err := c.p.Request(ctx); err != nil {
		return nil, err
	}
	if c.conn == nil {
		if err := c.dial(ctx); err != nil {
			return nil, err
		}
	}
	c.tid++
	req := make([]byte, 7, 7+len(pdu))
	binary.BigEndian.PutUint16(req[0:], c.tid)
	binary.BigEndian.PutUint16(req[4:], uint16(len(pdu)+1))
	req[6] = unit
	req = append(req, pdu...)
	c.conn.SetDeadline(c.p.Deadline())
	if _, err := c.conn.Write(req); err != nil {
		c.conn.Close()
		c.conn = nil
		return nil, err
	}
	for {
		if _, err := io.ReadFull(c.conn, c.buf[:7]); err != nil {
			c.conn.Close()
			c.conn = nil
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return nil, errSilent
			}
			return nil, err
		}
		n := int(binary.BigEndian.Uint16(c.buf[4:]))
		if n < 2 || n > 254 {
			c.conn.Close()
			c.conn = nil
			return nil, fmt.Errorf("modbus: reply length %d", n)
		}
		if _, err := io.ReadFull(c.conn, c.buf[7:7+n-1]); err != nil {
			c.conn.Close()
			c.conn = nil
			return nil, err
		}
		if binary.BigEndian.Uint16(c.buf[0:]) != c.tid {
			continue // a late reply to an earlier request
		}
		body := c.buf[7 : 7+n-1]
		if body[0] == pdu[0]|0x80 {
			if len(body) < 2 {
				return nil, errors.New("modbus: short exception")
			}
			return nil, errException(body[1])
		}
		if body[0] != pdu[0] {
			return nil, fmt.Errorf("modbus: reply to function %d answers function %d", pdu[0], body[0])
		}
		return append([]byte(nil), body[1:]...), nil
	}
}

// unitAnswers tells whether a unit exists: any reply except the gateway exceptions.
func (c *mbClient) unitAnswers(ctx context.Context, unit byte) (bool, error) {
	_, err := c.call(ctx, unit, []byte{3, 0, 0, 0, 1})
	var ex errException
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &ex):
		// Gateway path / target failures, and the server failure Conpot-like devices give.
		return ex != 0x0A && ex != 0x0B && ex != 0x04, nil
	case errors.Is(err, errSilent):
		return false, nil
	}
	return false, err
}

// modbusTable is one of the four data tables.
type modbusTable struct {
	fc    byte
	name  string // the block type
	key   string
	ref   int // Modicon reference of wire address 0
	chunk int
	bits  bool
}

var modbusTables = []modbusTable{
	{fc: 1, name: "COILS", key: "Coils", ref: 1, chunk: 2000, bits: true},
	{fc: 2, name: "DISCRETE_INPUTS", key: "DiscreteInputs", ref: 10001, chunk: 2000, bits: true},
	{fc: 4, name: "INPUT_REGISTERS", key: "InputRegisters", ref: 30001, chunk: 125},
	{fc: 3, name: "HOLDING_REGISTERS", key: "HoldingRegisters", ref: 40001, chunk: 125},
}

// read reads n items of table t at addr.
func (c *mbClient) read(ctx context.Context, unit byte, t modbusTable, addr, n int) ([]int, error) {
	pdu := []byte{t.fc, byte(addr >> 8), byte(addr), byte(n >> 8), byte(n)}
	body, err := c.call(ctx, unit, pdu)
	if err != nil {
		return nil, err
	}
	if len(body) < 1 || int(body[0]) != len(body)-1 {
		return nil, errors.New("modbus: byte count does not match the reply")
	}
	data := body[1:]
	out := make([]int, 0, n)
	if t.bits {
		if len(data) < (n+7)/8 {
			return nil, errors.New("modbus: short bit reply")
		}
		for i := 0; i < n; i++ {
			out = append(out, int(data[i/8]>>(i%8))&1)
		}
		return out, nil
	}
	if len(data) < 2*n {
		return nil, errors.New("modbus: short register reply")
	}
	for i := 0; i < n; i++ {
		out = append(out, int(binary.BigEndian.Uint16(data[2*i:])))
	}
	return out, nil
}

type modbusBlock struct {
	start  int
	values []int
}

// scanTable finds the readable blocks of one table in wire addresses 0..modbusSpace-1.
// A chunk that fails is narrowed: the readable prefix by bisection, else a block found by
// probing the chunk's middle and last address, its start found by bisection. A block that
// covers none of a chunk's start, middle and end (under a quarter of a chunk) is missed.
func (c *mbClient) scanTable(ctx context.Context, unit byte, t modbusTable) ([]modbusBlock, error) {
	var blocks []modbusBlock
	add := func(addr int, vals []int) {
		if k := len(blocks) - 1; k >= 0 && blocks[k].start+len(blocks[k].values) == addr {
			blocks[k].values = append(blocks[k].values, vals...)
			return
		}
		blocks = append(blocks, modbusBlock{start: addr, values: vals})
	}
	refused := func(err error) bool { var ex errException; return errors.As(err, &ex) }
	for addr := 0; addr < modbusSpace; {
		n := min(t.chunk, modbusSpace-addr)
		vals, err := c.read(ctx, unit, t, addr, n)
		if err == nil {
			add(addr, vals)
			addr += n
			continue
		}
		if !refused(err) {
			return blocks, err
		}
		// The readable prefix at addr: largest m with read(addr, m) ok.
		lo, hi := 0, n
		var best []int
		for lo+1 < hi {
			m := lo + 1
			if best != nil || lo > 0 {
				m = (lo + hi) / 2
			}
			v, err := c.read(ctx, unit, t, addr, m)
			switch {
			case err == nil:
				lo, best = m, v
			case refused(err):
				hi = m
				if m == 1 {
					hi = 1
				}
			default:
				return blocks, err
			}
			if lo == 0 && hi == 1 {
				break
			}
		}
		if lo > 0 {
			add(addr, best)
			addr += lo + 1 // addr+lo was refused
			continue
		}
		// Nothing at addr: is the chunk's middle or tail readable?
		last := -1
		for _, probe := range []int{addr + n/2, addr + n - 1} {
			if probe <= addr {
				continue
			}
			if _, err := c.read(ctx, unit, t, probe, 1); err == nil {
				last = probe
				break
			} else if !refused(err) {
				return blocks, err
			}
		}
		if last < 0 {
			addr += n
			continue
		}
		// Smallest s in (addr, last] with read(s, 1) ok, assuming one block up to last.
		lo, hi = addr, last
		for lo+1 < hi {
			m := (lo + hi) / 2
			if _, err := c.read(ctx, unit, t, m, 1); err == nil {
				hi = m
			} else if refused(err) {
				lo = m
			} else {
				return blocks, err
			}
		}
		addr = hi
	}
	return blocks, nil
}

var modbusObjectNames = []string{"VendorName", "ProductCode", "MajorMinorRevision", "VendorUrl", "ProductName", "ModelName", "UserApplicationName"}

// deviceID reads every device identification object the unit gives (extended, else
// regular, else basic stream access).
func (c *mbClient) deviceID(ctx context.Context, unit byte) (map[int]string, []int, error) {
	var lastErr error
	for code := byte(3); code >= 1; code-- {
		objs := map[int]string{}
		var order []int
		next := byte(0)
		for i := 0; i < modbusMaxDevIDRq; i++ {
			body, err := c.call(ctx, unit, []byte{43, 14, code, next})
			if err != nil {
				lastErr = err
				break
			}
			if len(body) < 6 || body[0] != 14 {
				lastErr = errors.New("malformed device identification reply")
				break
			}
			more, nextID, count := body[3], body[4], int(body[5])
			b := body[6:]
			for j := 0; j < count && len(b) >= 2; j++ {
				id, l := int(b[0]), int(b[1])
				if len(b) < 2+l {
					break
				}
				if _, dup := objs[id]; !dup {
					order = append(order, id)
				}
				objs[id] = string(b[2 : 2+l])
				b = b[2+l:]
			}
			if more != 0xFF || nextID == 0 || nextID <= next {
				lastErr = nil
				break
			}
			next = nextID
		}
		if len(objs) > 0 {
			return objs, order, nil
		}
		var ex errException
		if !errors.As(lastErr, &ex) {
			return nil, nil, lastErr
		}
	}
	return nil, nil, lastErr
}

func (modbusProber) Probe(ctx context.Context, p *Probe) error {
	c := &mbClient{p: p}
	if err := c.dial(ctx); err != nil {
		return fmt.Errorf("%w: %v", ErrAbsent, err)
	}
	defer func() {
		if c.conn != nil {
			c.conn.Close()
		}
	}()
	rep := p.Report
	// Unit ids: a device on TCP answers 255 (and every unit alike); a gateway answers
	// the units behind it and 0x0B or silence for the others.
	var units []int
	mode, unknown := "serial", "silent"
	a255, err := c.unitAnswers(ctx, 255)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrAbsent, err)
	}
	if a255 {
		a1, err1 := c.unitAnswers(ctx, 1)
		a2, err2 := c.unitAnswers(ctx, 2)
		if err := errors.Join(err1, err2); err != nil {
			return err
		}
		mode = "tcp"
		units = []int{255}
		if a1 && a2 {
			// Every unit id reaches the device, so the clone answers them all too
			// (modbus-discover and masters polling unit 1 would otherwise time out).
			unknown = "device"
			rep.Find("the device answers every unit id alike (a direct Modbus/TCP device): cloned as unit 255 in tcp mode, every unit id answered")
		} else {
			if a1 {
				units = append(units, 1)
			}
			if a2 {
				units = append(units, 2)
			}
		}
	} else {
		miss := 0
		for u := 1; u <= 247 && miss < modbusGiveUp; u++ {
			ok, err := c.unitAnswers(ctx, byte(u))
			if err != nil {
				if errors.Is(err, ErrBudget) {
					rep.Skip("units from %d: budget spent", u)
					break
				}
				return err
			}
			if ok {
				units = append(units, u)
				miss = 0
			} else {
				miss++
			}
		}
		if miss >= modbusGiveUp {
			rep.Skip("units %d-247: %d in a row did not answer", len(units)+miss+1, modbusGiveUp)
		}
		// How the gateway answers an absent unit.
		if _, err := c.call(ctx, 248, []byte{3, 0, 0, 0, 1}); err != nil {
			var ex errException
			if errors.As(err, &ex) && (ex == 0x0A || ex == 0x0B) {
				unknown = "exception"
			} else if errors.As(err, &ex) && ex == 0x04 {
				unknown = "failure"
			}
		}
	}
	if len(units) == 0 {
		return fmt.Errorf("%w: no unit id answered", ErrAbsent)
	}
	rep.Find("units %v answer (%s mode, absent units: %s)", units, mode, unknown)
	tpl := p.Template
	var b strings.Builder
	objs, order, err := c.deviceID(ctx, byte(units[0]))
	if err != nil && !isException(err) {
		return err
	}
	if len(objs) > 0 {
		b.WriteString("    <device_info>\n")
		for _, id := range order {
			v := objs[id]
			elem := fmt.Sprintf("Object id=\"0x%02X\"", id)
			name := "Object"
			if id < len(modbusObjectNames) {
				elem, name = modbusObjectNames[id], modbusObjectNames[id]
			}
			if _, ok := tpl.SeededKey(v); ok || id == 6 && v != "" {
				k := tpl.Seed(KindHostname, "modbus", "device identification "+name, v)
				fmt.Fprintf(&b, "        <%s databus=\"%s\"/>\n", elem, k)
			} else if IsPrintable(v) {
				fmt.Fprintf(&b, "        <%s>%s</%s>\n", elem, X(v), name)
			} else {
				fmt.Fprintf(&b, "        <%s databus=\"%s\"/>\n", elem, tpl.Literal("modbus_"+name, v))
			}
			rep.Find("device identification %s: %q", name, v)
		}
		b.WriteString("    </device_info>\n")
		if tpl.Vendor == "" {
			tpl.Vendor = objs[0]
		}
		if tpl.Unit == "" {
			tpl.Unit = strings.TrimSpace(objs[4] + " " + objs[5])
		}
	} else {
		rep.Refuse("device identification (FC 43/14): %v", err)
	}
	// Report Server ID (FC 17): server id, run indicator, additional data.
	if body, err := c.call(ctx, byte(units[0]), []byte{17}); err == nil && len(body) >= 3 && int(body[0]) == len(body)-1 {
		data := string(body[3:])
		if len(objs) == 0 {
			b.WriteString("    <device_info>\n")
		} else {
			s := b.String()
			b.Reset()
			b.WriteString(strings.TrimSuffix(s, "    </device_info>\n"))
		}
		if int(body[1]) != units[0] {
			fmt.Fprintf(&b, "        <ServerId>%d</ServerId>\n", body[1])
		}
		if k, ok := tpl.SeededKey(data); ok {
			fmt.Fprintf(&b, "        <ServerIdData databus=\"%s\"/>\n", k)
		} else if IsPrintable(data) {
			fmt.Fprintf(&b, "        <ServerIdData>%s</ServerIdData>\n", X(data))
		} else {
			fmt.Fprintf(&b, "        <ServerIdData databus=\"%s\"/>\n", tpl.Literal("modbus_ServerIdData", data))
		}
		b.WriteString("    </device_info>\n")
		rep.Find("report server id: id %d, run indicator %#02x, data %q", body[1], body[2], data)
	} else if err != nil {
		rep.Refuse("report server id (FC 17): %v", err)
	}
	// Modicon references, whatever the sensor's default numbering.
	fmt.Fprintf(&b, "    <mode>%s</mode>\n    <unknown_unit>%s</unknown_unit>\n    <addressing>modicon</addressing>\n    <slaves>\n", mode, unknown)
	type found struct {
		unit   int
		t      modbusTable
		blocks []modbusBlock
	}
	var scans []found
	budgetOut := false
	for _, u := range units {
		for _, t := range modbusTables {
			if budgetOut {
				break
			}
			blocks, err := c.scanTable(ctx, byte(u), t)
			if err != nil {
				rep.Skip("unit %d %s: scan stopped: %v", u, t.name, err)
				if errors.Is(err, ErrBudget) || ctx.Err() != nil {
					budgetOut = true
				}
			}
			scans = append(scans, found{u, t, blocks})
		}
	}
	// A second read of every block some seconds later tells the values that move.
	second := map[int][]int{} // index into the flattened blocks → values of the second read
	if !budgetOut && ctx.Err() == nil {
		wait := time.NewTimer(p.Opts.Interval)
		select {
		case <-ctx.Done():
			wait.Stop()
			return ctx.Err()
		case <-wait.C:
		}
		i := 0
	reread:
		for _, f := range scans {
			for _, bl := range f.blocks {
				vals, err := c.readBlock(ctx, byte(f.unit), f.t, bl.start, len(bl.values))
				if err != nil {
					rep.Notes = append(rep.Notes, fmt.Sprintf("second read of unit %d %s %d: %v (values frozen)", f.unit, f.t.name, bl.start, err))
					if errors.Is(err, ErrBudget) || ctx.Err() != nil {
						break reread
					}
				} else {
					second[i] = vals
				}
				i++
			}
		}
	}
	i := 0
	for _, u := range units {
		fmt.Fprintf(&b, "        <slave id=\"%d\">\n            <blocks>\n", u)
		for _, f := range scans {
			if f.unit != u {
				continue
			}
			t := f.t
			for _, bl := range f.blocks {
				key := modbusBlockKey(tpl, rep, u, t, bl, second[i], p.Opts.Interval)
				i++
				ref := t.ref + bl.start
				if bl.start >= 9999 {
					ref = t.ref*10 - (t.ref*10)%100000 + 1 + bl.start
					if t.ref == 1 {
						ref = 1 + bl.start
					}
				}
				fmt.Fprintf(&b, "                <block name=\"%s\">\n                    <type>%s</type>\n                    <starting_address>%d</starting_address>\n                    <size>%d</size>\n                </block>\n",
					key, t.name, ref, len(bl.values))
				rep.Find("unit %d %s: %d readable from wire address %d", u, t.name, len(bl.values), bl.start)
			}
		}
		b.WriteString("            </blocks>\n        </slave>\n")
	}
	b.WriteString("    </slaves>\n")
	tpl.Section("modbus", 502, b.String())
	return nil
}

// readBlock reads n items of table t from addr in reads of at most one chunk.
func (c *mbClient) readBlock(ctx context.Context, unit byte, t modbusTable, addr, n int) ([]int, error) {
	var out []int
	for off := 0; off < n; off += t.chunk {
		vals, err := c.read(ctx, unit, t, addr+off, min(t.chunk, n-off))
		if err != nil {
			return nil, err
		}
		out = append(out, vals...)
	}
	return out, nil
}

// modbusBlockKey adds the databus key of one block: the values read, or, when registers
// moved between the two reads, a processlist engine in which the registers that moved
// wander around the two values read (each copy with its own offset and phase) and the
// others stay as read. Bits that moved are frozen at the second read and listed as varying.
func modbusBlockKey(tpl *Template, rep *ProtocolReport, unit int, t modbusTable, bl modbusBlock, again []int, interval time.Duration) string {
	base := fmt.Sprintf("modbus%d%s%d", unit, t.key, bl.start)
	vals := bl.values
	moved := 0
	if len(again) == len(vals) {
		for i := range vals {
			if vals[i] != again[i] {
				moved++
			}
		}
	}
	if moved == 0 || t.bits || len(vals) > 4096 { // processlist takes at most 4096 elements
		if moved > 0 {
			for i := range vals {
				if vals[i] != again[i] {
					rep.Varying = append(rep.Varying, fmt.Sprintf("unit %d %s wire address %d: %d then %d (frozen at the second)", unit, t.name, bl.start+i, vals[i], again[i]))
				}
			}
			vals = again
		}
		s := make([]string, len(vals))
		for i, v := range vals {
			s[i] = strconv.Itoa(v)
		}
		return tpl.Key(base, "["+strings.Join(s, ", ")+"]", "")
	}
	params := make([]string, len(vals))
	for i := range vals {
		a, b := vals[i], again[i]
		if a == b {
			params[i] = fmt.Sprintf("[%d, 0, 0, 86400, 0, 0]", a)
			continue
		}
		mean := float64(a+b) / 2
		d := math.Abs(float64(b - a))
		// spread (per copy), swing over an hour and wander, bounded to stay in 0..65535
		room := math.Min(mean, 65535-mean)
		spread, swing, wander := math.Min(d, room/3), math.Min(2*d, room/3), math.Min(d/2, room/3)
		params[i] = fmt.Sprintf("[%g, %g, %g, 3600, %g, 0]", mean, math.Floor(spread), math.Floor(swing), math.Floor(wander))
		tpl.Engine("modbus", fmt.Sprintf("unit %d %s wire address %d", unit, t.name, bl.start+i), "processlist",
			fmt.Sprintf("%d then %d in %.1fs", a, b, interval.Seconds()))
	}
	return tpl.FunctionKey(base, "processlist", "["+strings.Join(params, ", ")+"]",
		fmt.Sprintf("%d of %d registers moved between two reads: they wander per copy, the others stay as read", moved, len(vals)))
}

func isException(err error) bool { var ex errException; return errors.As(err, &ex) }
