package snmp

import (
	"time"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
)

// Name is the protocol's template directory name.
const Name = "snmp"

func init() { protocols.Register(protocol{}) }

// protocol is the registered SNMP agent.
type protocol struct{}

// Name implements protocols.Protocol.
func (protocol) Name() string { return Name }

// options are the agent's sensor-wide options, the [protocols.snmp] table of the sensor
// configuration.
type options struct {
	// MIBPath lists directories of extra MIB modules (Conpot's -a / --mibpath), each
	// searched with every directory below it, after the profile's snmp/mibs and before
	// the base MIBs shipped in profiles/.
	MIBPath []string `toml:"mibpath"`
}

// NewOptions implements protocols.Configurable.
func (protocol) NewOptions() any { return &options{} }

// Flags implements protocols.Configurable: --mibpath DIR and Conpot's -a DIR append to
// [protocols.snmp] mibpath.
func (protocol) Flags() []protocols.Flag {
	return []protocols.Flag{{
		Name: "mibpath", Aliases: []string{"a"}, Key: "mibpath",
		Usage: "add a `directory` of MIB files for SNMP profiles (repeatable; also -a)",
		Set: func(o any, v string) error {
			opts := o.(*options)
			opts.MIBPath = append(opts.MIBPath, v)
			return nil
		},
	}}
}

// Validate implements protocols.Validator: every mibpath entry is a readable directory.
func (o *options) Validate() error {
	_, err := o.mibDirs()
	return err
}

// Configure parses <snmp>: <config> entities (tarpit, evasion, community, user, engine_id,
// max_message_size) and <mibs>/<mib name>/<symbol name instance> with <value> (a databus
// key or a literal) and an optional <engine type>. opts is the sensor's *options, or nil
// for the defaults.
func (protocol) Configure(sec *profiles.Section, opts any) (protocols.Service, error) {
	opt, _ := opts.(*options)
	if opt == nil {
		opt = &options{}
	}
	dirs, err := opt.mibDirs()
	if err != nil {
		return nil, err
	}
	root := sec.Root
	sec.CheckChildren(root, "config", "mibs")
	cfg, err := parseConfig(sec, root)
	if err != nil {
		return nil, err
	}
	if len(cfg.communities) == 0 && len(cfg.users) == 0 {
		sec.Warnf(root, "no community and no user: the agent answers nobody")
	}
	t, err := buildTree(sec, root, dirs)
	if err != nil {
		return nil, err
	}
	for _, o := range t.objs {
		if o.name == "snmpEngineMaxMessageSize.0" {
			n := int64(cfg.maxMsg)
			o.builtin = func(b []byte, _ *hostState, _ time.Time) []byte { return appendInt(b, tagInteger, n) }
		}
	}
	lim, err := newLimiter(cfg.evasion)
	if err != nil {
		return nil, err
	}
	s := &service{cfg: cfg, tree: t, lim: lim}
	s.pool.New = func() any { return &reqState{} }
	return s, nil
}
