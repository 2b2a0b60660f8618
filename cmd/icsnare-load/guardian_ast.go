package main

import (
	"context"
	"errors"
)

// A placeholder until the mode is written: it refuses to run.
type guardianastLoad struct{ o opts }

func newGuardianAST(o opts) workload { return &guardianastLoad{o} }

func (l *guardianastLoad) check() error { return errors.New("guardian_ast: not implemented yet") }

func (l *guardianastLoad) run(ctx context.Context, target string, rec *recorder, budget *pacer) error {
	return errors.New("guardian_ast: not implemented yet")
}
