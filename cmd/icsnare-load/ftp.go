package main

import (
	"context"
	"errors"
)

// A placeholder until the mode is written: it refuses to run.
type ftpLoad struct{ o opts }

func newFTP(o opts) workload { return &ftpLoad{o} }

func (l *ftpLoad) check() error { return errors.New("ftp: not implemented yet") }

func (l *ftpLoad) run(ctx context.Context, target string, rec *recorder, budget *pacer) error {
	return errors.New("ftp: not implemented yet")
}
