package ipmi

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols/ratelimit"
)

// Privilege levels.
const (
	privCallback = 1
	privUser     = 2
	privOperator = 3
	privAdmin    = 4
	privOEM      = 5
	privNoAccess = 0x0F
)

// Limits of the profile knobs.
const (
	maxUsers          = 15 // user ids 1–15; a BMC's table is usually 10 or 16 entries
	maxNameLen        = 16
	maxPasswordLen    = 20
	defaultTimeout    = 60 * time.Second
	maxTimeout        = time.Hour
	defaultMaxPerHost = 16
)

// user is one entry of the BMC's user table.
type user struct {
	id       int
	name     string
	password []byte
	priv     byte
	active   bool
	fixed    bool
}

// config is the parsed <ipmi> section.
type config struct {
	deviceNameKey string // databus key naming the system (Conpot reads it, nothing shows it)
	deviceID      byte
	deviceRev     byte
	fwMajor       byte
	fwMinor       byte // BCD
	manufacturer  uint32
	product       uint16
	suites        []suite
	timeout       time.Duration
	maxPerHost    int
	macOUI        [3]byte
	userSlots     int
	v15Auth       []byte                  // IPMI v1.5 authentication types offered; none: v1.5 sessions off
	limits        ratelimit.ProfileLimits // rate class → per source, global (requests per minute)
	users         []*user
}

// Defaults: the BMC of a Supermicro X11DPi-N(T) board (product 0x0917), which is what
// many exposed BMCs look like.
func defaultConfig() *config {
	c := &config{deviceID: 0x20, deviceRev: 0x01, fwMajor: 1, fwMinor: 0x74,
		manufacturer: 10876, product: 0x0917, timeout: defaultTimeout,
		maxPerHost: defaultMaxPerHost, macOUI: [3]byte{0x0C, 0xC4, 0x7A}, userSlots: 10}
	for _, id := range []int{1, 2, 3, 15, 16, 17} {
		s, _ := lookupSuite(id)
		c.suites = append(c.suites, s)
	}
	return c
}

func parseConfig(sec *profiles.Section) (*config, error) {
	c := defaultConfig()
	root := sec.Root
	sec.CheckChildren(root, "device_info", "user_list", "cipher_suites", "auth_types", "session_timeout", "max_sessions", "mac_oui", "rate_limit")
	if di := root.Child("device_info"); di != nil {
		if err := parseDeviceInfo(sec, di, c); err != nil {
			return nil, err
		}
	}
	if n := root.Child("cipher_suites"); n != nil {
		c.suites = nil
		for f := range strings.SplitSeq(n.TextTrim(), ",") {
			id, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil {
				return nil, n.Errorf("cipher suite %q is not a number", f)
			}
			s, ok := lookupSuite(id)
			if !ok {
				return nil, n.Errorf("cipher suite %d is not supported (have 0, 1, 2, 3, 6, 7, 8, 15, 16, 17)", id)
			}
			for _, have := range c.suites {
				if have.id == s.id {
					return nil, n.Errorf("cipher suite %d listed twice", id)
				}
			}
			c.suites = append(c.suites, s)
		}
		if len(c.suites) == 0 {
			return nil, n.Errorf("no cipher suite")
		}
	}
	if n := root.Child("auth_types"); n != nil {
		for f := range strings.SplitSeq(n.TextTrim(), ",") {
			var t byte
			switch strings.ToLower(strings.TrimSpace(f)) {
			case "":
				continue
			case "none":
				t = authNone
			case "md5":
				t = authMD5
			case "password":
				t = authPassword
			default:
				return nil, n.Errorf("IPMI v1.5 auth type %q: want none, md5 or password", strings.TrimSpace(f))
			}
			if !slices.Contains(c.v15Auth, t) {
				c.v15Auth = append(c.v15Auth, t)
			}
		}
	}
	if n := root.Child("session_timeout"); n != nil {
		v, err := strconv.Atoi(n.TextTrim())
		if err != nil || v < 1 || time.Duration(v)*time.Second > maxTimeout {
			return nil, n.Errorf("session timeout %q: want seconds, 1–%d", n.TextTrim(), int(maxTimeout/time.Second))
		}
		c.timeout = time.Duration(v) * time.Second
	}
	if n := root.Child("max_sessions"); n != nil {
		v, err := strconv.Atoi(n.TextTrim())
		if err != nil || v < 1 || v > 256 {
			return nil, n.Errorf("max sessions %q: want 1–256", n.TextTrim())
		}
		c.maxPerHost = v
	}
	if n := root.Child("mac_oui"); n != nil {
		parts := strings.Split(n.TextTrim(), ":")
		if len(parts) != 3 {
			return nil, n.Errorf("MAC OUI %q: want three hex octets like 0C:C4:7A", n.TextTrim())
		}
		for i, p := range parts {
			v, err := strconv.ParseUint(p, 16, 8)
			if err != nil {
				return nil, n.Errorf("MAC OUI %q: want three hex octets like 0C:C4:7A", n.TextTrim())
			}
			c.macOUI[i] = byte(v)
		}
	}
	if err := parseRateLimits(root, c); err != nil {
		return nil, err
	}
	if ul := root.Child("user_list"); ul != nil {
		if err := parseUsers(sec, ul, c); err != nil {
			return nil, err
		}
	}
	if len(c.users) == 0 {
		sec.Warnf(root, "no user: every RAKP exchange fails with status 0x0D")
	}
	return c, nil
}

func parseDeviceInfo(sec *profiles.Section, di *profiles.Node, c *config) error {
	sec.CheckChildren(di, "device_name", "manufacturer_id", "product_id", "device_id", "device_revision", "firmware")
	if n := di.Child("device_name"); n != nil {
		c.deviceNameKey = n.TextTrim()
		if c.deviceNameKey != "" && !sec.Profile.Schema.Has(c.deviceNameKey) {
			sec.Warnf(n, "databus key %q is not defined", c.deviceNameKey)
		}
	}
	num := func(name string, max uint64) (uint64, bool, error) {
		n := di.Child(name)
		if n == nil {
			return 0, false, nil
		}
		v, err := strconv.ParseUint(n.TextTrim(), 0, 32)
		if err != nil || v > max {
			return 0, false, n.Errorf("%q: want a number 0–%d", n.TextTrim(), max)
		}
		return v, true, nil
	}
	if v, ok, err := num("manufacturer_id", 0xFFFFF); err != nil {
		return err
	} else if ok {
		c.manufacturer = uint32(v)
	}
	if v, ok, err := num("product_id", 0xFFFF); err != nil {
		return err
	} else if ok {
		c.product = uint16(v)
	}
	if v, ok, err := num("device_id", 0xFF); err != nil {
		return err
	} else if ok {
		c.deviceID = byte(v)
	}
	if v, ok, err := num("device_revision", 0x0F); err != nil {
		return err
	} else if ok {
		c.deviceRev = byte(v)
	}
	if n := di.Child("firmware"); n != nil {
		maj, minor, ok := strings.Cut(n.TextTrim(), ".")
		a, err1 := strconv.Atoi(maj)
		b, err2 := strconv.Atoi(minor)
		if !ok || err1 != nil || err2 != nil || a < 0 || a > 127 || b < 0 || b > 99 || len(minor) != 2 {
			return n.Errorf("firmware %q: want MAJOR.MINOR with 0–127 and two minor digits, e.g. 1.74", n.TextTrim())
		}
		c.fwMajor, c.fwMinor = byte(a), byte(b/10<<4|b%10)
	}
	return nil
}

func parseUsers(sec *profiles.Section, ul *profiles.Node, c *config) error {
	sec.CheckChildren(ul, "user")
	for _, u := range ul.ChildrenNamed("user") {
		sec.CheckChildren(u, "user_name", "password", "privilege", "active", "fixed")
		if len(c.users) == maxUsers {
			return u.Errorf("more than %d users", maxUsers)
		}
		us := &user{id: len(c.users) + 1, priv: privUser, active: true, fixed: true}
		name, _ := u.ChildText("user_name")
		if name == "" || len(name) > maxNameLen {
			return u.Errorf("user_name %q: want 1–%d bytes", name, maxNameLen)
		}
		for _, o := range c.users {
			if o.name == name {
				return u.Errorf("user %q defined twice", name)
			}
		}
		us.name = name
		pw, _ := u.ChildText("password")
		if len(pw) > maxPasswordLen {
			return u.Errorf("password of %q longer than %d bytes", name, maxPasswordLen)
		}
		us.password = []byte(pw)
		if s, ok := u.ChildText("privilege"); ok {
			v, err := strconv.Atoi(s)
			if err != nil || v < privCallback || v > privAdmin {
				return u.Errorf("privilege %q of %q: want 1 (callback) to 4 (administrator)", s, name)
			}
			us.priv = byte(v)
		}
		for _, f := range []struct {
			el  string
			dst *bool
		}{{"active", &us.active}, {"fixed", &us.fixed}} {
			if s, ok := u.ChildText(f.el); ok {
				b, err := profiles.ParseBool(s)
				if err != nil {
					return u.Errorf("%s of %q: %v", f.el, name, err)
				}
				*f.dst = b
			}
		}
		c.users = append(c.users, us)
	}
	if len(c.users) > c.userSlots {
		c.userSlots = len(c.users)
	}
	return nil
}

func (c *config) String() string {
	ids := make([]string, len(c.suites))
	for i, s := range c.suites {
		ids[i] = strconv.Itoa(int(s.id))
	}
	return fmt.Sprintf("ipmi: %d users, suites %s", len(c.users), strings.Join(ids, ","))
}
