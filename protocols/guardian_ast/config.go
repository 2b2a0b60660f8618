package guardianast

import (
	"fmt"
	"strings"
	"time"

	"github.com/icsnare/icsnare/profiles"
)

// maxTanks is the number of tanks a TLS-350 console monitors at most.
const maxTanks = 12

// config is a parsed guardian_ast.xml with what the databus schema says about the tanks.
type config struct {
	tanks   int     // tanks 1..tanks have a productN key
	framing Framing // display-format framing
	// localClock shows the time of the station's zone (from the state in its header)
	// instead of UTC.
	localClock bool
	// quiet is how long an unfinished command may wait for the rest of its bytes before it
	// is taken as complete (a set command sent without a line end).
	quiet time.Duration
}

// Defaults of the knobs.
const (
	defaultQuiet = time.Second
	maxQuiet     = 30 * time.Second
)

func parseConfig(sec *profiles.Section) (*config, error) {
	root := sec.Root
	if root.Name != Name {
		return nil, root.Errorf("root element must be <%s>", Name)
	}
	c := &config{framing: FramingConpot, quiet: defaultQuiet}
	sec.CheckChildren(root, "device_info", "framing", "quiet_ms", "clock")
	if n := root.Child("device_info"); n != nil {
		sec.CheckChildren(n, "vendor_name", "product_code") // informational, as in Conpot
	}
	if n := root.Child("framing"); n != nil {
		switch strings.ToLower(n.TextTrim()) {
		case "conpot":
			c.framing = FramingConpot
		case "tls350", "tls-350":
			c.framing = FramingTLS
		default:
			return nil, n.Errorf("framing %q is neither \"conpot\" nor \"tls350\"", n.TextTrim())
		}
	}
	if n := root.Child("clock"); n != nil {
		switch strings.ToLower(n.TextTrim()) {
		case "utc":
		case "station":
			c.localClock = true
		default:
			return nil, n.Errorf("clock %q is neither \"utc\" nor \"station\"", n.TextTrim())
		}
	}
	if n := root.Child("quiet_ms"); n != nil {
		var ms int
		if _, err := fmt.Sscan(n.TextTrim(), &ms); err != nil || ms < 50 || time.Duration(ms)*time.Millisecond > maxQuiet {
			return nil, n.Errorf("quiet_ms %q is not a number of milliseconds from 50 to %d", n.TextTrim(), maxQuiet.Milliseconds())
		}
		c.quiet = time.Duration(ms) * time.Millisecond
	}
	schema := sec.Profile.Schema
	for c.tanks < maxTanks && schema.Has(fmt.Sprintf("product%d", c.tanks+1)) {
		c.tanks++
	}
	if c.tanks == 0 {
		return nil, root.Errorf("the template's databus defines no tank: guardian_ast needs the keys product1 … productN (Conpot's)")
	}
	if !schema.Has("station_name") {
		sec.Warnf(root, "the databus has no station_name key; every host shows its own generated station header")
	}
	for n := 1; n <= c.tanks; n++ {
		for _, k := range tankKeys(n) {
			if !schema.Has(k) {
				sec.Warnf(root, "the databus has no %s key; each host draws its own start value from its seed", k)
			}
		}
	}
	return c, nil
}
