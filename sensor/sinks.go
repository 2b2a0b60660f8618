package sensor

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/icsnare/icsnare/events"
)

// OpenSinks opens the sinks cfg turns on: the events file of [events] (stdout is "-") and
// one sink per [sinks.<kind>] table, in the kinds' name order. On error it closes what it
// opened.
func OpenSinks(ctx context.Context, cfg Config, log *slog.Logger, stdout io.Writer) ([]Sink, error) {
	var sinks []Sink
	fail := func(err error) ([]Sink, error) {
		for _, s := range sinks {
			s.Close()
		}
		return nil, err
	}
	if cfg.Events.File != "" {
		ev := cfg.Events
		opts := JSONOptions{Conpot: ev.Format == "conpot", PublicIP: ev.PublicIP, RotateSize: int64(ev.RotateSize),
			RotateAge: ev.RotateAge.Duration, Keep: ev.Keep, Compress: ev.Compress, Fsync: ev.Fsync,
			FsyncInterval: ev.FsyncInterval.Duration, Log: log}
		var err error
		if opts.Mode, err = cfg.Events.FileMode(); err != nil {
			return nil, err
		}
		if opts.GID, err = cfg.Events.GID(); err != nil {
			return nil, err
		}
		var sink *JSONSink
		if cfg.Events.File == "-" {
			sink = NewJSONSinkWith("stdout", stdout, nil, opts)
		} else if sink, err = OpenJSONSinkWith(cfg.Events.File, opts); err != nil {
			return nil, err
		}
		sinks = append(sinks, sink)
	}
	env := events.Env{SensorID: cfg.SensorID, StateDir: cfg.State.Dir, Logger: log}
	if env.SensorID == "" {
		env.SensorID, _ = os.Hostname()
	}
	for _, name := range events.Names() {
		opts, ok := cfg.Sinks[name]
		if !ok {
			continue
		}
		kind, _ := events.Lookup(name)
		s, err := kind.Open(ctx, opts, env)
		if err != nil {
			return fail(fmt.Errorf("sinks.%s: %w", name, err))
		}
		sinks = append(sinks, s)
	}
	return sinks, nil
}
