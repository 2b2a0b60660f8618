package s7comm

import (
	"strconv"
	"strings"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
)

// identRec maps an SZL record index to the databus key that fills it.
type identRec struct {
	Index uint16
	Key   string
}

// Operating modes as SZL 0x0424 reports them (low nibble of bzu-id).
const (
	ModeStop = 0x04
	ModeRun  = 0x08
)

// Mode selector positions (SZL 0x0132 index 4, bart_sch).
const (
	SwitchRun  = 1
	SwitchRunP = 2
	SwitchStop = 3
)

// config is the parsed s7comm section of a profile.
type config struct {
	Rack, Slot     int
	PDUSize        uint16 // the CPU's maximum PDU size, offered in Setup Communication
	MaxAmq         uint16 // parallel jobs the CPU accepts (calling and called)
	MaxConnections uint16
	MaxTPDUCode    byte   // largest COTP TPDU size code confirmed (0x0A = 1024 bytes)
	ModuleType     uint16 // BGTyp in SZL 0x0011 records
	Protection     int    // 1 none, 2 write protection, 3 read/write protection
	Password       string // the CPU password (protection levels 2 and 3); empty: none set
	Switch         int    // mode selector position
	Mode           byte   // operating mode at start
	// ModeKey is the databus key that carries the operating mode ("RUN" or "STOP") to the
	// host's other protocols (a web page, SNMP); empty: the mode stays the S7 server's own.
	ModeKey string
	// Timing is the CPU's answer latency (<timing>); nil: answers leave at once.
	Timing  *protocols.Timing
	MPIRate uint32 // bit/s, SZL 0x0131
	BusRate uint32
	Ident11 []identRec // SZL xy11 records (module identification)
	Ident1C []identRec // SZL xy1C records (component identification)
	comp1C  []identRec // Ident1C with the manufacturer record 0x0009 in place (component)
	Areas   []*Area
	Blocks  []Block
}

// defaultConfig is what a section without icsnare knobs gets: an S7-300-class CPU in
// rack 0 slot 2 with a 240-byte PDU.
func defaultConfig() *config {
	return &config{
		Slot: 2, PDUSize: 240, MaxAmq: 1, MaxConnections: 12, MaxTPDUCode: 0x0A, ModuleType: 0x00C0,
		Protection: 1, Switch: SwitchRun, Mode: ModeRun, MPIRate: 187500, BusRate: 1500000,
	}
}

// parseWord reads Siemens word notation (W#16#00C0), 0x-prefixed hex or decimal.
func parseWord(s string) (uint64, error) {
	s = strings.TrimSpace(s)
	if len(s) > 5 && strings.EqualFold(s[:5], "W#16#") {
		return strconv.ParseUint(s[5:], 16, 32)
	}
	return strconv.ParseUint(s, 0, 32)
}

func intChild(n *profiles.Node, name string, lo, hi int, dst *int) error {
	c := n.Child(name)
	if c == nil {
		return nil
	}
	v, err := parseWord(c.TextTrim())
	if err != nil || int(v) < lo || int(v) > hi {
		return c.Errorf("%q is not a number from %d to %d", c.TextTrim(), lo, hi)
	}
	*dst = int(v)
	return nil
}

// parseConfig reads an s7comm profile section.
func parseConfig(sec *profiles.Section) (*config, error) {
	cfg := defaultConfig()
	root := sec.Root
	sec.CheckChildren(root, "system_status_lists", "cpu", "memory", "blocks", "timing")
	var err error
	if cfg.Timing, err = protocols.ParseTiming(root.Child("timing")); err != nil {
		return nil, err
	}
	if ssl := root.Child("system_status_lists"); ssl != nil {
		if err := parseSSL(sec, ssl, cfg); err != nil {
			return nil, err
		}
	}
	if cpu := root.Child("cpu"); cpu != nil {
		if err := parseCPU(sec, cpu, cfg); err != nil {
			return nil, err
		}
	}
	if mem := root.Child("memory"); mem != nil {
		if err := parseMemory(sec, mem, cfg); err != nil {
			return nil, err
		}
	}
	if bl := root.Child("blocks"); bl != nil {
		if err := parseBlocks(sec, bl, cfg); err != nil {
			return nil, err
		}
	}
	cfg.addAreaBlocks()
	cfg.comp1C = cfg.component()
	return cfg, nil
}

func parseSSL(sec *profiles.Section, n *profiles.Node, cfg *config) error {
	sec.CheckChildren(n, "ssl")
	for _, l := range n.ChildrenNamed("ssl") {
		id, _ := l.Attr("id")
		var dst *[]identRec
		switch strings.ToUpper(strings.TrimSpace(id)) {
		case "W#16#XY1C":
			dst = &cfg.Ident1C
		case "W#16#XY11":
			dst = &cfg.Ident11
		default:
			sec.Warnf(l, "SZL %q is not one a profile can fill (W#16#xy11, W#16#xy1C), ignored", id)
			continue
		}
		seen := map[uint16]bool{}
		for _, r := range l.Children {
			rid, ok := r.Attr("id")
			if !ok {
				return r.Errorf("record without an id attribute (W#16#000N)")
			}
			idx, err := parseWord(rid)
			if err != nil || idx == 0 || idx > 0xFFFF {
				return r.Errorf("record id %q is not a word like W#16#0001", rid)
			}
			if seen[uint16(idx)] {
				// Conpot's own template names W#16#0006 twice; keep the first, like a CPU would.
				sec.Warnf(r, "record W#16#%04X given twice, ignored", idx)
				continue
			}
			seen[uint16(idx)] = true
			key := r.TextTrim()
			if key != "" && !sec.Profile.Schema.Has(key) {
				sec.Warnf(r, "databus key %q is not defined; the record stays empty", key)
			}
			*dst = append(*dst, identRec{Index: uint16(idx), Key: key})
		}
	}
	return nil
}

func parseCPU(sec *profiles.Section, n *profiles.Node, cfg *config) error {
	sec.CheckChildren(n, "rack", "slot", "pdu_size", "max_amq", "max_connections", "tpdu_size", "module_type",
		"protection_level", "password", "mode_switch", "operating_mode", "mpi_rate", "bus_rate", "mode_key")
	var pdu, amq, conns, tpdu, mtype, mpi, bus = int(cfg.PDUSize), int(cfg.MaxAmq), int(cfg.MaxConnections),
		TPDUSize(cfg.MaxTPDUCode), int(cfg.ModuleType), int(cfg.MPIRate), int(cfg.BusRate)
	for _, c := range []struct {
		name   string
		lo, hi int
		dst    *int
	}{
		{"rack", 0, 7, &cfg.Rack}, {"slot", 0, 31, &cfg.Slot}, {"pdu_size", 240, 960, &pdu},
		{"max_amq", 1, 16, &amq}, {"max_connections", 1, 128, &conns}, {"tpdu_size", 128, 8192, &tpdu},
		{"module_type", 0, 0xFFFF, &mtype}, {"protection_level", 1, 3, &cfg.Protection},
		{"mpi_rate", 0, 12000000, &mpi}, {"bus_rate", 0, 12000000, &bus},
	} {
		if err := intChild(n, c.name, c.lo, c.hi, c.dst); err != nil {
			return err
		}
	}
	code := byte(minTPDUSizeCode)
	for TPDUSize(code) < tpdu && code < maxTPDUSizeCode {
		code++
	}
	if TPDUSize(code) != tpdu {
		return n.Child("tpdu_size").Errorf("%d is not a power of two from 128 to 8192", tpdu)
	}
	cfg.PDUSize, cfg.MaxAmq, cfg.MaxConnections, cfg.MaxTPDUCode = uint16(pdu), uint16(amq), uint16(conns), code
	cfg.ModuleType, cfg.MPIRate, cfg.BusRate = uint16(mtype), uint32(mpi), uint32(bus)
	if p, ok := n.ChildText("password"); ok {
		if len(p) > 8 {
			return n.Child("password").Errorf("an S7 password has at most 8 characters")
		}
		cfg.Password = p
	}
	if s, ok := n.ChildText("mode_switch"); ok {
		switch strings.ToUpper(s) {
		case "RUN":
			cfg.Switch = SwitchRun
		case "RUN-P", "RUN_P":
			cfg.Switch = SwitchRunP
		case "STOP":
			cfg.Switch = SwitchStop
		default:
			return n.Child("mode_switch").Errorf("%q is not RUN, RUN-P or STOP", s)
		}
	}
	if s, ok := n.ChildText("operating_mode"); ok {
		switch strings.ToUpper(s) {
		case "RUN":
			cfg.Mode = ModeRun
		case "STOP":
			cfg.Mode = ModeStop
		default:
			return n.Child("operating_mode").Errorf("%q is not RUN or STOP", s)
		}
	}
	if cfg.Switch == SwitchStop {
		cfg.Mode = ModeStop
	}
	if k, ok := n.ChildText("mode_key"); ok && k != "" {
		if !sec.Profile.Schema.Has(k) {
			return n.Child("mode_key").Errorf("databus key %q is not defined", k)
		}
		cfg.ModeKey = k
	}
	return nil
}
