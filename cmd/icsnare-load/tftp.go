package main

import (
	"context"
	"errors"
)

// A placeholder until the mode is written: it refuses to run.
type tftpLoad struct{ o opts }

func newTFTP(o opts) workload { return &tftpLoad{o} }

func (l *tftpLoad) check() error { return errors.New("tftp: not implemented yet") }

func (l *tftpLoad) run(ctx context.Context, target string, rec *recorder, budget *pacer) error {
	return errors.New("tftp: not implemented yet")
}
