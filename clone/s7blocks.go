package clone

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// S7 block functions (userdata group 3): list blocks, list blocks of a type, block info.
// Reads only: no block is uploaded.
const (
	s7SubListBlocks  = 0x01
	s7SubListOfType  = 0x02
	s7SubBlockInfo   = 0x03
	s7MaxBlockInfos  = 48 // block info requests at most
	s7MaxBlocksPerTy = 512
	s7MaxBlocks      = 512 // blocks in all (the sensor's bound of a profile)
)

// s7BlockTypes names the block types (the ASCII code after '0').
var s7BlockTypes = map[byte]string{0x38: "OB", 0x41: "DB", 0x42: "SDB", 0x43: "FC", 0x44: "SFC", 0x45: "FB", 0x46: "SFB"}

// s7BlockOrder is the order of the types in the clone (and of the info reads): program
// blocks first, system blocks last.
var s7BlockOrder = []byte{0x38, 0x45, 0x43, 0x41, 0x44, 0x46, 0x42}

// s7Langs names the block languages as s7comm.xml writes them.
var s7Langs = map[byte]string{1: "STL", 2: "LAD", 3: "FBD", 4: "SCL", 5: "DB", 6: "GRAPH", 7: "SDB"}

// s7BlockEntry is one block as the block functions tell it.
type s7BlockEntry struct {
	typ    byte
	number uint16
	lang   byte
	info   bool // block info was read
	size   int  // MC7 code (DB: data) length
	local  int
	name   string
	family string
	author string
}

// userdata sends one userdata request of group (4 bits) and subfunction with payload,
// fetching follow-up fragments (at most 16), and returns the data answered.
func (c *s7Client) userdata(ctx context.Context, group, sub byte, payload []byte) ([]byte, error) {
	param := []byte{0, 1, 0x12, 4, 0x11, 0x40 | group, sub, 0}
	data := append([]byte{0xFF, 0x09, byte(len(payload) >> 8), byte(len(payload))}, payload...)
	var all []byte
	for frag := 0; frag < 16; frag++ {
		resp, err := c.exchange(ctx, c.header(7, param, data))
		if err != nil {
			return nil, err
		}
		if len(resp) < 10 || resp[0] != 0x32 || resp[1] != 7 {
			return nil, errors.New("s7comm: not a userdata answer")
		}
		pl, dl := int(binary.BigEndian.Uint16(resp[6:])), int(binary.BigEndian.Uint16(resp[8:]))
		if len(resp) < 10+pl+dl || pl < 12 {
			return nil, errors.New("s7comm: short userdata answer")
		}
		p := resp[10 : 10+pl]
		d := resp[10+pl : 10+pl+dl]
		if code := binary.BigEndian.Uint16(p[10:]); code != 0 {
			return nil, errSZL(code)
		}
		if len(d) < 4 || d[0] != 0xFF {
			return nil, errSZL(0)
		}
		n := min(int(binary.BigEndian.Uint16(d[2:])), len(d)-4)
		all = append(all, d[4:4+n]...)
		if p[9] == 0 {
			return all, nil
		}
		param = []byte{0, 1, 0x12, 8, 0x12, 0x40 | group, sub, p[7], p[8], 0, 0, 0}
		data = []byte{0x0A, 0, 0, 0}
	}
	return all, errors.New("s7comm: more than 16 fragments")
}

// parseBlockCounts decodes the list blocks answer: type → count.
func parseBlockCounts(d []byte) map[byte]int {
	out := map[byte]int{}
	for i := 0; i+3 < len(d); i += 4 {
		if d[i] == 0x30 {
			out[d[i+1]] = int(binary.BigEndian.Uint16(d[i+2:]))
		}
	}
	return out
}

// parseBlocksOfType decodes a list blocks of type answer: number and language per block.
// A number listed twice is kept once; number 0 only for the system blocks, which have one.
func parseBlocksOfType(t byte, d []byte) []s7BlockEntry {
	var out []s7BlockEntry
	seen := map[uint16]bool{}
	for i := 0; i+3 < len(d) && len(out) < s7MaxBlocksPerTy; i += 4 {
		n := binary.BigEndian.Uint16(d[i:])
		if seen[n] || n == 0 && t != 0x44 && t != 0x46 && t != 0x42 {
			continue
		}
		seen[n] = true
		out = append(out, s7BlockEntry{typ: t, number: n, lang: d[i+3]})
	}
	return out
}

// parseBlockInfo decodes a block info answer (the 78-octet layout CPUs send) into e.
func parseBlockInfo(d []byte, e *s7BlockEntry) error {
	if len(d) < 66 || d[0] != 0x30 {
		return errors.New("s7comm: short block info")
	}
	if d[1] != e.typ || binary.BigEndian.Uint16(d[12:]) != e.number {
		return errors.New("s7comm: block info of another block")
	}
	e.lang = d[10]
	e.local = int(binary.BigEndian.Uint16(d[38:]))
	e.size = int(binary.BigEndian.Uint16(d[40:]))
	e.author = cString(d[42:50])
	e.family = cString(d[50:58])
	e.name = cString(d[58:66])
	e.info = true
	return nil
}

// blocks reads the block list, the blocks of each type and the info of the first
// s7MaxBlockInfos blocks (program blocks first), and returns the s7comm.xml <blocks>
// element and the DB areas (number → size) the info told.
func (c *s7Client) blocks(ctx context.Context, p *Probe) (string, []s7BlockEntry, error) {
	rep := p.Report
	d, err := c.userdata(ctx, 3, s7SubListBlocks, nil)
	if err != nil {
		return "", nil, err
	}
	counts := parseBlockCounts(d)
	var parts []string
	for _, t := range s7BlockOrder {
		if counts[t] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", s7BlockTypes[t], counts[t]))
		}
	}
	rep.Find("blocks: %s", strings.Join(parts, ", "))
	var all []s7BlockEntry
	for _, t := range s7BlockOrder {
		if counts[t] == 0 {
			continue
		}
		d, err := c.userdata(ctx, 3, s7SubListOfType, []byte{0x30, t})
		if err != nil {
			var ez errSZL
			if errors.As(err, &ez) {
				rep.Refuse("list of %s blocks: %v", s7BlockTypes[t], err)
				continue
			}
			return "", all, err
		}
		l := parseBlocksOfType(t, d)
		if len(l) < counts[t] {
			rep.Skip("%s blocks: %d listed of %d counted", s7BlockTypes[t], len(l), counts[t])
		}
		if room := s7MaxBlocks - len(all); len(l) > room {
			rep.Skip("%s blocks after the first %d: the profile holds %d blocks in all", s7BlockTypes[t], room, s7MaxBlocks)
			l = l[:room]
		}
		all = append(all, l...)
	}
	infos := 0
	for i := range all {
		e := &all[i]
		if infos >= s7MaxBlockInfos {
			rep.Skip("block info of %s%d and the blocks after it: at most %d are read", s7BlockTypes[e.typ], e.number, s7MaxBlockInfos)
			break
		}
		infos++
		req := append([]byte{0x30, e.typ}, fmt.Sprintf("%05dA", e.number)...)
		d, err := c.userdata(ctx, 3, s7SubBlockInfo, req)
		if err != nil {
			var ez errSZL
			if errors.As(err, &ez) {
				rep.Refuse("block info of %s%d: %v", s7BlockTypes[e.typ], e.number, err)
				continue
			}
			return "", all, err
		}
		if err := parseBlockInfo(d, e); err != nil {
			rep.Refuse("block info of %s%d: %v", s7BlockTypes[e.typ], e.number, err)
		}
	}
	var b strings.Builder
	b.WriteString("    <blocks>\n")
	for _, e := range all {
		lang, ok := s7Langs[e.lang]
		if !ok {
			lang = "STL"
		}
		fmt.Fprintf(&b, "        <block type=\"%s\" number=\"%d\" lang=\"%s\"", s7BlockTypes[e.typ], e.number, lang)
		if e.info {
			fmt.Fprintf(&b, " size=\"%d\" local=\"%d\"", e.size, e.local)
			for _, a := range [][2]string{{"name", e.name}, {"family", e.family}, {"author", e.author}} {
				if a[1] != "" && IsPrintable(a[1]) {
					fmt.Fprintf(&b, " %s=\"%s\"", a[0], XA(a[1]))
				}
			}
		}
		b.WriteString("/>\n")
	}
	b.WriteString("    </blocks>\n")
	rep.Find("%d blocks listed, %d with their info", len(all), infos)
	rep.Skip("block code: no block is uploaded")
	return b.String(), all, nil
}

// S7 data block reads (Read Var, the read job): bounds.
const (
	s7MaxDBAreas   = 64   // DB areas the clone gets (sized from block info)
	s7MaxDBReads   = 8    // DBs whose content is read
	s7MaxDBContent = 1024 // bytes of a DB whose content is read
)

// readDB reads n bytes of data block db from offset with one Read Var job.
func (c *s7Client) readDB(ctx context.Context, db uint16, off, n int) ([]byte, error) {
	item := []byte{0x12, 0x0A, 0x10, 0x02, byte(n >> 8), byte(n), byte(db >> 8), byte(db), 0x84,
		byte(off * 8 >> 16), byte(off * 8 >> 8), byte(off * 8)}
	resp, err := c.exchange(ctx, c.header(1, append([]byte{0x04, 0x01}, item...), nil))
	if err != nil {
		return nil, err
	}
	if len(resp) < 12 || resp[0] != 0x32 || resp[1] != 3 {
		return nil, errors.New("s7comm: not an ack to the read")
	}
	if resp[10] != 0 || resp[11] != 0 {
		return nil, errSZL(binary.BigEndian.Uint16(resp[10:]))
	}
	pl, dl := int(binary.BigEndian.Uint16(resp[6:])), int(binary.BigEndian.Uint16(resp[8:]))
	if len(resp) < 12+pl+dl || pl < 2 || dl < 4 {
		return nil, errors.New("s7comm: short read answer")
	}
	d := resp[12+pl : 12+pl+dl]
	if d[0] != 0xFF {
		return nil, errSZL(d[0])
	}
	l := int(binary.BigEndian.Uint16(d[2:]))
	if d[1] == 0x03 || d[1] == 0x04 || d[1] == 0x05 {
		l = (l + 7) / 8 // a length in bits
	}
	if l != n || len(d) < 4+l {
		return nil, fmt.Errorf("s7comm: %d bytes answered for %d", l, n)
	}
	return d[4 : 4+l], nil
}

// dbAreas turns the DBs the block info sized into s7comm.xml areas; the content of the
// first small ones is read (Read Var) into databus keys, the others start zeroed.
func (c *s7Client) dbAreas(ctx context.Context, p *Probe, blocks []s7BlockEntry) (string, error) {
	rep, tpl := p.Report, p.Template
	var b strings.Builder
	areas, reads := 0, 0
	chunk := max(16, c.pdu-32)
	for _, e := range blocks {
		if e.typ != 0x41 || !e.info || e.size <= 0 || e.size > 65535 {
			continue
		}
		if areas >= s7MaxDBAreas {
			rep.Skip("DB areas after DB%d: at most %d", e.number, s7MaxDBAreas)
			break
		}
		areas++
		if e.size > s7MaxDBContent || reads >= s7MaxDBReads {
			fmt.Fprintf(&b, "        <area type=\"DB\" number=\"%d\" size=\"%d\"/>\n", e.number, e.size)
			rep.Skip("DB%d content (%d bytes): not read, the clone's starts zeroed", e.number, e.size)
			continue
		}
		reads++
		var content []byte
		var err error
		for off := 0; off < e.size && err == nil; off += chunk {
			var part []byte
			part, err = c.readDB(ctx, e.number, off, min(chunk, e.size-off))
			content = append(content, part...)
		}
		if err != nil {
			var ez errSZL
			if !errors.As(err, &ez) {
				return b.String(), err
			}
			rep.Refuse("DB%d read: %v", e.number, err)
			fmt.Fprintf(&b, "        <area type=\"DB\" number=\"%d\" size=\"%d\"/>\n", e.number, e.size)
			continue
		}
		vals := make([]string, len(content))
		for i, x := range content {
			vals[i] = fmt.Sprint(x)
		}
		k := tpl.Key(fmt.Sprintf("s7DB%d", e.number), "["+strings.Join(vals, ", ")+"]", "")
		fmt.Fprintf(&b, "        <area type=\"DB\" number=\"%d\" size=\"%d\" key=\"%s\" format=\"bytes\"/>\n", e.number, e.size, k)
		rep.Find("DB%d: %d bytes read", e.number, len(content))
	}
	if b.Len() == 0 {
		return "", nil
	}
	rep.Skip("I, Q and M areas: their sizes are not probed (the clone has none); DB contents are frozen at the read")
	return "    <memory>\n" + b.String() + "    </memory>\n", nil
}
