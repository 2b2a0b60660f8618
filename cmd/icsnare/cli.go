package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
	"github.com/spf13/pflag"

	"github.com/icsnare/icsnare/sensor"
)

// Exit statuses of every command.
const (
	exitRuntime = 1 // the command ran and failed (a file it could not write, a sensor that stopped)
	exitUsage   = 2 // a bad command line or an invalid configuration
)

// exitCode is the status of a command that has already said what went wrong.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// status turns a command's exit status into the error cobra passes up.
func status(code int) error {
	if code == 0 {
		return nil
	}
	return exitCode(code)
}

const rootLong = `icsnare emulates whole subnets of ICS/SCADA devices (PLCs, RTUs, meters, building
controllers, BMCs) so defenders can watch who probes and attacks them. Each address gets its
own device identity from the profile and the deployment seed.

Exit status: 0 success, 1 runtime failure, 2 bad command line or configuration.`

// versionLine is what `icsnare version` and `icsnare --version` print.
func versionLine() string {
	return fmt.Sprintf("icsnare %s (%s, %s/%s)\n", sensor.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// newRootCmd builds the command tree; the commands write to stdout and stderr.
func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "icsnare",
		Short:         "an ICS/SCADA honeypot sensor",
		Long:          rootLong,
		Version:       sensor.Version,
		SilenceErrors: true,
		SilenceUsage:  true,
		RunE:          usageOnly(stderr),
	}
	root.SetVersionTemplate(versionLine())
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(flagError)
	root.SuggestionsMinimumDistance = 2

	root.AddCommand(
		runFlagsCmd("run", "serve the configured hosts until SIGINT or SIGTERM", stderr,
			func(f *runFlags) int { return cmdRun(f, stdout, stderr) }),
		runFlagsCmd("check", "validate the configuration and every profile it names, and show what run would serve", stderr,
			func(f *runFlags) int { return cmdCheck(f, stdout, stderr) }),
		configCmd(stdout, stderr),
		profilesCmd(stdout, stderr),
		xdpCmd(stdout, stderr),
		topCmd(stdout, stderr),
		reopenCmd(stdout, stderr),
		&cobra.Command{
			Use:   "conpot [Conpot's options] [-- run's flags]",
			Short: "run with Conpot's command line and configuration file (also when invoked as \"conpot\")",
			Long: `Takes Conpot's options unchanged (-t, -c, --logfile, -f ...) and its configuration file, and
maps them onto icsnare's; flags of 'icsnare run' may follow "--" and apply over them.`,
			DisableFlagParsing: true,
			RunE: func(_ *cobra.Command, args []string) error {
				return status(cmdConpot(args, stdout, stderr))
			},
		},
		&cobra.Command{
			Use:                "clone --target ADDR --out DIR [flags]",
			Short:              "turn one real device into a profile (reads only; 'icsnare clone -h' for the flags)",
			DisableFlagParsing: true,
			RunE: func(_ *cobra.Command, args []string) error {
				return status(cmdClone(args, stdout, stderr))
			},
		},
		&cobra.Command{
			Use:                "collect --nats URL --stream S --out DIR [flags]",
			Short:              "a fleet's central side: NATS JetStream events to per-sensor, per-day JSON-lines files ('icsnare collect -h' for the flags)",
			DisableFlagParsing: true,
			RunE: func(_ *cobra.Command, args []string) error {
				return status(cmdCollect(args, stderr))
			},
		},
		&cobra.Command{
			Use:   "version",
			Short: "print the version",
			Args:  cobra.NoArgs,
			Run: func(*cobra.Command, []string) {
				fmt.Fprint(stdout, versionLine())
			},
		},
		manCmd(stderr),
	)
	root.InitDefaultCompletionCmd()
	return root
}

// usageOnly is the action of a command that only groups others: it shows the command's
// help on stderr and exits 2.
func usageOnly(stderr io.Writer) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		cmd.SetOut(stderr)
		cmd.Help()
		return exitCode(exitUsage)
	}
}

// runFlagsCmd is a command that takes run's flags (run, check, config print).
func runFlagsCmd(use, short string, stderr io.Writer, do func(*runFlags) int) *cobra.Command {
	f := newRunFlags(use, stderr)
	cmd := &cobra.Command{
		Use:   use + " [flags]",
		Short: short,
		Long: short + `.

A flag overrides the configuration file (--config); protocol flags set options of their
[protocols.NAME] table.`,
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error { return status(do(f)) },
	}
	cmd.Flags().SortFlags = false
	cmd.Flags().AddFlagSet(f.fs)
	return cmd
}

func configCmd(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "show the configuration",
		Args:  cobra.NoArgs,
		RunE:  usageOnly(stderr),
	}
	cmd.AddCommand(runFlagsCmd("print", "print the effective configuration run would use with the same flags: every option with its value, passwords, secrets and tokens masked", stderr,
		func(f *runFlags) int { return cmdConfigPrint(f, stdout, stderr) }))
	return cmd
}

func profilesCmd(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "profiles",
		Short: "list the embedded profiles",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return status(cmdProfiles(stdout, stderr))
		},
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "export NAME DIR",
		Short: "copy an embedded profile to DIR as a Conpot template directory, to edit",
		Args:  cobra.ExactArgs(2),
		RunE: func(_ *cobra.Command, args []string) error {
			return status(cmdExport(args[0], args[1], stderr))
		},
	})
	return cmd
}

func xdpCmd(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "xdp",
		Short: "inspect the kernel programs of a running sensor",
		Args:  cobra.NoArgs,
		RunE:  usageOnly(stderr),
	}
	var pin string
	var top int
	stats := &cobra.Command{
		Use:   "stats",
		Short: "the XDP limiter's counters and its top limited sources",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return status(cmdXDPStats(pin, top, stdout, stderr))
		},
	}
	stats.Flags().StringVar(&pin, "pin", "/sys/fs/bpf/icsnare", "`directory` where the running sensor pins its maps (xdp.pin_path)")
	stats.Flags().IntVarP(&top, "top", "n", 10, "show the top `N` limited sources")
	cmd.AddCommand(stats)
	return cmd
}

func manCmd(stderr io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "man DIR",
		Short: "write the man pages (icsnare.1, icsnare-run.1 ...) into DIR",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			header := &doc.GenManHeader{Title: "ICSNARE", Section: "1", Source: "icsnare " + sensor.Version, Manual: "icsnare manual"}
			root := cmd.Root()
			root.DisableAutoGenTag = true
			err := os.MkdirAll(args[0], 0o755)
			if err == nil {
				err = doc.GenManTree(root, header, args[0])
			}
			if err != nil {
				fmt.Fprintf(stderr, "icsnare man: %v\n", err)
				return exitCode(exitRuntime)
			}
			return nil
		},
	}
}

// noArgs refuses positional arguments, naming them.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageError(fmt.Sprintf("%s: unexpected arguments %q (see '%s --help')", cmd.CommandPath(), args, cmd.CommandPath()))
	}
	return nil
}

// flagError adds the closest flag name to an unknown-flag error, and marks it as a usage
// error.
func flagError(cmd *cobra.Command, err error) error {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "unknown flag: --"); ok {
		if s := closestFlag(cmd.Flags(), name); s != "" {
			msg += fmt.Sprintf("; did you mean --%s?", s)
		}
	}
	return usageError(fmt.Sprintf("%s: %s (see '%s --help')", cmd.CommandPath(), msg, cmd.CommandPath()))
}

// usageError is a bad command line, already phrased for the user.
type usageError string

func (e usageError) Error() string { return string(e) }

// closestFlag returns the visible flag of fs nearest to name: within two edits, or the one
// name is a prefix of; "" when none is close.
func closestFlag(fs *pflag.FlagSet, name string) string {
	best, bestD := "", 3
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Hidden {
			return
		}
		d := editDistance(name, f.Name)
		if strings.HasPrefix(f.Name, name) && len(name) >= 3 {
			d = min(d, 1)
		}
		if d < bestD {
			best, bestD = f.Name, d
		}
	})
	return best
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// run executes the command line args and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	root := newRootCmd(stdout, stderr)
	root.SetArgs(args)
	err := root.Execute()
	var code exitCode
	var usage usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &code):
		return int(code)
	case errors.As(err, &usage):
		fmt.Fprintln(stderr, usage)
	default: // cobra's own: an unknown command, a wrong number of arguments
		fmt.Fprintf(stderr, "icsnare: %s\n", strings.TrimRight(err.Error(), "\n"))
	}
	return exitUsage
}
