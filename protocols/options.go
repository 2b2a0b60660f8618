package protocols

import (
	"fmt"
	"sort"
	"strings"
)

// Configurable is a Protocol that owns a table of the sensor configuration,
// [protocols.<name>], and may add command-line flags that set it. The options belong to
// one sensor: two sensors in one process may configure a protocol differently, so a
// protocol keeps no process-wide option state.
type Configurable interface {
	Protocol
	// NewOptions returns a fresh value of the protocol's options holding their defaults: a
	// pointer to a struct whose fields carry toml tags. The sensor decodes the protocol's
	// table into it (a key the struct lacks is an error naming the key), applies the
	// protocol's flags, calls Validate when the value has that method, and passes it to
	// Configure for every profile of that sensor.
	NewOptions() any
	// Flags lists the command-line flags of `icsnare run` and `check` that set options.
	Flags() []Flag
}

// Validator is implemented by options values that can check themselves (a directory
// that must exist, say). Errors name the option key.
type Validator interface {
	Validate() error
}

// Flag is a command-line flag that sets one protocol option.
type Flag struct {
	Name    string   // the flag, without dashes: "mibpath" for --mibpath
	Aliases []string // other names of the same flag, e.g. "a" for -a
	Key     string   // the option key it sets in [protocols.<name>]
	Usage   string   // help text; a `quoted` word names the argument
	// Set applies one occurrence of the flag to opts, a value from the protocol's
	// NewOptions after the configuration file was decoded into it: a repeatable flag
	// appends, any other replaces.
	Set func(opts any, value string) error
}

// ProtocolFlag is a Flag together with the protocol it belongs to.
type ProtocolFlag struct {
	Protocol string
	Flag
}

// Flags returns the flags of every registered Configurable protocol, sorted by name.
func Flags() []ProtocolFlag {
	regMu.RLock()
	defer regMu.RUnlock()
	var out []ProtocolFlag
	for name, p := range registry {
		if c, ok := p.(Configurable); ok {
			for _, f := range c.Flags() {
				out = append(out, ProtocolFlag{Protocol: name, Flag: f})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// NewOptions returns the default options of the protocol registered under name: nil for a
// protocol that takes none, an error for a name no protocol is registered under.
func NewOptions(name string) (any, error) {
	p, ok := Lookup(name)
	if !ok {
		return nil, fmt.Errorf("no protocol %q in this icsnare (have %s)", name, strings.Join(Names(), ", "))
	}
	c, ok := p.(Configurable)
	if !ok {
		return nil, nil
	}
	return c.NewOptions(), nil
}

// checkFlags panics when p declares a flag name another registered protocol already has;
// regMu must be held.
func checkFlags(p Protocol) {
	c, ok := p.(Configurable)
	if !ok {
		return
	}
	seen := map[string]string{}
	for name, q := range registry {
		if qc, ok := q.(Configurable); ok {
			for _, f := range qc.Flags() {
				for _, n := range append([]string{f.Name}, f.Aliases...) {
					seen[n] = name
				}
			}
		}
	}
	for _, f := range c.Flags() {
		for _, n := range append([]string{f.Name}, f.Aliases...) {
			if other, dup := seen[n]; dup {
				panic(fmt.Sprintf("protocols: %s and %s both declare the flag -%s", other, p.Name(), n))
			}
			seen[n] = p.Name()
		}
		if f.Set == nil {
			panic(fmt.Sprintf("protocols: %s: flag -%s has no Set", p.Name(), f.Name))
		}
	}
}
