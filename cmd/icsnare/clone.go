package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/icsnare/icsnare/clone"
	"github.com/icsnare/icsnare/profiles"
)

const cloneUsage = `usage: icsnare clone --target ADDR --out DIR [flags]

Probes one device politely (reads only, a shared request-rate limit, a request budget per
protocol, a timeout per request) and writes a Conpot-format template directory that
'icsnare run --profile DIR' serves, with clone.json: what was found, skipped or refused,
and which fields became per-host seeded keys or value engines.

`

// cmdClone runs `icsnare clone`.
func cmdClone(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("clone", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, cloneUsage); fs.PrintDefaults() }
	target := fs.String("target", "", "the one device to clone: an `address` or host name (never a prefix or range)")
	protos := fs.String("protocols", strings.Join(clone.Names(), ","), "protocols to probe, comma separated (absent ones are reported, not errors)")
	out := fs.String("out", "", "template `directory` to write")
	community := fs.String("community", "public", "SNMPv1/v2c community")
	v3 := fs.String("v3", "", "SNMPv3 `user:auth:priv` (auth and priv may be PROTO=pass: SHA-256=…, AES=…)")
	rate := fs.Float64("rate", clone.DefaultRate, "requests per second over all protocols")
	timeout := fs.Duration("timeout", clone.DefaultTimeout, "timeout of one request")
	budget := fs.Int("budget", clone.DefaultBudget, "requests at most per protocol")
	interval := fs.Duration("interval", clone.DefaultInterval, "time between the two reads that tell moving values (SNMP walks, Modbus blocks, BACnet analog values)")
	var ports, mibs listFlag
	fs.Var(&ports, "port", "`proto=port` when the device serves a protocol on another port (repeatable)")
	fs.Var(&mibs, "mibpath", "extra MIB modules `dir` that name walked OIDs (repeatable)")
	quiet := fs.Bool("quiet", false, "no progress line")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "icsnare clone: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	if *out == "" {
		fmt.Fprintln(stderr, "icsnare clone: --out DIR is required")
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	addr, err := clone.ParseTarget(ctx, *target)
	if err != nil {
		fmt.Fprintf(stderr, "icsnare clone: %v\n", err)
		return exitUsage
	}
	o := clone.Options{Target: addr, Rate: *rate, Timeout: *timeout, Budget: *budget, Interval: *interval,
		Community: *community, MIBDirs: mibs, Ports: map[string]int{}}
	if !*quiet {
		o.Progress = stderr
	}
	for _, p := range strings.Split(*protos, ",") {
		if p = strings.TrimSpace(p); p != "" {
			o.Protocols = append(o.Protocols, p)
		}
	}
	for _, p := range ports {
		name, num, ok := strings.Cut(p, "=")
		n, err := strconv.Atoi(num)
		if !ok || err != nil || n < 1 || n > 65535 {
			fmt.Fprintf(stderr, "icsnare clone: --port %q: want proto=port\n", p)
			return exitUsage
		}
		o.Ports[name] = n
	}
	if *v3 != "" {
		if o.V3, err = clone.ParseV3(*v3); err != nil {
			fmt.Fprintf(stderr, "icsnare clone: %v\n", err)
			return exitUsage
		}
	}
	tpl, rep, err := clone.Run(ctx, o)
	if err != nil {
		fmt.Fprintf(stderr, "icsnare clone: %v\n", err)
		return exitUsage
	}
	rep.Summary(stdout)
	if ctx.Err() != nil {
		fmt.Fprintln(stderr, "icsnare clone: interrupted; nothing written")
		return 1
	}
	if err := tpl.Write(*out); err != nil {
		fmt.Fprintf(stderr, "icsnare clone: %v\n", err)
		return 1
	}
	if err := rep.WriteFile(*out); err != nil {
		fmt.Fprintf(stderr, "icsnare clone: %v\n", err)
		return 1
	}
	// The clone must load as the sensor loads it.
	p, err := profiles.LoadDir(*out)
	if err != nil {
		fmt.Fprintf(stderr, "icsnare clone: the written template does not load: %v\n", err)
		return 1
	}
	for _, w := range p.Warnings() {
		fmt.Fprintf(stderr, "icsnare clone: warning: %s\n", w)
	}
	fmt.Fprintf(stdout, "wrote %s (serve it with: icsnare run --profile %s)\n", *out, *out)
	return 0
}
