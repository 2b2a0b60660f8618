// Command icsnare runs the ICS/SCADA honeypot sensor; `icsnare --help` lists its commands
// and `icsnare man DIR` writes its man pages.
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
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/icsnare/icsnare/bpf"
	"github.com/icsnare/icsnare/conpotcfg"
	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
	_ "github.com/icsnare/icsnare/protocols/all"
	"github.com/icsnare/icsnare/sensor"
	_ "github.com/icsnare/icsnare/sinks/all"
)

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

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }
func (l *listFlag) Type() string       { return "strings" }

// runFlags are the flags of run and check; set ones override the config file.
type runFlags struct {
	fs                                          *pflag.FlagSet
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
	f := &runFlags{fs: pflag.NewFlagSet(name, pflag.ContinueOnError)}
	f.fs.SetOutput(stderr)
	f.fs.SortFlags = false
	f.fs.StringVarP(&f.config, "config", "c", "", "TOML configuration `file`")
	f.fs.StringVarP(&f.profile, "profile", "p", "", "profile for --listen addresses: an embedded `name` or a Conpot template directory")
	f.fs.VarP(&f.listen, "listen", "l", "emulate this `address or CIDR prefix` (repeatable; replaces the config's hosts)")
	f.fs.StringVarP(&f.events, "events", "e", "", "write events to `file` (\"-\" for stdout; default: the config's events.file, stdout)")
	f.fs.StringVar(&f.format, "events-format", "", "event `format`: icsnare or conpot (default: the config's events.format)")
	f.fs.StringVarP(&f.metrics, "metrics", "m", "", "serve Prometheus /metrics, /healthz and /readyz on `addr` (\"off\" disables; default 127.0.0.1:10108)")
	f.fs.IntVar(&f.portOffset, "port-offset", 0, "add `N` to every standard port (for unprivileged runs)")
	f.fs.StringVarP(&f.user, "user", "u", "", "drop privileges to this `user` after binding (\"root\" keeps root; default nobody)")
	f.fs.StringVar(&f.seed, "seed", "", "deployment `secret` that derives every host's identity (default: generated and kept in the state directory)")
	f.fs.StringVar(&f.stateDir, "state", "", "keep the seed and what attackers changed in this `directory` (default "+sensor.DefaultStateDir+")")
	f.fs.StringVar(&f.sensorID, "sensor-id", "", "sensor `name` written in every event and log line")
	f.fs.StringVar(&f.bind, "bind", "", "bind sockets to this `address` instead of the wildcard")
	f.fs.BoolVar(&f.templatePorts, "template-ports", false, "serve each protocol on its template's port attribute instead of the standard port")
	f.fs.BoolVar(&f.anyIP, "anyip", false, "add AnyIP local routes for the configured prefixes (needs CAP_NET_ADMIN)")
	f.fs.StringVar(&f.xdpIf, "xdp", "", "attach the XDP rate limiter to `interface`")
	f.fs.StringVar(&f.xdpPin, "xdp-pin", "", "pin the XDP maps in this bpffs `directory` for `icsnare xdp stats`")
	f.fs.StringVar(&f.logLevel, "log-level", "info", "`level`: debug, info, warn or error")
	f.fs.StringVar(&f.logFile, "log-file", "", "also append the log to `file`")
	f.fs.StringVar(&f.logFormat, "log-format", "text", "log line `format`: text (logfmt) or json (one object per line, for journald or a log shipper)")
	f.fs.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile to `file` (for performance work)")
	f.fs.BoolVar(&f.timing, "timing", true, "answer with each persona's latency model (--timing=false for benchmarks)")
	for _, pf := range protocols.Flags() {
		set := func(v string) error {
			f.protoArgs = append(f.protoArgs, protoArg{flag: pf, value: v})
			return nil
		}
		short := ""
		for _, a := range pf.Aliases {
			if len(a) == 1 && short == "" {
				short = a
				continue
			}
			f.fs.Func(a, "short for --"+pf.Name, set)
			f.fs.MarkHidden(a)
		}
		f.fs.FuncP(pf.Name, short, pf.Usage+" ("+pf.Protocol+")", set)
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
	f.fs.VisitAll(func(fl *pflag.Flag) {
		if fl.Changed {
			set[fl.Name] = true
		}
	})
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
	if set["port-offset"] {
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

// prepare checks the parsed flags and the configuration and everything they name, the
// same way for `check`, `config print` and `run`: what one refuses, the others refuse.
func (f *runFlags) prepare() (sensor.Config, *slog.Level, error) {
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
	if f.portOffset < 0 || f.portOffset > 65535 {
		return sensor.Config{}, nil, fmt.Errorf("--port-offset %d: want 0 to 65535", f.portOffset)
	}
	cfg, err := f.load()
	return cfg, &level, err
}

// cmdConfigPrint prints the configuration run would use with the same flags.
func cmdConfigPrint(f *runFlags, stdout, stderr io.Writer) int {
	cfg, _, err := f.prepare()
	if err != nil {
		fmt.Fprintf(stderr, "icsnare config print: %v\n", err)
		return exitUsage
	}
	if err := cfg.PrintTOML(stdout); err != nil {
		fmt.Fprintf(stderr, "icsnare config print: %v\n", err)
		return exitRuntime
	}
	return 0
}

func cmdCheck(f *runFlags, stdout, stderr io.Writer) int {
	cfg, _, err := f.prepare()
	var rep *sensor.Report
	if err == nil {
		rep, err = sensor.Check(cfg)
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

// cmdXDPStats prints the counters of the XDP programs a running sensor pinned in pin.
func cmdXDPStats(pin string, top int, stdout, stderr io.Writer) int {
	r, err := bpf.OpenPinned(pin, 0)
	if err != nil {
		fmt.Fprintf(stderr, "icsnare xdp stats: %v (is the sensor running with xdp.pin_path = %q?)\n", err, pin)
		return exitRuntime
	}
	defer r.Close()
	if err := r.WriteStats(stdout, top); err != nil {
		fmt.Fprintf(stderr, "icsnare xdp stats: %v\n", err)
		return exitRuntime
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

func cmdRun(f *runFlags, stdout, stderr io.Writer) int {
	cfg, level, err := f.prepare()
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
	log := slog.New(handler).With("sensor", cfg.SensorID)
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
	if cfg.Metrics.Listen != "" {
		top := sensor.NewTop(topMinutes)
		sinks = append(sinks, top)
		s.SetTop(top)
	}
	bus := sensor.NewBus(cfg.Events.Buffer, sinks...)
	bus.Log = log
	bus.OnReopenError = func(sink string, err error) {
		log.Error("events: reopen failed; still writing the old file", "sink", sink, "err", err)
	}
	s.SetBus(bus)
	if p := sensor.PIDFile(cfg); p != "" {
		remove, err := sensor.WritePIDFile(p)
		if err != nil {
			return err
		}
		defer remove()
	}
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
