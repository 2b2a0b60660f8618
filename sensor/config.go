// Package sensor runs many emulated hosts: it maps addresses to profiles, binds one socket
// per (transport, family, port) for all of them, dispatches connections and datagrams on
// the destination address, and carries events to sinks and counts to Prometheus.
package sensor

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"os/user"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/icsnare/icsnare/events"
	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/ratelimit"
)

// Config is the sensor configuration (a TOML file; command-line flags override it).
type Config struct {
	SensorID string `toml:"sensor_id"`
	// Seed makes every host's identity (serials, names, random registers) stable across
	// restarts and different from another deployment's. Empty: a random one generated on
	// first start and kept in the state directory.
	Seed    string       `toml:"seed"`
	Hosts   []HostRule   `toml:"hosts"`
	Bind    BindConfig   `toml:"bind"`
	Limits  LimitsConfig `toml:"limits"`
	Events  EventsConfig `toml:"events"`
	Metrics struct {
		Listen string `toml:"listen"`
	} `toml:"metrics"`
	Privileges struct {
		User  string `toml:"user"`
		Group string `toml:"group"`
		// Seccomp confines the running sensor to the system calls it needs (default on).
		Seccomp bool `toml:"seccomp"`
	} `toml:"privileges"`
	Netcfg NetcfgConfig `toml:"netcfg"`
	XDP    XDPConfig    `toml:"xdp"`
	State  StateConfig  `toml:"state"`
	// Protocols holds the options of protocols that take some (protocols.Configurable),
	// by protocol name: their [protocols.<name>] tables, then their command-line flags.
	// A protocol with no entry gets its defaults (see ProtocolOptions).
	Protocols map[string]any `toml:"-"`
	// Sinks holds the options of the event sinks the configuration turns on, by kind: each
	// [sinks.<kind>] table decoded by its kind's options type (events.Kind). The events
	// file ([events]) is not among them.
	Sinks map[string]any `toml:"-"`

	file   string            // where it was read from, for messages
	src    string            // its text, to find the line of a key
	byFlag map[string]string // keys a command-line flag set, and that flag
}

// HostRule maps addresses (single addresses or CIDR prefixes) to a profile, or to a mix of
// profiles, of which a fraction (Density) are live devices.
type HostRule struct {
	Addresses []string `toml:"addresses"`
	Profile   string   `toml:"profile"` // an embedded profile name or a template directory
	// Profiles is a weighted mix instead of Profile (profile → weight): each address gets
	// one of them, chosen from the seed and the address, so a prefix looks like a plant
	// with several kinds of device.
	Profiles map[string]float64 `toml:"profiles"`
	// Density is the fraction of the addresses that are devices (0 < d ≤ 1; 0 means 1),
	// chosen from the seed and the address; the others are not hosts, as most addresses
	// of a real subnet are not.
	Density float64 `toml:"density"`
}

// ProfileNames lists the profiles the rule uses, sorted.
func (h HostRule) ProfileNames() []string {
	if len(h.Profiles) == 0 {
		return []string{h.Profile}
	}
	names := make([]string, 0, len(h.Profiles))
	for n := range h.Profiles {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// BindConfig says where sockets are bound.
type BindConfig struct {
	// Address overrides the bind address ("" picks: the single configured address, else the
	// wildcard of each family in use).
	Address    string         `toml:"address"`
	PortOffset int            `toml:"port_offset"`
	Ports      map[string]int `toml:"ports"` // per-protocol port overrides, e.g. modbus = 5020
	// EphemeralPorts is where services' ephemeral endpoints (TFTP transfers, FTP passive
	// data) are bound on the host's address.
	EphemeralPorts PortRange `toml:"ephemeral_ports"`
	// TemplatePorts serves each protocol on its template's port attribute (Conpot's
	// templates say 5020, 16100 …) instead of the standard port. Ports still wins;
	// PortOffset applies to either.
	TemplatePorts bool `toml:"template_ports"`
}

// LimitsConfig bounds what attackers can make the sensor hold.
type LimitsConfig struct {
	IdleTimeout       Duration `toml:"idle_timeout"`
	WriteTimeout      Duration `toml:"write_timeout"`
	MaxConnections    int      `toml:"max_connections"`
	MaxConnsPerHost   int      `toml:"max_connections_per_host"`
	MaxConnsPerSource int      `toml:"max_connections_per_source"`
	// MaxConnsPerSourcePrefix bounds the connections of one source /24 (IPv6: /64).
	MaxConnsPerSourcePrefix int `toml:"max_connections_per_source_prefix"`
	// RequestTimeout bounds the time from a request's first byte to its last, so trickling
	// clients cannot hold connection slots (0: no bound).
	RequestTimeout Duration `toml:"request_timeout"`
	// EvictIdleAfter: when a cap is reached, the connection whose last complete request is
	// the oldest, and at least this old, is closed to admit the new one.
	EvictIdleAfter Duration `toml:"evict_idle_after"`
	// MaxHosts bounds the materialised hosts kept in memory; 0 derives it from HostMemory.
	MaxHosts int `toml:"max_hosts"`
	// HostMemory is the memory hosts may take (0, "auto": a quarter of what the machine or
	// the sensor's cgroup allows); max_hosts = HostMemory / HostCost.
	HostMemory      ByteSize `toml:"host_memory"`
	HostIdle        Duration `toml:"host_idle"` // an idle host may be evicted (and regenerated identically)
	UDPFlowIdle     Duration `toml:"udp_flow_idle"`
	UDPFlowLifetime Duration `toml:"udp_flow_lifetime"` // a UDP session ends this long after it began, busy or not
	MaxUDPFlows     int      `toml:"max_udp_flows"`
	MaxEventPayload int      `toml:"max_event_payload"`
	// UDPWorkers is how many sockets serve each UDP port (SO_REUSEPORT spreads the
	// sources over them), each read by one goroutine; 0: one per two CPUs.
	UDPWorkers int `toml:"udp_workers"`
	// A datagram to a prefix's broadcast address is answered by at most BroadcastMaxHosts
	// hosts with at most BroadcastMaxBytes bytes together; a source may send
	// BroadcastPerSourcePerMinute of them (all sources: BroadcastPerMinute; 0: no limit).
	BroadcastMaxHosts           int `toml:"broadcast_max_hosts"`
	BroadcastMaxBytes           int `toml:"broadcast_max_bytes"`
	BroadcastPerSourcePerMinute int `toml:"broadcast_per_source_per_minute"`
	BroadcastPerMinute          int `toml:"broadcast_per_minute"`
	// UDP answers to a source that has not proved it receives them (see
	// protocols.Session.Verify) hold at most UDPAmplification times the request's bytes
	// (per protocol: UDPAmplificationPer); every source gets at most UDPBytesPerSource answer
	// bytes a minute, and every port sends at most UDPBytesPerPort (0: no bound).
	UDPAmplification    float64            `toml:"udp_amplification"`
	UDPAmplificationPer map[string]float64 `toml:"udp_amplification_per_protocol"`
	UDPBytesPerSource   int64              `toml:"udp_bytes_per_source_per_minute"`
	UDPBytesPerPort     int64              `toml:"udp_bytes_per_port_per_minute"`
}

// DefaultPerSession is events.per_session unless configured: chosen so that a 40 k
// requests/s Modbus scan writes well under 1 MB/s of events (README, Performance).
const DefaultPerSession = 100

// EventsConfig configures the event stream.
type EventsConfig struct {
	File   string `toml:"file"`   // "-" for stdout, "" for none
	Format string `toml:"format"` // "icsnare" (default) or "conpot"
	Buffer int    `toml:"buffer"` // events queued before drops
	// Mode is the events file's permission bits, octal ("0640"; unset: a new file is
	// created 0640 under the umask and an existing one keeps its mode); Group the group it
	// is given ("" leaves it; a name or a numeric gid, e.g. "2000" for T-Pot's collectors).
	// Both are applied whenever the file is opened: at start and on SIGHUP.
	Mode  string `toml:"mode"`
	Group string `toml:"group"`
	// PublicIP is written as Conpot's public_ip (format "conpot"); it is never looked up.
	PublicIP string `toml:"public_ip"`
	// ShutdownBudget is how long the sinks get at shutdown to write what is queued, flush
	// and close; a sink still busy then is abandoned and its losses logged.
	ShutdownBudget Duration `toml:"shutdown_budget"`
	// RotateSize and RotateAge rotate the events file (0: never; logrotate and SIGHUP
	// remain): it is renamed <file>.<UTC stamp>, compressed with Compress ("", "gzip",
	// "zstd") off the sinks' path, and the newest Keep rotated files are kept (0: all).
	RotateSize ByteSize `toml:"rotate_size"`
	RotateAge  Duration `toml:"rotate_age"`
	Keep       int      `toml:"keep"`
	Compress   string   `toml:"compress"`
	// Fsync is "never" (the default), "interval" (at most every FsyncInterval) or "always"
	// (after every event).
	Fsync         string   `toml:"fsync"`
	FsyncInterval Duration `toml:"fsync_interval"`
	// PerSession is volume control: a session's first PerSession request events are
	// written, then only writes, state changes and errors; its other requests are
	// summarised in its end event (0: every event written). Protocols overrides it per
	// protocol ([events.protocols.<name>] per_session).
	PerSession int                             `toml:"per_session"`
	Protocols  map[string]EventsProtocolConfig `toml:"protocols"`
	// FloodSummary writes, once a minute, a flood.summary event per (port, protocol, source
	// /24 or /64) that volume control summarised requests of.
	FloodSummary bool `toml:"flood_summary"`
}

// EventsProtocolConfig is a protocol's [events.protocols.<name>] table.
type EventsProtocolConfig struct {
	PerSession *int `toml:"per_session"`
}

// KeepEvents returns the per_session volume control of protocol proto.
func (e *EventsConfig) KeepEvents(proto string) int {
	if p, ok := e.Protocols[proto]; ok && p.PerSession != nil {
		return *p.PerSession
	}
	return e.PerSession
}

// FileMode returns the parsed events.mode; 0 when unset (the file is created 0640 under
// the umask, and an existing file keeps its mode).
func (e *EventsConfig) FileMode() (fs.FileMode, error) {
	if e.Mode == "" {
		return 0, nil
	}
	m, err := strconv.ParseUint(e.Mode, 8, 32)
	if err != nil || m > 0o777 {
		return 0, fmt.Errorf("events.mode %q: want octal permission bits such as 0640", e.Mode)
	}
	return fs.FileMode(m), nil
}

// GID returns the gid events.group names, or -1 when it is unset.
func (e *EventsConfig) GID() (int, error) {
	if e.Group == "" {
		return -1, nil
	}
	if n, err := strconv.Atoi(e.Group); err == nil {
		if n < 0 {
			return 0, fmt.Errorf("events.group %q: not a group id", e.Group)
		}
		return n, nil
	}
	g, err := user.LookupGroup(e.Group)
	if err != nil {
		return 0, fmt.Errorf("events.group %q: %w", e.Group, err)
	}
	return strconv.Atoi(g.Gid)
}

// NetcfgConfig makes configured prefixes local with netlink.
type NetcfgConfig struct {
	AnyIP     bool   `toml:"anyip"`      // add AnyIP local routes for every configured prefix
	Device    string `toml:"device"`     // device for AnyIP routes (default lo)
	Aliases   string `toml:"aliases_on"` // add /32 and /128 aliases for single addresses on this interface
	MAC       string `toml:"mac"`        // set this MAC on Interface
	Interface string `toml:"interface"`
}

// XDPConfig attaches the kernel rate limiter.
type XDPConfig struct {
	Interface string `toml:"interface"` // "" disables XDP
	Mode      string `toml:"mode"`      // auto, native or generic
	// PinPath pins the maps on a mounted bpffs so `icsnare xdp stats` can read them.
	PinPath string `toml:"pin_path"`
	// Limits for UDP ports not covered by a profile or a rule, in requests per minute.
	PerSourcePerMinute int `toml:"per_source_per_minute"`
	GlobalPerMinute    int `toml:"global_per_minute"`
	// Rules are request limits for UDP services, with classes defined by payload
	// patterns; they come before the profiles' limits (a profile's limit for the same port
	// and class is ignored). Enforced by XDP when it is attached, else in userspace.
	Rules []XDPRule `toml:"rules"`
	// Identity gives each emulated host its own MAC and TCP/IP stack in the kernel.
	Identity IdentityConfig `toml:"identity"`
}

// XDPRule is one [[xdp.rules]] entry: the limit of one request class on a UDP port.
type XDPRule struct {
	Port     int    `toml:"port"`     // the bound UDP port, or
	Protocol string `toml:"protocol"` // every UDP port the protocol is bound on
	// Class is "" (the port's default class), an SNMP class (get, next, set, bulk) or
	// the name of the class Match defines.
	Class string `toml:"class"`
	// Match: alternatives, each "OFFSET:HEX[/MASK] ..." byte matches on the UDP payload,
	// e.g. ["0:810b 4:01 5:00/f8 6:1008"] (protocols/ratelimit.ParsePattern).
	Match              []string `toml:"match"`
	PerSourcePerMinute int      `toml:"per_source_per_minute"`
	GlobalPerMinute    int      `toml:"global_per_minute"`
	Burst              int      `toml:"burst"`        // per-source bucket depth (0: a minute's worth)
	GlobalBurst        int      `toml:"global_burst"` // global bucket depth (0: a minute's worth)
	Reserve            int      `toml:"reserve"`      // global tokens only known sources (answered twice) take (0: a quarter, -1: none)
}

// limit converts the rule for port, validating it.
func (r XDPRule) limit(port uint16) (ratelimit.Rule, error) {
	out := ratelimit.Rule{Port: port, Class: r.Class, PerSource: r.PerSourcePerMinute, Global: r.GlobalPerMinute,
		Burst: r.Burst, GlobalBurst: r.GlobalBurst, Reserve: r.Reserve}
	for _, m := range r.Match {
		p, err := ratelimit.ParsePattern(m)
		if err != nil {
			return out, err
		}
		out.Match = append(out.Match, p)
	}
	return out, out.Validate()
}

// validateXDPRules checks [[xdp.rules]] for what can be known without the profiles.
func (c *Config) validateXDPRules() error {
	for i, r := range c.XDP.Rules {
		if (r.Port == 0) == (r.Protocol == "") {
			return fmt.Errorf("xdp.rules[%d]: give either port or protocol", i)
		}
		if r.Port < 0 || r.Port > 65535 {
			return fmt.Errorf("xdp.rules[%d]: port %d out of range 1..65535", i, r.Port)
		}
		if _, err := r.limit(uint16(r.Port)); err != nil {
			return fmt.Errorf("xdp.rules[%d]: %w", i, err)
		}
	}
	if c.XDP.PerSourcePerMinute < 0 || c.XDP.GlobalPerMinute < 0 {
		return fmt.Errorf("xdp: negative per_source_per_minute or global_per_minute")
	}
	return nil
}

// Duration is a time.Duration read from TOML as "30s".
type Duration struct{ time.Duration }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	if v < 0 {
		return fmt.Errorf("negative duration %s", b)
	}
	d.Duration = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// DefaultConfig is the configuration of `icsnare run` with no arguments: the default profile
// on every local address at the standard ports.
func DefaultConfig() Config {
	c := Config{SensorID: "icsnare"}
	c.Hosts = []HostRule{{Addresses: []string{"0.0.0.0/0", "::/0"}, Profile: "default"}}
	c.Events = EventsConfig{File: "-", Format: "icsnare", Buffer: 65536, ShutdownBudget: Duration{time.Second},
		Fsync: FsyncNever, FsyncInterval: Duration{time.Second}, PerSession: DefaultPerSession, FloodSummary: true}
	c.Metrics.Listen = "127.0.0.1:10108"
	c.Privileges.User = "nobody"
	c.Privileges.Seccomp = true
	c.Limits = LimitsConfig{
		IdleTimeout:       Duration{60 * time.Second},
		WriteTimeout:      Duration{10 * time.Second},
		MaxConnections:    8000,
		MaxConnsPerHost:   64,
		MaxConnsPerSource: 256,

		MaxConnsPerSourcePrefix: 1024,
		RequestTimeout:          Duration{15 * time.Second},
		EvictIdleAfter:          Duration{10 * time.Second},
		HostIdle:                Duration{30 * time.Minute},
		UDPFlowIdle:             Duration{60 * time.Second},
		UDPFlowLifetime:         Duration{30 * time.Minute},
		MaxUDPFlows:             1 << 16,
		MaxEventPayload:         4096,

		BroadcastMaxHosts:           256,
		BroadcastMaxBytes:           64 << 10,
		BroadcastPerSourcePerMinute: 30,
		BroadcastPerMinute:          600,

		UDPAmplification:  10,
		UDPBytesPerSource: 1 << 20,
		UDPBytesPerPort:   64 << 20,
	}
	c.Bind.EphemeralPorts = PortRange{Lo: 49152, Hi: 65535}
	c.Netcfg.Device = "lo"
	c.XDP.Mode = "auto"
	c.Protocols = map[string]any{}
	return c
}

// ProtocolOptions returns the options of the protocol registered under name, creating
// its defaults on first use: nil for a protocol that takes none, an error for a name no
// protocol is registered under.
func (c *Config) ProtocolOptions(name string) (any, error) {
	if o, ok := c.Protocols[name]; ok {
		return o, nil
	}
	o, err := protocols.NewOptions(name)
	if err != nil || o == nil {
		return nil, err
	}
	if c.Protocols == nil {
		c.Protocols = map[string]any{}
	}
	c.Protocols[name] = o
	return o, nil
}

// LoadConfig reads a TOML file over the defaults. Unknown keys are errors, with their
// names; each [protocols.<name>] table is decoded by its protocol's options type.
func LoadConfig(path string) (Config, error) {
	c := DefaultConfig()
	c.Hosts = nil
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("config: %w", err)
	}
	src := string(b)
	md, err := toml.Decode(src, &c)
	if err != nil {
		return c, tomlError(path, err)
	}
	// The protocols' and the sinks' tables, decoded by the types they registered.
	var tables struct {
		Protocols map[string]toml.Primitive `toml:"protocols"`
		Sinks     map[string]toml.Primitive `toml:"sinks"`
	}
	pmd, err := toml.Decode(src, &tables)
	if err != nil {
		return c, tomlError(path, err)
	}
	if err := decodeTables(path, src, pmd, "protocols", tables.Protocols, c.Protocols, func(name string) (any, error) {
		opts, err := protocols.NewOptions(name)
		if err == nil && opts == nil {
			err = fmt.Errorf("protocol %s takes no options", name)
		}
		return opts, err
	}); err != nil {
		return c, err
	}
	c.Sinks = map[string]any{}
	if err := decodeTables(path, src, pmd, "sinks", tables.Sinks, c.Sinks, events.NewOptions); err != nil {
		return c, err
	}
	var unknown []string
	for _, k := range md.Undecoded() {
		if k[0] != "protocols" && k[0] != "sinks" {
			unknown = append(unknown, k.String())
		}
	}
	for _, k := range pmd.Undecoded() {
		if (k[0] == "protocols" || k[0] == "sinks") && len(k) > 2 {
			unknown = append(unknown, k.String())
		}
	}
	if len(unknown) > 0 {
		return c, fmt.Errorf("%s: unknown keys: %s", keyPos(path, src, strings.Split(unknown[0], ".")...),
			strings.Join(unknown, ", "))
	}
	if len(c.Hosts) == 0 {
		c.Hosts = DefaultConfig().Hosts
	}
	c.file, c.src = path, src
	return c, c.Validate()
}

// decodeTables decodes each [<section>.<name>] table into the options value newOptions
// returns for name, storing it in into[name].
func decodeTables(path, src string, md toml.MetaData, section string, tables map[string]toml.Primitive,
	into map[string]any, newOptions func(name string) (any, error)) error {
	names := make([]string, 0, len(tables))
	for name := range tables {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		at := keyPos(path, src, section, name)
		opts, err := newOptions(name)
		if err != nil {
			return fmt.Errorf("%s: [%s.%s]: %w", at, section, name, err)
		}
		if err := md.PrimitiveDecode(tables[name], opts); err != nil {
			var pe toml.ParseError
			if errors.As(err, &pe) {
				return fmt.Errorf("%s:%d: [%s.%s]: %s", path, pe.Position.Line, section, name, pe.Message)
			}
			return fmt.Errorf("%s: [%s.%s]: %w", at, section, name, err)
		}
		if v, ok := opts.(protocols.Validator); ok && section == "sinks" {
			if err := v.Validate(); err != nil {
				return fmt.Errorf("%s: [%s.%s]: %w", at, section, name, err)
			}
		}
		into[name] = opts
	}
	return nil
}

// tomlError positions a TOML decoding error at its line.
func tomlError(path string, err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s:%d: %s", path, pe.Position.Line, pe.Message)
	}
	return fmt.Errorf("%s: %w", path, err)
}

// keyPos returns "path:line" for the line that defines key (a table header or a
// key = value line), or just path when it cannot tell.
func keyPos(path, src string, key ...string) string {
	want := strings.Join(key, ".")
	table := ""
	for i, line := range strings.Split(src, "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") {
			h := strings.Trim(line, "[] \t")
			if j := strings.Index(h, "#"); j >= 0 {
				h = strings.TrimRight(strings.TrimSpace(h[:j]), "] \t")
			}
			table = unquoteKey(h)
			if table == want {
				return fmt.Sprintf("%s:%d", path, i+1)
			}
			continue
		}
		if k, _, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			full := unquoteKey(strings.TrimSpace(k))
			if table != "" {
				full = table + "." + full
			}
			if full == want {
				return fmt.Sprintf("%s:%d", path, i+1)
			}
		}
	}
	return path
}

// unquoteKey normalises a dotted TOML key: no spaces around dots, no quotes.
func unquoteKey(k string) string {
	parts := strings.Split(k, ".")
	for i, p := range parts {
		parts[i] = strings.Trim(strings.TrimSpace(p), `"'`)
	}
	return strings.Join(parts, ".")
}

// protocolOptions is ProtocolOptions without recording the defaults it creates.
func (c *Config) protocolOptions(name string) (any, error) {
	if o, ok := c.Protocols[name]; ok {
		return o, nil
	}
	return protocols.NewOptions(name)
}

// Validate checks values that TOML's types do not.
func (c *Config) Validate() error {
	where := c.file
	if where == "" {
		where = "config"
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s: %s", where, fmt.Sprintf(format, args...))
	}
	if len(c.Hosts) == 0 {
		return bad("no [[hosts]]")
	}
	for i, h := range c.Hosts {
		if len(h.Addresses) == 0 {
			return bad("hosts[%d]: no addresses", i)
		}
		for _, a := range h.Addresses {
			if _, err := ParseAddrOrPrefix(a); err != nil {
				return bad("hosts[%d]: %v", i, err)
			}
		}
		switch {
		case h.Profile == "" && len(h.Profiles) == 0:
			return bad("hosts[%d]: no profile", i)
		case h.Profile != "" && len(h.Profiles) > 0:
			return bad("hosts[%d]: give profile or profiles, not both", i)
		}
		for name, w := range h.Profiles {
			if name == "" || !(w > 0) || w > 1e6 {
				return bad("hosts[%d]: profiles: weight of %q must be a number above 0 (and at most 1e6)", i, name)
			}
		}
		if !(h.Density >= 0 && h.Density <= 1) {
			return bad("hosts[%d]: density %v must be in 0..1 (0: every address)", i, h.Density)
		}
	}
	if c.Bind.PortOffset < 0 || c.Bind.PortOffset > 60000 {
		return bad("bind.port_offset %d out of range 0..60000", c.Bind.PortOffset)
	}
	for p, port := range c.Bind.Ports {
		if port < 1 || port > 65535 {
			return bad("bind.ports.%s = %d is not a port", p, port)
		}
		if _, ok := protocols.Lookup(p); !ok {
			return bad("bind.ports.%s: no protocol %q in this icsnare (have %s)", p, p, strings.Join(protocols.Names(), ", "))
		}
	}
	if c.Bind.Address != "" {
		if _, err := netip.ParseAddr(c.Bind.Address); err != nil {
			return bad("bind.address: %v", err)
		}
	}
	switch c.Events.Format {
	case "", "icsnare", "conpot":
	default:
		return bad("events.format %q: want icsnare or conpot", c.Events.Format)
	}
	if _, err := c.Events.FileMode(); err != nil {
		return fmt.Errorf("%s: %w", c.pos("events.mode"), err)
	}
	switch c.Events.Compress {
	case "", "gzip", "zstd":
	default:
		return bad("events.compress %q: want gzip, zstd or nothing", c.Events.Compress)
	}
	switch c.Events.Fsync {
	case "", FsyncNever, FsyncAlways:
	case FsyncInterval:
		if c.Events.FsyncInterval.Duration <= 0 {
			return bad("events.fsync = \"interval\" needs a positive events.fsync_interval")
		}
	default:
		return bad("events.fsync %q: want never, interval or always", c.Events.Fsync)
	}
	if c.Events.PerSession < 0 {
		return bad("events.per_session must not be negative (0: every event)")
	}
	for name, pc := range c.Events.Protocols {
		if _, ok := protocols.Lookup(name); !ok {
			return bad("events.protocols.%s: no protocol %q in this icsnare (have %s)", name, name, strings.Join(protocols.Names(), ", "))
		}
		if pc.PerSession != nil && *pc.PerSession < 0 {
			return bad("events.protocols.%s.per_session must not be negative (0: every event)", name)
		}
	}
	if c.Events.RotateSize < 0 || c.Events.Keep < 0 {
		return bad("events.rotate_size and events.keep must not be negative")
	}
	if (c.Events.RotateSize > 0 || c.Events.RotateAge.Duration > 0) && (c.Events.File == "-" || c.Events.File == "") {
		return bad("events.rotate_size and events.rotate_age rotate a file; events.file is %q", c.Events.File)
	}
	if c.Events.PublicIP != "" {
		if _, err := netip.ParseAddr(c.Events.PublicIP); err != nil {
			return fmt.Errorf("%s: events.public_ip %q: not an IP address", c.pos("events.public_ip"), c.Events.PublicIP)
		}
	}
	switch c.XDP.Mode {
	case "", "auto", "native", "generic":
	default:
		return bad("xdp.mode %q: want auto, native or generic", c.XDP.Mode)
	}
	if err := c.validateXDPRules(); err != nil {
		return bad("%v", err)
	}
	if err := c.XDP.Identity.validate(c.XDP); err != nil {
		return bad("%v", err)
	}
	if err := c.State.validate(); err != nil {
		return bad("%v", err)
	}
	l := &c.Limits
	for name, v := range map[string]int{"max_connections": l.MaxConnections, "max_connections_per_host": l.MaxConnsPerHost,
		"max_udp_flows": l.MaxUDPFlows, "broadcast_max_hosts": l.BroadcastMaxHosts,
		"broadcast_max_bytes": l.BroadcastMaxBytes} {
		if v <= 0 {
			return bad("limits.%s must be positive", name)
		}
	}
	if l.MaxHosts < 0 {
		return bad("limits.max_hosts must not be negative (0: from limits.host_memory)")
	}
	if l.BroadcastPerSourcePerMinute < 0 || l.BroadcastPerMinute < 0 {
		return bad("limits.broadcast_per_source_per_minute and limits.broadcast_per_minute must not be negative")
	}
	if l.UDPAmplification < 0 || l.UDPBytesPerSource < 0 || l.UDPBytesPerPort < 0 {
		return bad("limits.udp_amplification and the udp byte budgets must not be negative")
	}
	for p, a := range l.UDPAmplificationPer {
		if a < 0 {
			return bad("limits.udp_amplification_per_protocol.%s must not be negative", p)
		}
	}
	if c.Bind.EphemeralPorts.Lo == 0 {
		return bad("bind.ephemeral_ports: no range")
	}
	if l.IdleTimeout.Duration <= 0 || l.WriteTimeout.Duration <= 0 {
		return bad("limits.idle_timeout and limits.write_timeout must be positive")
	}
	if c.Events.Buffer <= 0 {
		c.Events.Buffer = 65536
	}
	names := make([]string, 0, len(c.Protocols))
	for name := range c.Protocols {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if _, ok := protocols.Lookup(name); !ok {
			return bad("protocols.%s: no protocol %q in this icsnare (have %s)", name, name, strings.Join(protocols.Names(), ", "))
		}
		if v, ok := c.Protocols[name].(protocols.Validator); ok {
			if err := v.Validate(); err != nil {
				return fmt.Errorf("%s: protocols.%s: %w", c.pos("protocols."+name), name, err)
			}
		}
	}
	return nil
}

// ParseAddrOrPrefix reads "192.0.2.7", "192.0.2.0/24" or "2001:db8::/64" as a prefix.
func ParseAddrOrPrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("address %q: %w", s, err)
		}
		if p.Masked() != p {
			return netip.Prefix{}, fmt.Errorf("prefix %q has host bits set (did you mean %s?)", s, p.Masked())
		}
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("address %q: %w", s, err)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}
