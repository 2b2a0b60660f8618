// Command icsnare runs the ICS/SCADA honeypot sensor.
//
//	icsnare run [flags]       serve the configured hosts (default: the embedded profile on every local address)
//	icsnare check [flags]     validate the config and profiles; exit 2 on errors
//	icsnare profiles          list the embedded profiles
//	icsnare version           print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"

	"github.com/icsnare/icsnare/bpf"
	"github.com/icsnare/icsnare/conpotcfg"
	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
	_ "github.com/icsnare/icsnare/protocols/all"
	"github.com/icsnare/icsnare/sensor"
	_ "github.com/icsnare/icsnare/sinks/all"
)

const usage = `icsnare: an ICS/SCADA honeypot sensor

Usage:
  icsnare run [flags]        serve the configured hosts
  icsnare check [flags]      validate the config and every profile it names (exit 2 on errors)
  icsnare config print [flags]
                             print the effective configuration (defaults filled in, secrets
                             masked) that run would use with the same flags
  icsnare profiles           list the embedded profiles
  icsnare profiles export NAME DIR
                             copy an embedded profile to DIR (a Conpot template directory) to edit
  icsnare conpot [Conpot's options]
                             run with Conpot's command line and configuration file (-t, -c,
                             --logfile, -f …; also when the binary is invoked as "conpot")
  icsnare clone --target ADDR --out DIR [flags]
                             turn a real device into a profile (reads only; 'icsnare clone -h')
  icsnare version            print the version

Run 'icsnare run -h' for the flags.
`

// exitUsage is the exit status for bad command lines and invalid configurations.
const exitUsage = 2

// capNetAdmin is CAP_NET_ADMIN, kept after the privilege drop to undo network changes.
const capNetAdmin = 12

func main() {
	args := os.Args[1:]
	// Installed (or linked) as "conpot", icsnare takes Conpot's command line unchanged.
	if filepath.Base(os.Args[0]) == "conpot" {
		args = append([]string{"conpot"}, args...)
	}
	os.Exit(run(args, os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "run":
		return cmdRun(args[1:], stdout, stderr)
	case "check":
		return cmdCheck(args[1:], stdout, stderr)
	case "conpot":
		return cmdConpot(args[1:], stdout, stderr)
	case "config":
		if len(args) < 2 || args[1] != "print" {
			fmt.Fprintf(stderr, "usage: icsnare config print [run's flags]\n")
			return exitUsage
		}
		return cmdConfigPrint(args[2:], stdout, stderr)
	case "profiles":
		if len(args) == 4 && args[1] == "export" {
			return cmdExport(args[2], args[3], stderr)
		}
		if len(args) > 1 {
			fmt.Fprintf(stderr, "usage: icsnare profiles [export NAME DIR]\n")
			return exitUsage
		}
		return cmdProfiles(stdout, stderr)
	case "xdp":
		return cmdXDP(args[1:], stdout, stderr)
	case "clone":
		return cmdClone(args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintf(stdout, "icsnare %s (%s, %s/%s)\n", sensor.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "icsnare: unknown command %q\n\n%s", args[0], usage)
	return exitUsage
}

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// runFlags are the flags of run and check; set ones override the config file.
type runFlags struct {
	fs                                          *flag.FlagSet
	config, profile, events, format, metrics    string
	user, seed, sensorID, bind, logLevel, xdpIf string
	xdpPin, stateDir, logFile, logFormat        string
	listen                                      listFlag
	cpuProfile                                  string
	portOffset                                  int
	anyIP, templatePorts                        bool
	timing                                      bool
	// protoArgs are the protocol flags given, in order, applied over the config file.
	protoArgs []protoArg
}

// protoArg is one occurrence of a flag a protocol registered.
type protoArg struct {
	flag  protocols.ProtocolFlag
	value string
}

func newRunFlags(name string, stderr io.Writer) *runFlags {
	f := &runFlags{fs: flag.NewFlagSet(name, flag.ContinueOnError)}
	f.fs.SetOutput(stderr)
	f.fs.StringVar(&f.config, "config", "", "TOML configuration `file`")
	f.fs.StringVar(&f.profile, "profile", "", "profile for --listen addresses: an embedded `name` or a Conpot template directory")
	f.fs.Var(&f.listen, "listen", "emulate this `address or CIDR prefix` (repeatable; replaces the config's hosts)")
	f.fs.StringVar(&f.events, "events", "", "write events to `file` (\"-\" for stdout)")
	f.fs.StringVar(&f.format, "events-format", "", "event field names: icsnare or conpot")
	f.fs.StringVar(&f.metrics, "metrics", "", "serve Prometheus /metrics on `addr` (\"off\" disables)")
	f.fs.IntVar(&f.portOffset, "port-offset", -1, "add `N` to every standard port (for unprivileged runs)")
	f.fs.StringVar(&f.user, "user", "", "drop privileges to this `user` after binding (\"root\" keeps root)")
	f.fs.StringVar(&f.seed, "seed", "", "deployment `secret` that derives every host's identity (default: generated and kept in the state directory)")
	f.fs.StringVar(&f.stateDir, "state", "", "keep the seed and what attackers changed in this `directory` (default "+sensor.DefaultStateDir+")")
	f.fs.StringVar(&f.sensorID, "sensor-id", "", "sensor `name` written in every event")
	f.fs.StringVar(&f.bind, "bind", "", "bind sockets to this `address` instead of the wildcard")
	f.fs.BoolVar(&f.templatePorts, "template-ports", false, "serve each protocol on its template's port attribute instead of the standard port")
	f.fs.BoolVar(&f.anyIP, "anyip", false, "add AnyIP local routes for the configured prefixes (needs CAP_NET_ADMIN)")
	f.fs.StringVar(&f.xdpIf, "xdp", "", "attach the XDP rate limiter to `interface`")
	f.fs.StringVar(&f.xdpPin, "xdp-pin", "", "pin the XDP maps in this bpffs `directory` for `icsnare xdp stats`")
	f.fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	f.fs.StringVar(&f.logFile, "log-file", "", "also append the log to `file`")
	f.fs.StringVar(&f.logFormat, "log-format", "text", "log lines as `text` (logfmt) or json (one object per line, for journald or a log shipper)")
	f.fs.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile to `file` (for performance work)")
	f.fs.BoolVar(&f.timing, "timing", true, "answer with each persona's latency model (--timing=false for benchmarks)")
	for _, pf := range protocols.Flags() {
		set := func(v string) error {
			f.protoArgs = append(f.protoArgs, protoArg{flag: pf, value: v})
			return nil
		}
		f.fs.Func(pf.Name, pf.Usage, set)
		alias := "short for --" + pf.Name
		if _, rest, ok := strings.Cut(pf.Usage, "`"); ok {
			if arg, _, ok := strings.Cut(rest, "`"); ok {
				alias = "`" + arg + "`: " + alias
			}
		}
		for _, a := range pf.Aliases {
			f.fs.Func(a, alias, set)
		}
	}
	return f
}

// load builds the effective configuration.
func (f *runFlags) load() (sensor.Config, error) {
	cfg := sensor.DefaultConfig()
	if f.config != "" {
		var err error
		if cfg, err = sensor.LoadConfig(f.config); err != nil {
			return cfg, err
		}
	}
	if err := f.override(&cfg); err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

// override applies the flags that were set over cfg.
func (f *runFlags) override(cfg *sensor.Config) error {
	if len(f.listen) > 0 {
		prof := f.profile
		if prof == "" {
			prof = profiles.DefaultName
		}
		cfg.Hosts = []sensor.HostRule{{Addresses: f.listen, Profile: prof}}
	} else if f.profile != "" {
		for i := range cfg.Hosts {
			cfg.Hosts[i].Profile, cfg.Hosts[i].Profiles = f.profile, nil
		}
	}
	set := map[string]bool{}
	f.fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	// byFlag records which config keys a flag set, so errors name the flag.
	byFlag := func(flagName, key string) bool {
		if set[flagName] {
			cfg.SetByFlag(key, "--"+flagName)
		}
		return set[flagName]
	}
	if byFlag("events", "events.file") {
		cfg.Events.File = f.events
	}
	if set["events-format"] {
		cfg.Events.Format = f.format
	}
	if byFlag("metrics", "metrics.listen") {
		cfg.Metrics.Listen = f.metrics
		if f.metrics == "off" {
			cfg.Metrics.Listen = ""
		}
	}
	if f.portOffset >= 0 {
		cfg.Bind.PortOffset = f.portOffset
	}
	if byFlag("user", "privileges.user") {
		cfg.Privileges.User = f.user
	}
	if set["seed"] {
		cfg.Seed = f.seed
	}
	if byFlag("state", "state.dir") {
		cfg.State.Dir = f.stateDir
	}
	if cfg.State.Dir == "" {
		cfg.State.Dir = sensor.DefaultStateDir
	}
	if set["sensor-id"] {
		cfg.SensorID = f.sensorID
	}
	if byFlag("bind", "bind.address") {
		cfg.Bind.Address = f.bind
	}
	if set["anyip"] {
		cfg.Netcfg.AnyIP = f.anyIP
	}
	if set["xdp"] {
		cfg.XDP.Interface = f.xdpIf
	}
	if set["xdp-pin"] {
		cfg.XDP.PinPath = f.xdpPin
	}
	if set["template-ports"] {
		cfg.Bind.TemplatePorts = f.templatePorts
	}
	for _, a := range f.protoArgs {
		opts, err := cfg.ProtocolOptions(a.flag.Protocol)
		if err != nil {
			return err
		}
		if err := a.flag.Set(opts, a.value); err != nil {
			return fmt.Errorf("--%s %s: %w", a.flag.Name, a.value, err)
		}
		cfg.SetByFlag("protocols."+a.flag.Protocol, "--"+a.flag.Name)
	}
	return nil
}

// prepare reads the flags and the configuration and checks them and everything they name,
// the same way for `check` and `run`: what one refuses, the other refuses.
func (f *runFlags) prepare(args []string) (sensor.Config, *slog.Level, error) {
	if err := f.fs.Parse(args); err != nil {
		return sensor.Config{}, nil, errFlags
	}
	if f.fs.NArg() > 0 {
		return sensor.Config{}, nil, fmt.Errorf("unexpected arguments %q", f.fs.Args())
	}
	protocols.SetTiming(f.timing)
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return sensor.Config{}, nil, fmt.Errorf("--log-level: %w", err)
	}
	if f.logFormat != "text" && f.logFormat != "json" {
		return sensor.Config{}, nil, fmt.Errorf("--log-format %q: want text or json", f.logFormat)
	}
	if f.cpuProfile != "" {
		if err := sensor.CheckWritable(f.cpuProfile); err != nil {
			return sensor.Config{}, nil, fmt.Errorf("--cpuprofile %s: %w", f.cpuProfile, err)
		}
	}
	cfg, err := f.load()
	return cfg, &level, err
}

// errFlags is a command line the flag package already complained about.
var errFlags = errors.New("bad flags")

// cmdConfigPrint prints the configuration run would use with the same flags.
func cmdConfigPrint(args []string, stdout, stderr io.Writer) int {
	f := newRunFlags("config print", stderr)
	cfg, _, err := f.prepare(args)
	if errors.Is(err, errFlags) {
		return exitUsage
	}
	if err != nil {
		fmt.Fprintf(stderr, "icsnare config print: %v\n", err)
		return exitUsage
	}
	if err := cfg.PrintTOML(stdout); err != nil {
		fmt.Fprintf(stderr, "icsnare config print: %v\n", err)
		return 1
	}
	return 0
}

func cmdCheck(args []string, stdout, stderr io.Writer) int {
	f := newRunFlags("check", stderr)
	cfg, _, err := f.prepare(args)
	var rep *sensor.Report
	if err == nil {
		rep, err = sensor.Check(cfg)
	}
	if errors.Is(err, errFlags) {
		return exitUsage
	}
	if rep != nil {
		for _, w := range rep.Warnings {
			fmt.Fprintf(stderr, "warning: %s\n", w)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "icsnare check: %v\n", err)
		return exitUsage
	}
	for _, line := range rep.Describe() {
		fmt.Fprintln(stdout, line)
	}
	if len(rep.Changes) > 0 {
		fmt.Fprintf(stdout, "network changes run would make:\n%s", rep.Changes)
	}
	fmt.Fprintln(stdout, "ok")
	return 0
}

func cmdProfiles(stdout, stderr io.Writer) int {
	for _, name := range profiles.Embedded() {
		p, err := profiles.Open(name)
		if err != nil {
			fmt.Fprintf(stderr, "icsnare profiles: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "%s\n  Unit: %s - %s\n  Desc: %s\n  Protocols: %s\n", name, p.Meta.Vendor, p.Meta.Unit,
			p.Meta.Description, strings.Join(p.ProtocolNames(), ", "))
	}
	return 0
}

func cmdXDP(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "stats" {
		fmt.Fprintf(stderr, "usage: icsnare xdp stats [--pin DIR] [-n N]\n")
		return exitUsage
	}
	fs := flag.NewFlagSet("xdp stats", flag.ContinueOnError)
	fs.SetOutput(stderr)
	pin := fs.String("pin", "/sys/fs/bpf/icsnare", "`directory` where the running sensor pins its maps (xdp.pin_path)")
	n := fs.Int("n", 10, "top `N` limited sources")
	if err := fs.Parse(args[1:]); err != nil {
		return exitUsage
	}
	r, err := bpf.OpenPinned(*pin, 0)
	if err != nil {
		fmt.Fprintf(stderr, "icsnare xdp stats: %v (is the sensor running with xdp.pin_path = %q?)\n", err, *pin)
		return 1
	}
	defer r.Close()
	if err := r.WriteStats(stdout, *n); err != nil {
		fmt.Fprintf(stderr, "icsnare xdp stats: %v\n", err)
		return 1
	}
	return 0
}

func cmdExport(name, dir string, stderr io.Writer) int {
	p, err := profiles.Open(name)
	if err == nil {
		err = p.Export(dir)
	}
	if err != nil {
		fmt.Fprintf(stderr, "icsnare profiles export: %v\n", err)
		return 1
	}
	return 0
}

func cmdRun(args []string, stdout, stderr io.Writer) int {
	f := newRunFlags("run", stderr)
	cfg, level, err := f.prepare(args)
	if errors.Is(err, errFlags) {
		return exitUsage
	}
	if err == nil && f.logFile != "" {
		err = sensor.CheckWritable(f.logFile)
		if err != nil {
			err = fmt.Errorf("--log-file %s: %w", f.logFile, err)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "icsnare run: %v\n", err)
		return exitUsage
	}
	return runSensor(cfg, logOptions{level: *level, file: f.logFile, json: f.logFormat == "json"}, f.cpuProfile, stdout, stderr)
}

// logOptions say how the sensor logs.
type logOptions struct {
	level slog.Level
	file  string // also append the log to this file ("" for stderr only)
	json  bool   // one JSON object per line instead of logfmt text
}

// runSensor serves cfg until SIGINT or SIGTERM, logging to stderr (and lo.file).
func runSensor(cfg sensor.Config, lo logOptions, cpuProfile string, stdout, stderr io.Writer) int {
	logOut := stderr
	if lo.file != "" {
		lf, err := os.OpenFile(lo.file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			fmt.Fprintf(stderr, "icsnare run: log file: %v\n", err)
			return 1
		}
		defer lf.Close()
		logOut = io.MultiWriter(stderr, lf)
	}
	var handler slog.Handler = slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: lo.level})
	if lo.json {
		handler = slog.NewJSONHandler(logOut, &slog.HandlerOptions{Level: lo.level})
	}
	log := slog.New(handler)
	if cpuProfile != "" {
		pf, err := os.Create(cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "icsnare run: %v\n", err)
			return 1
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			fmt.Fprintf(stderr, "icsnare run: %v\n", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, cfg, log, stdout); err != nil {
		var ce *sensor.ConfigError
		if errors.As(err, &ce) {
			fmt.Fprintf(stderr, "icsnare run: %v\n", err)
			return exitUsage
		}
		log.Error("sensor stopped", "err", err)
		return 1
	}
	return 0
}

// cmdConpot runs the sensor from Conpot's command line and configuration file
// (conpotcfg), printing one note per option or section it mapped or could not.
//
// Flags of `icsnare run` may follow "--" (icsnare conpot -t default -c conpot.cfg --
// --listen 192.0.2.0/24); they apply over what Conpot's options set.
func cmdConpot(args []string, stdout, stderr io.Writer) int {
	var extra []string
	if i := slices.Index(args, "--"); i >= 0 {
		args, extra = args[:i], args[i+1:]
	}
	a, err := conpotcfg.ParseArgs(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return exitUsage
	}
	var tpath []string
	if v := os.Getenv("ICSNARE_TEMPLATE_PATH"); v != "" {
		tpath = filepath.SplitList(v)
	}
	plan, err := conpotcfg.Map(a, conpotcfg.Env{Environ: os.Environ(), Root: os.Geteuid() == 0, TemplatePath: tpath})
	switch {
	case errors.Is(err, conpotcfg.ErrUsage):
		fmt.Fprintf(stderr, "conpot: %v\n", err)
		return 3 // Conpot's status for a missing --config
	case err != nil:
		fmt.Fprintf(stderr, "conpot: %v\n", err)
		return 1
	}
	if plan.ListTemplates {
		return cmdProfiles(stdout, stderr)
	}
	for _, n := range plan.Notes {
		fmt.Fprintf(stderr, "conpot: %s\n", n)
	}
	level := slog.LevelInfo
	if plan.Debug {
		level = slog.LevelDebug
	}
	cfg := sensor.DefaultConfig()
	cfg.State.Dir = sensor.DefaultStateDir
	if err := plan.Apply(&cfg); err != nil {
		fmt.Fprintf(stderr, "conpot: %v\n", err)
		return exitUsage
	}
	f := newRunFlags("conpot --", stderr)
	if err := f.fs.Parse(extra); err != nil {
		return exitUsage
	}
	if f.fs.NArg() > 0 {
		fmt.Fprintf(stderr, "conpot: unexpected arguments %q after --\n", f.fs.Args())
		return exitUsage
	}
	if f.profile == "" {
		f.profile = plan.Profile
	}
	if err := f.override(&cfg); err != nil {
		fmt.Fprintf(stderr, "conpot: %v\n", err)
		return exitUsage
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "conpot: %v\n", err)
		return exitUsage
	}
	if f.logLevel != "info" {
		if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
			fmt.Fprintf(stderr, "conpot: --log-level: %v\n", err)
			return exitUsage
		}
	}
	if f.logFile != "" {
		plan.LogFile = f.logFile
	}
	if plan.LogFile != "" {
		if err := sensor.CheckWritable(plan.LogFile); err != nil {
			fmt.Fprintf(stderr, "conpot: --logfile %s: %v\n", plan.LogFile, err)
			return 1
		}
	}
	return runSensor(cfg, logOptions{level: level, file: plan.LogFile}, f.cpuProfile, stdout, stderr)
}

// serve runs the sensor: configure, bind, set up the network side, drop privileges, serve.
func serve(ctx context.Context, cfg sensor.Config, log *slog.Logger, stdout io.Writer) error {
	s, err := sensor.New(cfg, log)
	if err != nil {
		return &sensor.ConfigError{Err: err}
	}
	sinks, err := sensor.OpenSinks(ctx, cfg, log, stdout)
	if err != nil {
		return err
	}
	bus := sensor.NewBus(cfg.Events.Buffer, sinks...)
	bus.OnReopenError = func(sink string, err error) {
		log.Error("events: reopen failed; still writing the old file", "sink", sink, "err", err)
	}
	s.SetBus(bus)
	// SIGHUP reopens the events file (logrotate), with events.mode and events.group again.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-hup:
				log.Info("SIGHUP: reopening the events file")
				bus.Reopen()
			case <-ctx.Done():
				return
			}
		}
	}()
	teardown, err := s.SetupNetwork(ctx)
	if err != nil {
		return err
	}
	defer teardown()
	if err := s.Bind(ctx); err != nil {
		return err
	}
	var mln net.Listener
	if cfg.Metrics.Listen != "" {
		if mln, err = net.Listen("tcp", cfg.Metrics.Listen); err != nil {
			s.Close()
			return fmt.Errorf("metrics listener: %w", err)
		}
		log.Info("metrics", "url", "http://"+mln.Addr().String()+"/metrics")
	}
	var keep []uint
	if s.NeedsNetAdmin() {
		keep = append(keep, capNetAdmin)
	}
	dropped, keptErr, err := sensor.DropPrivileges(cfg.Privileges.User, cfg.Privileges.Group, keep...)
	if err != nil {
		s.Close()
		return err
	}
	if keptErr != nil {
		log.Warn("least privilege incomplete (without CAP_NET_ADMIN, network changes stay after exit and the next run adopts them)", "err", keptErr)
	}
	if dropped {
		log.Info("privileges dropped", "user", cfg.Privileges.User)
	} else if os.Geteuid() == 0 {
		log.Warn("running as root: set privileges.user (or --user) to drop privileges after binding")
	}
	if cfg.Privileges.Seccomp {
		if err := sensor.Confine(); err != nil {
			s.Close()
			return fmt.Errorf("confine: %w (set privileges.seccomp = false to run without it)", err)
		}
		log.Info("seccomp allow-list loaded")
	}
	return s.Run(ctx, mln)
}
