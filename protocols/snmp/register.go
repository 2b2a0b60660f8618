package snmp

import (
	"fmt"
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
	// Communities are the v1/v2c communities, community → "read-only" or "read-write",
	// of every profile whose snmp.xml names none (Conpot's templates never do). Unset,
	// they are Conpot's agent's: public read-only and private read-write; an empty
	// table turns v1/v2c off for such profiles.
	Communities map[string]string `toml:"communities"`
	// Users are SNMPv3 USM users added to every SNMP profile. Conpot's agent has three
	// users with keys published in its source; icsnare has none unless configured here
	// or in an icsnare profile's <entity name="user">.
	Users []UserSpec `toml:"users"`
}

// defaultCommunities are Conpot's agent's communities, for profiles that name none.
var defaultCommunities = map[string]string{"public": "read-only", "private": "read-write"}

// communities returns the configured defaults, checked.
func (o *options) communities() (map[string]bool, error) {
	src := o.Communities
	if src == nil {
		src = defaultCommunities
	}
	out := make(map[string]bool, len(src))
	for c, a := range src {
		if c == "" {
			return nil, fmt.Errorf("[protocols.snmp] communities: empty community")
		}
		w, err := parseAccessText(a)
		if err != nil {
			return nil, fmt.Errorf("[protocols.snmp] communities.%s: %v", c, err)
		}
		out[c] = w
	}
	return out, nil
}

// users returns the configured users, checked.
func (o *options) users() ([]*user, error) {
	var out []*user
	seen := map[string]bool{}
	for i, spec := range o.Users {
		u, err := spec.user()
		if err != nil {
			return nil, fmt.Errorf("[protocols.snmp] users[%d]: %v", i, err)
		}
		if seen[u.name] {
			return nil, fmt.Errorf("[protocols.snmp] users[%d]: user %q configured twice", i, u.name)
		}
		seen[u.name] = true
		out = append(out, u)
	}
	return out, nil
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
	if _, err := o.mibDirs(); err != nil {
		return err
	}
	if _, err := o.communities(); err != nil {
		return err
	}
	_, err := o.users()
	return err
}

// Configure parses <snmp>: <config> entities (tarpit, evasion, community, user, engine_id,
// max_message_size; a profile naming no community gets the communities of opts, by
// default public read-only and private read-write; opts' users are added) and <mibs>/<mib name>/<symbol name instance> with <value> (a databus
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
	if len(cfg.communities) == 0 {
		if cfg.communities, err = opt.communities(); err != nil {
			return nil, err
		}
	}
	users, err := opt.users()
	if err != nil {
		return nil, err
	}
	for _, u := range users {
		if _, dup := cfg.users[u.name]; dup {
			return nil, root.Errorf("user %q is defined by this profile and by [protocols.snmp] users", u.name)
		}
		cfg.users[u.name] = u
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
