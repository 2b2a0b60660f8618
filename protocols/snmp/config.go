package snmp

import (
	"encoding/hex"
	"fmt"
	"io/fs"
	"math"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/icsnare/icsnare/profiles"
)

// Request classes, as Conpot's tarpit and evasion entities name them.
const (
	classGet = iota
	classNext
	classBulk
	classSet
	numClasses
)

var classNames = [numClasses]string{"get", "next", "bulk", "set"}

func classOf(pduType byte) int {
	switch pduType {
	case pduGet:
		return classGet
	case pduGetNext:
		return classNext
	case pduGetBulk:
		return classBulk
	case pduSet:
		return classSet
	}
	return -1
}

// tarpit is a delay range; zero means none.
type tarpit struct{ lo, hi time.Duration }

// maxTarpit bounds a configured delay.
const maxTarpit = 60 * time.Second

// engineIDSpec says how a host's snmpEngineID is built (RFC 3411 SnmpEngineID).
type engineIDSpec struct {
	enterprise uint32
	format     string // "mac", "ipv4", "text" or "octets"
	key        string // databus key holding the format's value, or ""
	literal    string // the value when it is not a databus key
}

// config is the parsed <snmp> section.
type config struct {
	tarpit      [numClasses]tarpit
	evasion     [numClasses][2]int // per source, overall; requests per minute
	communities map[string]bool    // community → may write
	users       map[string]*user
	engine      engineIDSpec
	maxMsg      int
	// noV3 drops SNMPv3 messages (icsnare's <entity name="versions">1,2c</entity>): an
	// agent without a v3 engine, such as an S7-300 CPU's, answers no v3 discovery.
	noV3 bool
}

const (
	defaultMaxMsg = 1472 // one Ethernet frame
	minMaxMsg     = 484
	maxMaxMsg     = 65507
)

func parseConfig(sec *profiles.Section, root *profiles.Node) (*config, error) {
	c := &config{communities: map[string]bool{}, users: map[string]*user{}, maxMsg: defaultMaxMsg,
		engine: engineIDSpec{enterprise: siemensEnterprise, format: "mac"}}
	if sec.Profile.Schema.Has("MacAddress") {
		c.engine.key = "MacAddress"
	}
	cfg := root.Child("config")
	if cfg == nil {
		return c, nil
	}
	for _, e := range cfg.Children {
		if e.Name != "entity" {
			sec.Warnf(e, "unknown element inside <config>, ignored")
			continue
		}
		name, _ := e.Attr("name")
		cmd, _ := e.Attr("command")
		text := e.TextTrim()
		switch name {
		case "tarpit":
			cl, err := commandClass(e, cmd)
			if err != nil {
				return nil, err
			}
			if c.tarpit[cl], err = parseTarpit(text); err != nil {
				return nil, e.Errorf("tarpit: %v", err)
			}
		case "evasion":
			cl, err := commandClass(e, cmd)
			if err != nil {
				return nil, err
			}
			if c.evasion[cl], err = parseEvasion(text); err != nil {
				return nil, e.Errorf("evasion: %v", err)
			}
		case "community":
			if text == "" {
				return nil, e.Errorf("empty community")
			}
			w, err := parseAccess(e)
			if err != nil {
				return nil, err
			}
			c.communities[text] = w
		case "user":
			u, err := parseUser(e, text)
			if err != nil {
				return nil, err
			}
			if _, dup := c.users[u.name]; dup {
				return nil, e.Errorf("user %q defined twice", u.name)
			}
			c.users[u.name] = u
		case "engine_id":
			if err := parseEngineID(sec, e, text, &c.engine); err != nil {
				return nil, err
			}
		case "versions":
			c.noV3 = true
			for _, v := range strings.Split(text, ",") {
				switch strings.TrimSpace(strings.ToLower(v)) {
				case "1", "2c":
				case "3":
					c.noV3 = false
				default:
					return nil, e.Errorf("versions %q: a list of 1, 2c and 3", text)
				}
			}
		case "max_message_size":
			n, err := strconv.Atoi(text)
			if err != nil || n < minMaxMsg || n > maxMaxMsg {
				return nil, e.Errorf("max_message_size %q is not a number in %d..%d", text, minMaxMsg, maxMaxMsg)
			}
			c.maxMsg = n
		default:
			sec.Warnf(e, "unknown SNMP config entity %q, ignored", name)
		}
	}
	return c, nil
}

func commandClass(e *profiles.Node, cmd string) (int, error) {
	for i, n := range classNames {
		if strings.EqualFold(cmd, n) {
			return i, nil
		}
	}
	return 0, e.Errorf("command %q is not one of get, next, bulk, set", cmd)
}

func parseSeconds(s string) (time.Duration, error) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > maxTarpit.Seconds() {
		return 0, fmt.Errorf("%q is not a number of seconds in 0..%g", s, maxTarpit.Seconds())
	}
	return time.Duration(f * float64(time.Second)), nil
}

// parseTarpit reads "x" (a fixed delay) or "x;y" (uniform between x and y), in seconds.
func parseTarpit(s string) (tarpit, error) {
	lo, hi, two := strings.Cut(s, ";")
	a, err := parseSeconds(lo)
	if err != nil {
		return tarpit{}, err
	}
	b := a
	if two {
		if b, err = parseSeconds(hi); err != nil {
			return tarpit{}, err
		}
		if b < a {
			return tarpit{}, fmt.Errorf("%q: the upper bound is below the lower", s)
		}
	}
	return tarpit{a, b}, nil
}

// parseEvasion reads "per-IP;overall" requests per minute (0 = unlimited).
func parseEvasion(s string) ([2]int, error) {
	a, b, ok := strings.Cut(s, ";")
	if !ok {
		return [2]int{}, fmt.Errorf("%q is not \"per-IP;overall\"", s)
	}
	x, err1 := strconv.Atoi(strings.TrimSpace(a))
	y, err2 := strconv.Atoi(strings.TrimSpace(b))
	if err1 != nil || err2 != nil || x < 0 || y < 0 || x > 100_000_000 || y > 100_000_000 {
		return [2]int{}, fmt.Errorf("%q is not two request counts per minute (0..100000000)", s)
	}
	return [2]int{x, y}, nil
}

func parseAccess(e *profiles.Node) (bool, error) {
	a, _ := e.Attr("access")
	w, err := parseAccessText(a)
	if err != nil {
		return false, e.Errorf("%v", err)
	}
	return w, nil
}

// parseAccessText reads read-only (ro, the default) or read-write (rw).
func parseAccessText(a string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(a)) {
	case "", "ro", "read-only", "readonly":
		return false, nil
	case "rw", "read-write", "readwrite":
		return true, nil
	}
	return false, fmt.Errorf("access %q is neither read-only nor read-write", a)
}

func parseEngineID(sec *profiles.Section, e *profiles.Node, text string, spec *engineIDSpec) error {
	if ent, ok := e.Attr("enterprise"); ok {
		n, err := strconv.ParseUint(strings.TrimSpace(ent), 10, 31)
		if err != nil {
			return e.Errorf("enterprise %q is not a private enterprise number", ent)
		}
		spec.enterprise = uint32(n)
	}
	if f, ok := e.Attr("format"); ok {
		spec.format = strings.ToLower(strings.TrimSpace(f))
	}
	spec.key, spec.literal = "", ""
	if sec.Profile.Schema.Has(text) {
		spec.key = text
	} else {
		spec.literal = text
	}
	switch spec.format {
	case "mac":
		if spec.literal != "" {
			if _, err := net.ParseMAC(spec.literal); err != nil {
				return e.Errorf("engine_id: %q is neither a databus key nor a MAC address", text)
			}
		}
	case "ipv4", "text":
		if spec.format == "text" && len(spec.literal) > 27 {
			return e.Errorf("engine_id: text longer than 27 octets")
		}
	case "octets":
		if spec.literal != "" {
			b, err := hex.DecodeString(strings.NewReplacer(":", "", " ", "").Replace(spec.literal))
			if err != nil || len(b) > 27 {
				return e.Errorf("engine_id: %q is not up to 27 hex octets", text)
			}
		}
	default:
		return e.Errorf("engine_id format %q is not mac, ipv4, text or octets", spec.format)
	}
	return nil
}

// profileMIBs returns the profile's snmp/mibs directory when it has one.
func profileMIBs(sec *profiles.Section) fs.FS {
	if sec.FS == nil {
		return nil
	}
	if st, err := fs.Stat(sec.FS, "mibs"); err != nil || !st.IsDir() {
		return nil
	}
	sub, err := fs.Sub(sec.FS, "mibs")
	if err != nil {
		return nil
	}
	return sub
}
