package sensor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"os/user"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"golang.org/x/sys/unix"

	"github.com/icsnare/icsnare/netcfg"
	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/ratelimit"
)

// Report is a configuration checked as far as possible without binding a port or
// changing the machine: every profile loaded and configured, the privileges user and
// group looked up, the events file, the metrics and bind addresses and the ports checked
// against this process's privileges. `icsnare check` prints it; New starts from the same
// Check, so `run` refuses exactly what `check` refuses.
type Report struct {
	// Warnings are non-fatal findings: template warnings, template ports served
	// elsewhere, template host attributes that are ignored.
	Warnings []string
	// Network is what run would change with netlink (AnyIP routes, aliases, a MAC), and
	// Changes the part of it this machine does not have yet.
	Network netcfg.Plan
	Changes netcfg.Changes
	// Hosts is how many hosts the sensor keeps in memory, and why.
	Hosts HostBudget

	cfg      Config
	profiles map[string]*deviceProfile
	limits   []limitRule        // every UDP rate limit (planLimits), for New
	limiter  *ratelimit.Limiter // their userspace twin
}

// Check validates cfg and everything it names. Errors name file and line where a file is
// the cause (a template, the config file). On an error the report, when not nil, holds
// the warnings found so far.
func Check(cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	devs, warnings, err := LoadProfiles(cfg)
	r := &Report{cfg: cfg, profiles: devs, Warnings: warnings}
	if err != nil {
		return r, err
	}
	limits, limiter, limitWarnings, err := planLimits(cfg, devs)
	r.Warnings = append(r.Warnings, limitWarnings...)
	if err != nil {
		return r, err
	}
	r.limits, r.limiter = limits, limiter
	for _, check := range []func(*Config) error{checkPrivileges, checkSeccomp, checkEvents, checkMetrics, checkBindAddress} {
		if err := check(&cfg); err != nil {
			return r, err
		}
	}
	if err := checkPorts(devs); err != nil {
		return r, err
	}
	avail, err := AvailableMemory()
	if err != nil && cfg.Limits.MaxHosts == 0 {
		return r, fmt.Errorf("%s: limits.max_hosts is 0 (derive from memory): %w", cfg.pos("limits.max_hosts"), err)
	}
	r.Hosts = cfg.Limits.hostBudget(avail)
	if err := CheckState(cfg); err != nil {
		return r, fmt.Errorf("%s: state.dir: %w", cfg.pos("state.dir"), err)
	}
	if r.Network, err = NetworkPlan(cfg); err != nil {
		return r, err
	}
	if r.Changes, err = diffNetwork(r.Network); err != nil {
		return r, err
	}
	return r, nil
}

// diffNetwork compares the network plan with this machine, read-only, the way run's
// Apply starts: an interface that does not exist fails here as it would there.
func diffNetwork(plan netcfg.Plan) (netcfg.Changes, error) {
	if len(plan.Routes)+len(plan.Aliases)+len(plan.MACs)+len(plan.Sysctls) == 0 {
		return nil, nil
	}
	if !hasCapability(capNetAdmin) {
		return nil, errors.New("netcfg: the configuration changes the network (AnyIP routes, aliases or a MAC), which needs root or CAP_NET_ADMIN")
	}
	nc, err := netcfg.New(netcfg.Options{})
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	return nc.Diff(context.Background(), plan)
}

// LoadProfiles opens every profile the config names and configures its protocols with the
// config's protocol options. The returned errors name file, line and element; warnings,
// returned separately, include template ports the sensor does not serve and template host
// attributes it ignores. A profile that would serve nothing is an error naming its
// template.xml.
func LoadProfiles(cfg Config) (map[string]*deviceProfile, []string, error) {
	out := map[string]*deviceProfile{}
	var warnings []string
	var names []string
	for _, h := range cfg.Hosts {
		names = append(names, h.ProfileNames()...)
	}
	for _, name := range names {
		if _, done := out[name]; done {
			continue
		}
		p, err := profiles.Open(name)
		if err != nil {
			return nil, warnings, err
		}
		dev := &deviceProfile{profile: p, services: map[protocols.Endpoint]deviceService{}}
		var unknown []string
		for _, name := range p.ProtocolNames() {
			sec := p.Sections[name]
			proto, ok := protocols.Lookup(name)
			if !ok {
				unknown = append(unknown, name)
				warnings = append(warnings, fmt.Sprintf("%s:%d: <%s>: protocol %q is not implemented by this icsnare; section ignored (Conpot would serve it)",
					sec.File, sec.Root.Line, sec.Root.Name, name))
				continue
			}
			opts, err := cfg.protocolOptions(name)
			if err != nil {
				return nil, warnings, err
			}
			svc, err := proto.Configure(sec, opts)
			if err != nil {
				return nil, warnings, err
			}
			warnings = append(warnings, templateAttrWarnings(cfg, sec, svc)...)
			for _, ep := range svc.Endpoints() {
				port := boundPort(cfg, sec, ep.Port)
				if port < 1 || port > 65535 {
					return nil, warnings, fmt.Errorf("%s:%d: <%s>: port %d (with port_offset %d) is not a port",
						sec.File, sec.Root.Line, sec.Root.Name, port, cfg.Bind.PortOffset)
				}
				bound := protocols.Endpoint{Transport: ep.Transport, Port: port}
				if other, dup := dev.services[bound]; dup {
					return nil, warnings, fmt.Errorf("profile %s: %s and %s both want %s", p.Name, other.protocol, name, bound)
				}
				dev.services[bound] = deviceService{protocol: name, svc: svc, ep: ep}
			}
		}
		if len(dev.services) == 0 {
			return nil, warnings, servesNothing(p, unknown)
		}
		warnings = append(warnings, p.Warnings()...)
		out[name] = dev
	}
	return out, warnings, nil
}

// servesNothing explains why profile p has no endpoint.
func servesNothing(p *profiles.Profile, unknown []string) error {
	file := path.Join(p.Source, "template.xml")
	if p.TOML {
		file = path.Join(p.Source, "template.toml")
	}
	if len(unknown) > 0 {
		sec := p.Sections[unknown[0]]
		return fmt.Errorf("%s:%d: <%s>: profile %s serves nothing: its protocols (%s) are not implemented by this icsnare (it has %s)",
			sec.File, sec.Root.Line, sec.Root.Name, p.Name, strings.Join(unknown, ", "), strings.Join(protocols.Names(), ", "))
	}
	why := "no <proto>/<proto>.xml or <proto>.toml section"
	if len(p.Disabled) > 0 {
		why = fmt.Sprintf("every protocol section is disabled (%s)", strings.Join(p.Disabled, ", "))
	}
	return fmt.Errorf("%s:1: profile %s serves nothing: %s", file, p.Name, why)
}

// boundPort is the port an endpoint of sec's protocol is bound to, std being its standard
// port: bind.ports wins; else the template's port attribute when bind.template_ports is on,
// else the standard port; plus bind.port_offset.
func boundPort(cfg Config, sec *profiles.Section, std int) int {
	if sec == nil {
		return std + cfg.Bind.PortOffset
	}
	if p, ok := cfg.Bind.Ports[sec.Protocol]; ok {
		return p
	}
	if cfg.Bind.TemplatePorts && sec.Port != 0 {
		return sec.Port + cfg.Bind.PortOffset
	}
	return std + cfg.Bind.PortOffset
}

// templateAttrWarnings says what became of the section root's port and host attributes
// when the sensor does not follow them.
func templateAttrWarnings(cfg Config, sec *profiles.Section, svc protocols.Service) []string {
	var out []string
	at := fmt.Sprintf("%s:%d", sec.File, sec.Root.Line)
	if eps := svc.Endpoints(); sec.Port != 0 && len(eps) > 0 {
		serving := boundPort(cfg, sec, eps[0].Port)
		_, overridden := cfg.Bind.Ports[sec.Protocol]
		switch {
		case overridden && serving != sec.Port:
			out = append(out, fmt.Sprintf("template %s asks for port %d; serving %d (bind.ports.%s)", at, sec.Port, serving, sec.Protocol))
		case !overridden && !cfg.Bind.TemplatePorts && sec.Port != eps[0].Port:
			out = append(out, fmt.Sprintf("template %s asks for port %d; serving %d (use --template-ports)", at, sec.Port, serving))
		}
	}
	switch h := strings.TrimSpace(sec.Host); h {
	case "", "0.0.0.0", "::", "[::]":
		// the wildcard: every address, which is what the sensor serves anyway
	default:
		out = append(out, fmt.Sprintf("template %s: host %q ignored: icsnare answers on the addresses of [[hosts]] (or --listen); bind.address sets the socket address",
			at, h))
	}
	return out
}

// pos names where a config key was set: the flag that overrode it, the config file and
// line, or "config" for a default.
func (c *Config) pos(key string) string {
	if f, ok := c.byFlag[key]; ok {
		return f
	}
	if c.file == "" {
		return "config"
	}
	return keyPos(c.file, c.src, strings.Split(key, ".")...)
}

// SetByFlag records that a command-line flag (e.g. "--events") set key (e.g.
// "events.file"), so errors about the key name the flag rather than the file.
func (c *Config) SetByFlag(key, flag string) {
	if c.byFlag == nil {
		c.byFlag = map[string]string{}
	}
	c.byFlag[key] = flag
}

// checkPrivileges looks up the user and group privileges are dropped to, whether or not
// this process runs as root, so a typo fails the same way everywhere.
func checkPrivileges(c *Config) error {
	if u := c.Privileges.User; u != "" && u != "root" {
		if _, err := user.Lookup(u); err != nil {
			return fmt.Errorf("%s: privileges.user %q: %w", c.pos("privileges.user"), u, err)
		}
	}
	if g := c.Privileges.Group; g != "" {
		if _, err := user.LookupGroup(g); err != nil {
			return fmt.Errorf("%s: privileges.group %q: %w", c.pos("privileges.group"), g, err)
		}
	}
	return nil
}

// checkSeccomp refuses privileges.seccomp on a kernel without seccomp, which Confine
// would refuse after binding.
func checkSeccomp(c *Config) error {
	if c.Privileges.Seccomp && !seccomp.Supported() {
		return fmt.Errorf("%s: privileges.seccomp: seccomp is not supported by this kernel (set privileges.seccomp = false to run without it)",
			c.pos("privileges.seccomp"))
	}
	return nil
}

// checkEvents checks that the events file can be opened for appending, or created, and
// given events.mode and events.group by this process.
func checkEvents(c *Config) error {
	gid, err := c.Events.GID()
	if err != nil {
		return fmt.Errorf("%s: %w", c.pos("events.group"), err)
	}
	f := c.Events.File
	if f == "" || f == "-" {
		return nil
	}
	if err := CheckWritable(f); err != nil {
		return fmt.Errorf("%s: events.file %q: %w", c.pos("events.file"), f, err)
	}
	if os.Geteuid() == 0 {
		return nil
	}
	if st, err := os.Stat(f); err == nil && (c.Events.Mode != "" || gid >= 0) {
		if sys, ok := st.Sys().(*syscall.Stat_t); ok && int(sys.Uid) != os.Geteuid() {
			return fmt.Errorf("%s: events.file %q: owned by uid %d, so this process (uid %d) cannot apply events.mode or events.group: run as root or as its owner",
				c.pos("events.file"), f, sys.Uid, os.Geteuid())
		}
	}
	if gid >= 0 && gid != os.Getegid() {
		groups, _ := os.Getgroups()
		if !slices.Contains(groups, gid) {
			return fmt.Errorf("%s: events.group %q: this process (uid %d) is not in group %d, so it cannot give the events file to it: run as root or as a member",
				c.pos("events.group"), c.Events.Group, os.Geteuid(), gid)
		}
	}
	return nil
}

// CheckWritable reports whether this process could open file for appending, creating it
// if need be, without creating or changing anything.
func CheckWritable(file string) error {
	st, err := os.Stat(file)
	switch {
	case err == nil && st.IsDir():
		return errors.New("is a directory")
	case err == nil:
		f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return err
		}
		return f.Close()
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	dir := filepath.Dir(file)
	st, err = os.Stat(dir)
	if err != nil {
		return fmt.Errorf("cannot create it: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("cannot create it: %s is not a directory", dir)
	}
	if err := unix.Faccessat(unix.AT_FDCWD, dir, unix.W_OK|unix.X_OK, unix.AT_EACCESS); err != nil {
		return fmt.Errorf("cannot create it in %s: %w", dir, err)
	}
	return nil
}

// checkMetrics checks the metrics listen address: host:port, a port number or service, a
// host that resolves, and an IP address this machine has.
func checkMetrics(c *Config) error {
	addr := c.Metrics.Listen
	if addr == "" {
		return nil
	}
	fail := func(err error) error {
		return fmt.Errorf("%s: metrics.listen %q: %w", c.pos("metrics.listen"), addr, err)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fail(err)
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return fail(err)
	}
	if host == "" {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		if _, err := net.LookupHost(host); err != nil {
			return fail(err)
		}
		return nil
	}
	if err := c.checkLocal(ip); err != nil {
		return fail(err)
	}
	return nil
}

// checkBindAddress checks that bind.address is an address of this machine.
func checkBindAddress(c *Config) error {
	if c.Bind.Address == "" {
		return nil
	}
	ip, err := netip.ParseAddr(c.Bind.Address)
	if err == nil {
		err = c.checkLocal(ip)
	}
	if err != nil {
		return fmt.Errorf("%s: bind.address %q: %w", c.pos("bind.address"), c.Bind.Address, err)
	}
	return nil
}

// checkLocal binds an ephemeral TCP port on ip, so an address this machine does not have
// fails here as it would in run. Addresses that netcfg.anyip makes local at start-up pass.
func (c *Config) checkLocal(ip netip.Addr) error {
	if ip.IsUnspecified() {
		return nil
	}
	if c.Netcfg.AnyIP {
		for _, h := range c.Hosts {
			for _, a := range h.Addresses {
				if p, err := ParseAddrOrPrefix(a); err == nil && p.Bits() > 0 && p.Contains(ip.Unmap()) {
					return nil
				}
			}
		}
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(ip.String(), "0"))
	if err != nil {
		return fmt.Errorf("not an address of this machine: %w", err)
	}
	return ln.Close()
}

// canBindBelow reports whether this process may bind ports below the kernel's
// net.ipv4.ip_unprivileged_port_start, and that start. Tests replace it.
var canBindBelow = func() (bool, int) {
	start := 1024
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			start = n
		}
	}
	return hasCapability(capNetBindService), start
}

// Capabilities Check looks for.
const (
	capNetBindService = 10 // CAP_NET_BIND_SERVICE
	capNetAdmin       = 12 // CAP_NET_ADMIN
)

// hasCapability reports whether capability c is in this process's effective set (true
// when that cannot be read: the kernel then decides at run time).
func hasCapability(c uint) bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return true
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err != nil || caps&(1<<c) != 0
		}
	}
	return true
}

// checkPorts refuses privileged ports this process may not bind.
func checkPorts(devs map[string]*deviceProfile) error {
	ok, start := canBindBelow()
	if ok {
		return nil
	}
	var low []string
	seen := map[protocols.Endpoint]bool{}
	for _, d := range devs {
		for ep, ds := range d.services {
			if ep.Port < start && !seen[ep] {
				seen[ep] = true
				low = append(low, fmt.Sprintf("%s %s", ds.protocol, ep))
			}
		}
	}
	if len(low) == 0 {
		return nil
	}
	sort.Strings(low)
	return fmt.Errorf("ports below %d need root or CAP_NET_BIND_SERVICE: %s (use --port-offset, bind.ports or --template-ports)",
		start, strings.Join(low, ", "))
}
