package main

import (
	"fmt"
	"io"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/icsnare/icsnare/sensor"
)

// reopenCmd is `icsnare reopen`: it signals the running sensor to reopen its events file
// (what SIGHUP does), for scripts and logrotate's postrotate. The sensor is found by the
// pid file in its state directory (--state, or state.dir of --config) or --pid-file.
func reopenCmd(stdout, stderr io.Writer) *cobra.Command {
	var config, state, pidFile string
	cmd := &cobra.Command{
		Use:   "reopen [--config F | --state DIR | --pid-file F]",
		Short: "make the running sensor reopen its events file (SIGHUP, after logrotate moved it)",
		Long: `Signals the running sensor to reopen its events file, as SIGHUP does: what it buffered
goes to the old file, new events to a new one. The sensor is found by icsnare.pid in its
state directory (--state, or state.dir of --config; default ` + sensor.DefaultStateDir + `),
or by --pid-file; the process is checked to be an icsnare before it is signalled.`,
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error {
			return status(cmdReopen(config, state, pidFile, stdout, stderr))
		},
	}
	cmd.Flags().StringVarP(&config, "config", "c", "", "the sensor's TOML configuration `file` (for state.dir)")
	cmd.Flags().StringVar(&state, "state", "", "the sensor's state `directory`")
	cmd.Flags().StringVar(&pidFile, "pid-file", "", "the sensor's pid `file`")
	return cmd
}

func cmdReopen(config, state, pidFile string, stdout, stderr io.Writer) int {
	path := pidFile
	if path == "" {
		cfg := sensor.DefaultConfig()
		if config != "" {
			var err error
			if cfg, err = sensor.LoadConfig(config); err != nil {
				fmt.Fprintf(stderr, "icsnare reopen: %v\n", err)
				return exitUsage
			}
		}
		if state != "" {
			cfg.State.Dir = state
		}
		if cfg.State.Dir == "" {
			cfg.State.Dir = sensor.DefaultStateDir
		}
		path = sensor.PIDFile(cfg)
	}
	pid, err := sensor.SignalSensor(path, syscall.SIGHUP)
	if err != nil {
		fmt.Fprintf(stderr, "icsnare reopen: %v\n", err)
		return exitRuntime
	}
	fmt.Fprintf(stdout, "icsnare reopen: sent SIGHUP to pid %d\n", pid)
	return 0
}
