// Package conpotcfg maps Conpot's command line and configuration file onto icsnare's
// configuration, so a deployment that starts Conpot (T-Pot's containers:
// conpot --mibcache D --temp_dir D --template NAME --logfile F --config conpot.cfg) starts
// icsnare unchanged. What has an icsnare equivalent is mapped; what has none is accepted
// and named in one note each; nothing is ever looked up on the network.
package conpotcfg

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/vfs"
	"github.com/icsnare/icsnare/sensor"
)

// Args are Conpot's command-line options (bin/conpot).
type Args struct {
	Template string   // -t/--template NAME|DIR
	Config   string   // -c/--config FILE
	LogFile  string   // -l/--logfile FILE
	MIBCache string   // -m/--mibcache DIR
	TempDir  string   // --temp_dir DIR
	RawMIBs  []string // -a/--raw_mib DIR (older Conpot)
	Force    bool     // -f/--force
	Verbose  bool     // -v/--verbose
}

// ErrUsage is a command line Conpot refuses with exit status 3 (no -c without -f).
var ErrUsage = errors.New("usage")

// ErrTemplateNotFound is Conpot's "Template not found" (exit status 1).
var ErrTemplateNotFound = errors.New("template not found")

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// ParseArgs parses Conpot's options; both the short and the long form of each work
// (-t X, --template X, --template=X). Errors have been printed to stderr.
func ParseArgs(args []string, stderr io.Writer) (Args, error) {
	var a Args
	fs := flag.NewFlagSet("conpot", flag.ContinueOnError)
	fs.SetOutput(stderr)
	str := func(p *string, short, long, usage string) {
		if short != "" {
			fs.StringVar(p, short, "", "short for --"+long)
		}
		fs.StringVar(p, long, "", usage)
	}
	str(&a.Template, "t", "template", "template `NAME or directory`: a directory holding template.xml, an embedded profile, or NAME under $ICSNARE_TEMPLATE_PATH")
	str(&a.Config, "c", "config", "Conpot configuration `file` (INI)")
	str(&a.LogFile, "l", "logfile", "also write the text log to `file`")
	str(&a.MIBCache, "m", "mibcache", "Conpot's compiled-MIB cache `directory` (not used: icsnare compiles MIB modules in memory)")
	str(&a.TempDir, "", "temp_dir", "Conpot's temporary `directory`; icsnare keeps its state directory in DIR/icsnare")
	fs.Var((*listFlag)(&a.RawMIBs), "a", "short for --raw_mib")
	fs.Var((*listFlag)(&a.RawMIBs), "raw_mib", "extra MIB module `directory` for SNMP (repeatable)")
	fs.BoolVar(&a.Force, "f", false, "short for --force")
	fs.BoolVar(&a.Force, "force", false, "use Conpot's packaged testing configuration (ignores --config) and allow starting as root")
	fs.BoolVar(&a.Verbose, "v", false, "short for --verbose")
	fs.BoolVar(&a.Verbose, "verbose", false, "debug logging")
	if err := fs.Parse(argparseStyle(fs, args)); err != nil {
		return a, err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "conpot: unexpected arguments %q\n", fs.Args())
		return a, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return a, nil
}

// argparseStyle rewrites what Python's argparse accepts and Go's flag package does not:
// combined short switches (-fv) and a short option's value attached (-tdefault).
func argparseStyle(fs *flag.FlagSet, args []string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if len(arg) <= 2 || arg[0] != '-' || arg[1] == '-' || fs.Lookup(strings.SplitN(arg[1:], "=", 2)[0]) != nil {
			out = append(out, arg)
			continue
		}
		if strings.Trim(arg[1:], "fv") == "" {
			for _, c := range arg[1:] {
				out = append(out, "-"+string(c))
			}
			continue
		}
		if strings.ContainsRune("tclma", rune(arg[1])) {
			out = append(out, arg[:2], arg[2:])
			continue
		}
		out = append(out, arg)
	}
	return out
}

// Env is what Map reads from the process: the environment (for %(VAR)s) and whether it
// runs as root (Conpot's [daemon] user applies only then).
type Env struct {
	Environ []string
	Root    bool
	// TemplatePath lists directories searched for -t NAME after a directory and an
	// embedded profile of that name ($ICSNARE_TEMPLATE_PATH).
	TemplatePath []string
}

// Plan is what icsnare runs for Conpot's options.
type Plan struct {
	Profile       string // --profile: an embedded name or a template directory
	ListTemplates bool   // no -t: list the templates and exit, as Conpot does
	EventsFile    string // Conpot's [json] filename ("" for no JSON log)
	SensorID      string
	PublicIP      string
	User, Group   string // the privilege drop when started as root ([daemon])
	EventsGroup   string // the group the events file is given (the [daemon] group)
	StateDir      string
	LogFile       string
	Debug         bool
	MIBPaths      []string
	FlowIdle      time.Duration // [session] timeout, for UDP flows
	MAC, MACIface string        // [change_mac_addr]
	CaptureDir    string        // [virtual_file_system] data_fs_url, for FTP and TFTP uploads
	// Notes name, one line each, what was mapped and what has no equivalent.
	Notes []string
}

func (p *Plan) note(format string, args ...any) {
	p.Notes = append(p.Notes, fmt.Sprintf(format, args...))
}

// Map turns Conpot's options into a plan; the configuration file is read from disk.
func Map(a Args, env Env) (*Plan, error) {
	p := &Plan{LogFile: a.LogFile, Debug: a.Verbose, SensorID: "default"}
	if !a.Force && a.Config == "" {
		return nil, fmt.Errorf("%w: --config is required unless --force is given (as in Conpot)", ErrUsage)
	}
	if a.Template == "" {
		p.ListTemplates = true
		return p, nil
	}
	prof, err := ResolveTemplate(a.Template, env.TemplatePath)
	if err != nil {
		return nil, err
	}
	p.Profile = prof
	p.note("--template %s: %s, each protocol on its template's port as Conpot serves it (bind.template_ports)", a.Template, prof)
	if a.LogFile != "" {
		p.note("--logfile %s: the text log goes there as well as to the console", a.LogFile)
	}
	if a.MIBCache != "" {
		p.note("--mibcache %s: not used (icsnare compiles MIB modules in memory)", a.MIBCache)
	}
	for _, d := range a.RawMIBs {
		p.MIBPaths = append(p.MIBPaths, d)
		p.note("-a %s: extra MIB modules for SNMP ([protocols.snmp] mibpath)", d)
	}
	if a.TempDir != "" {
		p.StateDir = filepath.Join(a.TempDir, "icsnare")
		p.note("--temp_dir %s: the state directory (seed, attackers' changes) is %s", a.TempDir, p.StateDir)
	}
	if a.Force {
		p.note("--force: Conpot's packaged settings (sensorid default, no JSON log, session timeout 30 s)")
		if a.Config != "" {
			p.note("--force: --config %s ignored, as Conpot ignores it", a.Config)
		}
		p.FlowIdle = 30 * time.Second
		p.note("fetch_public_ip: never looked up; public_ip stays null")
		return p, nil
	}
	b, err := os.ReadFile(a.Config)
	if err != nil {
		return nil, fmt.Errorf("--config: %w", err)
	}
	ini, err := ParseINI(a.Config, strings.NewReader(string(b)), env.Environ)
	if err != nil {
		return nil, err
	}
	if err := p.mapINI(ini, env); err != nil {
		return nil, err
	}
	return p, nil
}

// ResolveTemplate finds -t NAME as Conpot does, a directory first: a directory holding
// template.xml (or template.toml), then an embedded profile of that name, then NAME in
// each directory of path.
func ResolveTemplate(name string, path []string) (string, error) {
	isTemplate := func(dir string) bool {
		for _, f := range []string{"template.xml", "template.toml"} {
			if st, err := os.Stat(filepath.Join(dir, f)); err == nil && st.Mode().IsRegular() {
				return true
			}
		}
		return false
	}
	if isTemplate(name) {
		abs, err := filepath.Abs(name)
		if err != nil {
			return "", err
		}
		return abs, nil
	}
	if !strings.ContainsAny(name, "/.") && slices.Contains(profiles.Embedded(), name) {
		return name, nil
	}
	for _, dir := range path {
		if dir != "" && !strings.Contains(name, "/") && isTemplate(filepath.Join(dir, name)) {
			return filepath.Join(dir, name), nil
		}
	}
	return "", fmt.Errorf("%w: %s (no directory holding template.xml, no embedded profile of that name (have %s)%s)",
		ErrTemplateNotFound, name, strings.Join(profiles.Embedded(), ", "), searched(path))
}

func searched(path []string) string {
	if len(path) == 0 {
		return ""
	}
	return ", not under " + strings.Join(path, ":")
}

// noEquivalent are Conpot's sinks icsnare has no counterpart of yet.
var noEquivalent = map[string]string{
	"syslog":    "no syslog sink yet",
	"hpfriends": "no hpfeeds sink yet",
	"taxii":     "no STIX/TAXII sink yet",
	"sqlite":    "no SQLite sink",
	"mysql":     "no MySQL sink (Conpot removed its own in 2020)",
}

func (p *Plan) mapINI(ini *INI, env Env) error {
	name := ini.name
	id, ok, err := ini.Get("common", "sensorid")
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%s: [common] sensorid is missing (Conpot requires it)", name)
	}
	p.SensorID = id
	p.note("[common] sensorid %s: the events' sensorid", id)

	if ini.Has("json") {
		on, err := ini.Bool("json", "enabled", false)
		if err != nil {
			return err
		}
		if on {
			f, ok, err := ini.Get("json", "filename")
			if err != nil {
				return err
			}
			if !ok || f == "" {
				return fmt.Errorf("%s: [json] enabled without a filename", ini.Pos("json", "enabled"))
			}
			p.EventsFile = f
			p.note("[json] %s: Conpot's JSON documents (events.format conpot)", f)
		} else {
			p.note("[json] disabled: no JSON log, as Conpot")
		}
	}
	if ini.Has("session") {
		if v, ok, err := ini.Get("session", "timeout"); err != nil {
			return err
		} else if ok {
			secs, err := strconv.ParseFloat(v, 64)
			if err != nil || secs <= 0 || secs > 86400 {
				return fmt.Errorf("%s: [session] timeout %q: want seconds", ini.Pos("session", "timeout"), v)
			}
			p.FlowIdle = time.Duration(secs * float64(time.Second))
			p.note("[session] timeout %s: UDP sessions end after %v idle (limits.udp_flow_idle); a TCP session is its connection", v, p.FlowIdle)
		}
	}
	if ini.Has("daemon") {
		u, _, err := ini.Get("daemon", "user")
		if err != nil {
			return err
		}
		g, _, err := ini.Get("daemon", "group")
		if err != nil {
			return err
		}
		switch {
		case !env.Root:
			p.note("[daemon] user %q: not started as root, so there are no privileges to drop", u)
		default:
			p.User, p.Group, p.EventsGroup = u, g, g
			if p.User == "" {
				p.User = "nobody"
			}
			p.note("[daemon] user %q group %q: privileges drop to them after binding; the events file is given to the group", p.User, g)
		}
	}
	if ini.Has("virtual_file_system") {
		if v, ok, err := ini.Get("virtual_file_system", "data_fs_url"); err != nil {
			return err
		} else if ok && v != "default" {
			dir, found := strings.CutPrefix(v, "osfs://")
			if !found && strings.Contains(v, "://") {
				p.note("[virtual_file_system] data_fs_url %s: only local directories are supported; uploads are not kept", v)
			} else {
				p.CaptureDir = dir
				p.note("[virtual_file_system] data_fs_url %s: FTP and TFTP uploads are kept in %s (capture_dir)", v, dir)
			}
		}
		if v, ok, _ := ini.Get("virtual_file_system", "fs_url"); ok {
			p.note("[virtual_file_system] fs_url %s: not used (the FTP and TFTP files come from the template)", v)
		}
	}
	if ini.Has("fetch_public_ip") {
		on, err := ini.Bool("fetch_public_ip", "enabled", false)
		if err != nil {
			return err
		}
		ip, ok, err := ini.Get("fetch_public_ip", "public_ip")
		if err != nil {
			return err
		}
		switch {
		case ok && ip != "":
			p.PublicIP = ip
			p.note("[fetch_public_ip] public_ip %s: written as public_ip; never looked up", ip)
		case on:
			p.note("[fetch_public_ip] enabled: never looked up (no outbound request); public_ip stays null unless public_ip = ADDRESS is set in this section")
		default:
			p.note("[fetch_public_ip] disabled: public_ip stays null")
		}
	}
	if ini.Has("change_mac_addr") {
		on, err := ini.Bool("change_mac_addr", "enabled", false)
		if err != nil {
			return err
		}
		if on {
			iface, _, err := ini.Get("change_mac_addr", "iface")
			if err != nil {
				return err
			}
			addr, _, err := ini.Get("change_mac_addr", "addr")
			if err != nil {
				return err
			}
			p.MAC, p.MACIface = addr, iface
			p.note("[change_mac_addr] %s on %s: set with netlink at start (netcfg.mac; needs CAP_NET_ADMIN)", addr, iface)
		} else {
			p.note("[change_mac_addr] disabled: the MAC stays")
		}
	}
	for _, sec := range ini.Sections() {
		switch sec {
		case "common", "json", "session", "daemon", "virtual_file_system", "fetch_public_ip", "change_mac_addr":
			continue
		}
		why, known := noEquivalent[sec]
		if !known {
			p.note("[%s]: not a Conpot section icsnare knows; ignored", sec)
			continue
		}
		on, err := ini.Bool(sec, "enabled", false)
		if err != nil {
			return err
		}
		state := "disabled"
		if on {
			state = "enabled, but ignored"
		}
		p.note("[%s] %s: icsnare has %s", sec, state, why)
	}
	return nil
}

// Apply sets the plan in an icsnare configuration: the profile on every local address,
// template ports, Conpot's event documents, and each mapped option.
func (p *Plan) Apply(cfg *sensor.Config) error {
	for i := range cfg.Hosts {
		cfg.Hosts[i].Profile = p.Profile
	}
	cfg.Bind.TemplatePorts = true
	cfg.Events.Format = "conpot"
	cfg.Events.File = p.EventsFile
	cfg.Events.PublicIP = p.PublicIP
	if p.EventsGroup != "" {
		// The group must be able to read it whatever the umask.
		cfg.Events.Group, cfg.Events.Mode = p.EventsGroup, "0640"
	}
	cfg.SensorID = p.SensorID
	if p.User != "" {
		cfg.Privileges.User, cfg.Privileges.Group = p.User, p.Group
	}
	if p.StateDir != "" {
		cfg.State.Dir = p.StateDir
	}
	if p.FlowIdle > 0 {
		cfg.Limits.UDPFlowIdle = sensor.Duration{Duration: p.FlowIdle}
	}
	if p.MAC != "" {
		cfg.Netcfg.MAC, cfg.Netcfg.Interface = p.MAC, p.MACIface
	}
	if len(p.MIBPaths) > 0 {
		if err := setProtocolFlag(cfg, "snmp", "mibpath", p.MIBPaths); err != nil {
			return err
		}
	}
	if p.CaptureDir != "" {
		for _, name := range []string{"ftp", "tftp"} {
			if _, ok := protocols.Lookup(name); !ok {
				continue
			}
			opts, err := cfg.ProtocolOptions(name)
			if err != nil {
				return err
			}
			if co, ok := opts.(*vfs.CaptureOptions); ok {
				co.CaptureDir = p.CaptureDir
			}
		}
	}
	return nil
}

// setProtocolFlag applies a protocol's command-line flag, as `icsnare run --NAME V` would.
func setProtocolFlag(cfg *sensor.Config, proto, name string, values []string) error {
	for _, f := range protocols.Flags() {
		if f.Protocol != proto || f.Name != name {
			continue
		}
		opts, err := cfg.ProtocolOptions(proto)
		if err != nil {
			return err
		}
		for _, v := range values {
			if err := f.Set(opts, v); err != nil {
				return fmt.Errorf("-a %s: %w", v, err)
			}
		}
		return nil
	}
	return fmt.Errorf("this icsnare has no %s protocol flag --%s", proto, name)
}
