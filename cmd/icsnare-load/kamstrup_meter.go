package main

import (
	"context"
	"errors"
)

// A placeholder until the mode is written: it refuses to run.
type kamstrupmeterLoad struct{ o opts }

func newKamstrupMeter(o opts) workload { return &kamstrupmeterLoad{o} }

func (l *kamstrupmeterLoad) check() error { return errors.New("kamstrup_meter: not implemented yet") }

func (l *kamstrupmeterLoad) run(ctx context.Context, target string, rec *recorder, budget *pacer) error {
	return errors.New("kamstrup_meter: not implemented yet")
}
