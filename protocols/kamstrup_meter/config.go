package kamstrupmeter

import (
	"strconv"
	"strings"
	"time"

	"github.com/icsnare/icsnare/profiles"
)

// register is one register of the profile.
type register struct {
	id     uint16
	length int
	units  byte
	siex   byte // Conpot's "unknown" attribute: the value's sign and exponent
	key    string
}

// config is a parsed kamstrup_meter.xml.
type config struct {
	addr      byte // communication address
	registers map[uint16]*register
	delayMin  time.Duration
	delayMax  time.Duration
}

// Defaults and bounds of the profile's knobs.
const (
	defaultAddr     = 0x3F
	defaultDelayMin = 240 * time.Millisecond // Conpot: "real meters have this delay"
	defaultDelayMax = 340 * time.Millisecond
	maxDelay        = 5 * time.Second
	maxRegisters    = 4096
)

func parseConfig(sec *profiles.Section) (*config, error) {
	root := sec.Root
	if root.Name != Name {
		return nil, root.Errorf("root element must be <%s>", Name)
	}
	c := &config{addr: defaultAddr, registers: map[uint16]*register{}, delayMin: defaultDelayMin, delayMax: defaultDelayMax}
	sec.CheckChildren(root, "config", "registers")
	if cfg := root.Child("config"); cfg != nil {
		sec.CheckChildren(cfg, "communication_address", "reply_delay")
		if n := cfg.Child("communication_address"); n != nil {
			v, err := strconv.ParseUint(n.TextTrim(), 0, 8)
			if err != nil {
				return nil, n.Errorf("communication_address %q is not a number 0-255", n.TextTrim())
			}
			c.addr = byte(v)
		}
		if n := cfg.Child("reply_delay"); n != nil {
			lo, hi, err := parseDelay(n.TextTrim())
			if err != nil {
				return nil, n.Errorf("reply_delay: %v", err)
			}
			c.delayMin, c.delayMax = lo, hi
		}
	}
	if regs := root.Child("registers"); regs != nil {
		sec.CheckChildren(regs, "register")
		for _, rn := range regs.ChildrenNamed("register") {
			if len(c.registers) >= maxRegisters {
				return nil, rn.Errorf("more than %d registers", maxRegisters)
			}
			sec.CheckChildren(rn, "value")
			r := &register{}
			for _, a := range []struct {
				name string
				max  uint64
				set  func(uint64)
			}{
				{"name", 65535, func(v uint64) { r.id = uint16(v) }},
				{"length", MaxRegisterLength, func(v uint64) { r.length = int(v) }},
				{"units", 255, func(v uint64) { r.units = byte(v) }},
				{"unknown", 255, func(v uint64) { r.siex = byte(v) }},
			} {
				s, ok := rn.Attr(a.name)
				if !ok {
					return nil, rn.Errorf("register without a %s attribute", a.name)
				}
				v, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
				if err != nil || v > a.max || (a.name == "length" && v == 0) {
					return nil, rn.Errorf("register %s %q is not a number in range (length 1-%d, name 0-65535, units and unknown 0-255)", a.name, s, MaxRegisterLength)
				}
				a.set(v)
			}
			key, ok := rn.ChildText("value")
			if !ok || key == "" {
				return nil, rn.Errorf("register %d has no <value> naming its databus key", r.id)
			}
			if !sec.Profile.Schema.Has(key) {
				return nil, rn.Errorf("register %d: databus key %q is not defined in template.xml", r.id, key)
			}
			if _, dup := c.registers[r.id]; dup {
				return nil, rn.Errorf("register %d defined twice", r.id)
			}
			r.key = key
			c.registers[r.id] = r
		}
	}
	return c, nil
}

// parseDelay reads "0.24-0.34" (seconds) or a single value.
func parseDelay(s string) (lo, hi time.Duration, err error) {
	a, b, found := strings.Cut(s, "-")
	if !found {
		b = a
	}
	parse := func(x string) (time.Duration, error) {
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		if err != nil || f < 0 || f > maxDelay.Seconds() {
			return 0, &rangeError{x}
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	if lo, err = parse(a); err != nil {
		return 0, 0, err
	}
	if hi, err = parse(b); err != nil {
		return 0, 0, err
	}
	if hi < lo {
		lo, hi = hi, lo
	}
	return lo, hi, nil
}

type rangeError struct{ s string }

func (e *rangeError) Error() string {
	return "\"" + e.s + "\" is not a number of seconds between 0 and " + strconv.Itoa(int(maxDelay.Seconds()))
}
