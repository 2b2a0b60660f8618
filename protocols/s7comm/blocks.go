package s7comm

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/icsnare/icsnare/profiles"
)

// Block types as block functions name them (ASCII after '0').
const (
	BlockOB  = 0x38
	BlockDB  = 0x41
	BlockSDB = 0x42
	BlockFC  = 0x43
	BlockSFC = 0x44
	BlockFB  = 0x45
	BlockSFB = 0x46
)

// blockOrder is the order in which a CPU lists block types.
var blockOrder = []byte{BlockOB, BlockDB, BlockSDB, BlockFC, BlockSFC, BlockFB, BlockSFB}

// subblock type codes in block info answers.
var subblockType = map[byte]byte{BlockOB: 0x08, BlockDB: 0x0A, BlockSDB: 0x0B, BlockFC: 0x0C, BlockSFC: 0x0D, BlockFB: 0x0E, BlockSFB: 0x0F}

// Block languages.
const (
	LangAWL   = 0x01 // STL
	LangKOP   = 0x02 // LAD
	LangFUP   = 0x03 // FBD
	LangSCL   = 0x04
	LangDB    = 0x05
	LangGRAPH = 0x06
	LangSDB   = 0x07
)

// Block is one program block the CPU reports.
type Block struct {
	Type    byte
	Number  uint16
	Lang    byte
	Size    int // MC7 code (or DB data) length in bytes
	Local   int // local data bytes
	Name    string
	Family  string
	Author  string
	Version byte // header version, 0xXY = X.Y
}

var blockTypeNames = map[string]byte{"OB": BlockOB, "DB": BlockDB, "SDB": BlockSDB, "FC": BlockFC, "SFC": BlockSFC, "FB": BlockFB, "SFB": BlockSFB}

var langNames = map[string]byte{"STL": LangAWL, "AWL": LangAWL, "LAD": LangKOP, "KOP": LangKOP, "FBD": LangFUP, "FUP": LangFUP,
	"SCL": LangSCL, "DB": LangDB, "GRAPH": LangGRAPH, "SDB": LangSDB}

// maxBlocks bounds the block list of a profile.
const maxBlocks = 512

func parseBlocks(sec *profiles.Section, n *profiles.Node, cfg *config) error {
	sec.CheckChildren(n, "block")
	for _, b := range n.ChildrenNamed("block") {
		if len(cfg.Blocks) == maxBlocks {
			return b.Errorf("more than %d blocks", maxBlocks)
		}
		t, _ := b.Attr("type")
		bt, ok := blockTypeNames[strings.ToUpper(strings.TrimSpace(t))]
		if !ok {
			return b.Errorf("block type %q is not OB, FB, FC, DB, SDB, SFC or SFB", t)
		}
		blk := Block{Type: bt, Lang: LangAWL, Version: 0x01}
		if bt == BlockDB {
			blk.Lang = LangDB
		}
		if bt == BlockSDB {
			blk.Lang = LangSDB
		}
		s, _ := b.Attr("number")
		v, err := strconv.ParseUint(strings.TrimSpace(s), 10, 16)
		if err != nil || (v == 0 && bt != BlockSFC && bt != BlockSFB && bt != BlockSDB) {
			return b.Errorf("block number %q is not from 1 to 65535", s)
		}
		blk.Number = uint16(v)
		if l, ok := b.Attr("lang"); ok {
			if blk.Lang, ok = langNames[strings.ToUpper(strings.TrimSpace(l))]; !ok {
				return b.Errorf("language %q is not STL, LAD, FBD, SCL, GRAPH, DB or SDB", l)
			}
		}
		for _, a := range []struct {
			name string
			dst  *int
		}{{"size", &blk.Size}, {"local", &blk.Local}} {
			if s, ok := b.Attr(a.name); ok {
				v, err := strconv.Atoi(strings.TrimSpace(s))
				if err != nil || v < 0 || v > 65535 {
					return b.Errorf("%s %q is not from 0 to 65535", a.name, s)
				}
				*a.dst = v
			}
		}
		for _, a := range []struct {
			name string
			dst  *string
		}{{"name", &blk.Name}, {"family", &blk.Family}, {"author", &blk.Author}} {
			if s, ok := b.Attr(a.name); ok {
				if len(s) > 8 {
					return b.Errorf("%s %q is longer than 8 characters", a.name, s)
				}
				*a.dst = s
			}
		}
		for _, o := range cfg.Blocks {
			if o.Type == blk.Type && o.Number == blk.Number {
				return b.Errorf("block %s given twice", blk)
			}
		}
		cfg.Blocks = append(cfg.Blocks, blk)
	}
	return nil
}

func (b Block) String() string {
	for k, v := range blockTypeNames {
		if v == b.Type {
			return fmt.Sprintf("%s%d", k, b.Number)
		}
	}
	return fmt.Sprintf("0x%02x/%d", b.Type, b.Number)
}

// addAreaBlocks lists every DB memory area as a DB block unless the profile lists it.
func (c *config) addAreaBlocks() {
	for _, a := range c.Areas {
		if a.Code != AreaDB {
			continue
		}
		if c.block(BlockDB, a.DB) != nil {
			continue
		}
		c.Blocks = append(c.Blocks, Block{Type: BlockDB, Number: a.DB, Lang: LangDB, Size: a.Size, Version: 0x01})
	}
}

func (c *config) block(t byte, nr uint16) *Block {
	for i := range c.Blocks {
		if c.Blocks[i].Type == t && c.Blocks[i].Number == nr {
			return &c.Blocks[i]
		}
	}
	return nil
}

// blockCounts encodes the "list blocks" answer: one 4-byte entry per block type.
func (c *config) blockCounts() []byte {
	out := make([]byte, 0, 4*len(blockOrder))
	for _, t := range blockOrder {
		n := 0
		for _, b := range c.Blocks {
			if b.Type == t {
				n++
			}
		}
		out = append(out, 0x30, t, byte(n>>8), byte(n))
	}
	return out
}

// blocksOfType encodes the "list blocks of type" answer, at most max entries.
func (c *config) blocksOfType(t byte, max int) []byte {
	var out []byte
	for _, b := range c.Blocks {
		if b.Type == t && len(out)/4 < max {
			out = append(out, byte(b.Number>>8), byte(b.Number), 0x22, b.Lang)
		}
	}
	return out
}

// s7Epoch is day 0 of S7 date stamps.
var s7Epoch = time.Date(1984, 1, 1, 0, 0, 0, 0, time.UTC)

func appendS7Time(dst []byte, t time.Time) []byte {
	days := int(t.Sub(s7Epoch).Hours() / 24)
	ms := t.Sub(s7Epoch.AddDate(0, 0, days)).Milliseconds()
	dst = binary.BigEndian.AppendUint32(dst, uint32(ms))
	return binary.BigEndian.AppendUint16(dst, uint16(days))
}

func padText(dst []byte, s string, n int) []byte {
	for i := 0; i < n; i++ {
		if i < len(s) {
			dst = append(dst, s[i])
		} else {
			dst = append(dst, 0)
		}
	}
	return dst
}

// blockInfo encodes the 78-byte "get block info" answer. stamp is the block's code
// time stamp (per host, so blocks look programmed at a plausible, stable date).
func blockInfo(b *Block, stamp time.Time) []byte {
	mc7 := b.Size
	loadLen := mc7 + 36 + 2*len(b.Name) + 50 // header, name, interface: an approximation of real load sizes
	if b.Type == BlockDB {
		loadLen = mc7 + 92
	}
	out := make([]byte, 0, 78)
	out = append(out, 0x30, b.Type) // block type as in the request
	out = binary.BigEndian.AppendUint16(out, 0x004A)
	out = binary.BigEndian.AppendUint16(out, 0x0000)
	out = append(out, 'p', 'p') // constant
	out = append(out, 0x01)     // unknown, 1 on real CPUs
	out = append(out, 0x01)     // flags: linked
	out = append(out, b.Lang, subblockType[b.Type])
	out = binary.BigEndian.AppendUint16(out, b.Number)
	out = binary.BigEndian.AppendUint32(out, uint32(loadLen))
	out = binary.BigEndian.AppendUint32(out, 0) // block security: none
	out = appendS7Time(out, stamp)
	out = appendS7Time(out, stamp.Add(-37*time.Minute))
	ssb := 0
	if b.Type == BlockDB || b.Type == BlockFB {
		ssb = 2 * (b.Size / 8)
	}
	out = binary.BigEndian.AppendUint16(out, uint16(min(ssb, 0xFFFF)))
	out = binary.BigEndian.AppendUint16(out, 0)
	out = binary.BigEndian.AppendUint16(out, uint16(b.Local))
	out = binary.BigEndian.AppendUint16(out, uint16(mc7))
	out = padText(out, b.Author, 8)
	out = padText(out, b.Family, 8)
	out = padText(out, b.Name, 8)
	out = append(out, b.Version, 0)
	sum := uint16(0)
	for i, x := range out {
		sum += uint16(x) * uint16(i+1)
	}
	out = binary.BigEndian.AppendUint16(out, sum)
	out = append(out, 0, 0, 0, 0, 0, 0, 0, 0)
	return out
}
