package main

import (
	"context"
	"errors"
)

// A placeholder until the mode is written: it refuses to run.
type kamstrupmanagementLoad struct{ o opts }

func newKamstrupManagement(o opts) workload { return &kamstrupmanagementLoad{o} }

func (l *kamstrupmanagementLoad) check() error {
	return errors.New("kamstrup_management: not implemented yet")
}

func (l *kamstrupmanagementLoad) run(ctx context.Context, target string, rec *recorder, budget *pacer) error {
	return errors.New("kamstrup_management: not implemented yet")
}
