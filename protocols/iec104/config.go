package iec104

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/icsnare/icsnare/profiles"
)

// point is one register of the profile: a monitored point or a command.
type point struct {
	name   string // Conpot's X_Y
	addr   ioa
	typ    byte   // the category id, time-tagged ids folded onto the untagged ones
	key    string // databus key of the value
	rel    *point // the monitored point a command drives
	sbo    bool   // commands: execute only after a select
	group  int    // interrogation group 1-16; 0 for none
	relRef string
}

// config is a parsed IEC104.xml.
type config struct {
	points map[ioa]*point
	// monitored lists the monitored points per type, in interrogation order.
	monitored map[byte][]*point
	hasCA     bool // the template defines CommonAddress
}

// giOrder is the order in which a general interrogation reports the types.
var giOrder = []byte{mSPNA, mDPNA, mSTNA, mBONA, mMENA, mMENB, mMENC}

// relatedType is the monitored type each command drives.
var relatedType = map[byte]byte{cSCNA: mSPNA, cDCNA: mDPNA, cRCNA: mSTNA, cSENA: mMENA, cSENB: mMENB, cSENC: mMENC}

// foldType maps a category id onto the type this station serves: time-tagged monitored
// types (30-36) onto their untagged forms, time-tagged commands (58-63) onto 45-50.
func foldType(id int) (byte, bool) {
	switch {
	case id == 1 || id == 3 || id == 5 || id == 7 || id == 9 || id == 11 || id == 13 || id == 15:
		return byte(id), true
	case id >= 30 && id <= 36:
		return byte(1 + 2*(id-30)), true
	case id == 37:
		return mITNA, true
	case id >= 45 && id <= 50:
		return byte(id), true
	case id >= 58 && id <= 63:
		return byte(id - 13), true
	}
	return 0, false
}

func isCommand(t byte) bool { return t >= cSCNA && t <= cSENC }

func parseConfig(sec *profiles.Section) (*config, error) {
	root := sec.Root
	if root.Name != "IEC104" {
		return nil, root.Errorf("root element must be <IEC104>")
	}
	sec.CheckChildren(root, "device_info", "categories")
	if n := root.Child("device_info"); n != nil {
		sec.CheckChildren(n, "vendor_name", "product_code") // informational, as in Conpot
	}
	c := &config{points: map[ioa]*point{}, monitored: map[byte][]*point{}, hasCA: sec.Profile.Schema.Has("CommonAddress")}
	check := sec.Profile.Schema.NewDatabus(profiles.EngineEnv{Seed: 1})
	var all []*point
	if cats := root.Child("categories"); cats != nil {
		sec.CheckChildren(cats, "category")
		for _, cn := range cats.ChildrenNamed("category") {
			sec.CheckChildren(cn, "register")
			ids, _ := cn.Attr("id")
			id, err := strconv.Atoi(strings.TrimSpace(ids))
			typ, ok := foldType(id)
			if err != nil || !ok {
				return nil, cn.Errorf("category id %q is not a type this station serves (1-15 odd, 30-37, 45-50, 58-63)", ids)
			}
			for _, rn := range cn.ChildrenNamed("register") {
				p, err := parseRegister(sec, rn, typ, id, check)
				if err != nil {
					return nil, err
				}
				if o := c.points[p.addr]; o != nil {
					return nil, rn.Errorf("register %s has the address of register %s", p.name, o.name)
				}
				c.points[p.addr] = p
				all = append(all, p)
				if !isCommand(typ) {
					c.monitored[typ] = append(c.monitored[typ], p)
				}
			}
		}
	}
	for _, p := range all {
		if p.relRef == "" {
			continue
		}
		a, err := parseIOAName(p.relRef)
		r := c.points[a]
		switch {
		case err != nil:
			return nil, fmt.Errorf("%s: register %s: rel %q: %w", sec.File, p.name, p.relRef, err)
		case r == nil:
			return nil, fmt.Errorf("%s: register %s: rel %q names no register", sec.File, p.name, p.relRef)
		case !isCommand(p.typ):
			return nil, fmt.Errorf("%s: register %s: only commands have a rel", sec.File, p.name)
		case r.typ != relatedType[p.typ]:
			return nil, fmt.Errorf("%s: register %s (type %d): rel %s is of type %d, not %d", sec.File, p.name, p.typ, r.name, r.typ, relatedType[p.typ])
		}
		p.rel = r
	}
	return c, nil
}

// parseIOAName reads Conpot's X_Y register name (X 0-65535, Y 0-255).
func parseIOAName(s string) (ioa, error) {
	x, y, ok := strings.Cut(strings.TrimSpace(s), "_")
	hi, err1 := strconv.ParseUint(x, 10, 16)
	lo, err2 := strconv.ParseUint(y, 10, 8)
	if !ok || err1 != nil || err2 != nil {
		return ioa{}, fmt.Errorf("%q is not an address X_Y (X 0-65535, Y 0-255)", s)
	}
	return ioa{byte(hi >> 8), byte(hi), byte(lo)}, nil
}

func parseRegister(sec *profiles.Section, n *profiles.Node, typ byte, id int, check *profiles.Databus) (*point, error) {
	sec.CheckChildren(n, "value")
	name, _ := n.Attr("name")
	a, err := parseIOAName(name)
	if err != nil {
		return nil, n.Errorf("register name: %v", err)
	}
	p := &point{name: strings.TrimSpace(name), addr: a, typ: typ}
	p.relRef, _ = n.Attr("rel")
	p.relRef = strings.TrimSpace(p.relRef)
	if s, ok := n.Attr("select"); ok {
		if p.sbo, err = profiles.ParseBool(s); err != nil {
			return nil, n.Errorf("select: %v", err)
		}
	}
	if s, ok := n.Attr("group"); ok {
		g, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || g < 1 || g > 16 {
			return nil, n.Errorf("group %q is not an interrogation group 1-16", s)
		}
		p.group = g
	}
	p.key, _ = n.ChildText("value")
	if p.key == "" {
		return nil, n.Errorf("register %s has no <value> naming its databus key", p.name)
	}
	if !sec.Profile.Schema.Has(p.key) {
		return nil, n.Errorf("register %s: databus key %q is not defined in template.xml", p.name, p.key)
	}
	v, err := check.Get(p.key)
	if err != nil {
		return nil, n.Errorf("register %s: %v", p.name, err)
	}
	f, err := toFloat(v)
	if err != nil {
		return nil, n.Errorf("register %s: databus key %q: %v", p.name, p.key, err)
	}
	switch id {
	case 1, 2, 30, 45, 58:
		if f != 0 && f != 1 {
			return nil, n.Errorf("register %s of type %d holds %v: single points are 0 or 1", p.name, id, f)
		}
	case 3, 4, 31, 46, 59:
		if f != 0 && f != 1 && f != 2 && f != 3 {
			return nil, n.Errorf("register %s of type %d holds %v: double points are 0 to 3", p.name, id, f)
		}
	}
	return p, nil
}

// toFloat reads a databus value as a number.
func toFloat(v any) (float64, error) {
	switch x := v.(type) {
	case float64:
		return x, nil
	case int64:
		return float64(x), nil
	case bool:
		if x {
			return 1, nil
		}
		return 0, nil
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		if err != nil {
			i, err := strconv.ParseInt(strings.TrimSpace(x), 0, 64)
			if err != nil {
				return 0, fmt.Errorf("%q is not a number", x)
			}
			return float64(i), nil
		}
		return f, nil
	}
	i, err := profiles.ToInt(v)
	return float64(i), err
}
