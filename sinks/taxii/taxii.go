package taxii

import (
	"context"
	"errors"

	"github.com/icsnare/icsnare/events"
	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/sinks/stix"
)

// Sink is the [sinks.taxii] sink. With a [sinks.stix] table its client takes the bundles
// of that sink and Write has nothing to do; without one it makes bundles itself, with the
// defaults of [sinks.stix] and no files.
type Sink struct {
	c      *Client
	own    *stix.Sink // nil when [sinks.stix] feeds the client
	linked *stix.Sink // the [sinks.stix] sink that does
}

// Open starts the client and links it to the [sinks.stix] sink opened with ctx for the
// same sensor, or to an exporter of its own.
func Open(ctx context.Context, o Options, env events.Env) (*Sink, error) {
	c, err := NewClient(ctx, o, env.Logger)
	if err != nil {
		return nil, err
	}
	s := &Sink{c: c}
	if s.linked = stix.Attach(ctx, env.SensorID, c); s.linked == nil {
		so := stix.DefaultOptions()
		if s.own, err = stix.NewSink(so, env); err != nil {
			c.Close()
			return nil, err
		}
		s.own.AddOutput(c)
		if env.Logger != nil {
			env.Logger.Info("taxii: no [sinks.stix] table; posting bundles made with its defaults")
		}
	}
	return s, nil
}

// Client returns the sink's TAXII client.
func (s *Sink) Client() *Client { return s.c }

// Name implements events.Sink.
func (s *Sink) Name() string { return Name }

// Write implements events.Sink; it reports bundles given up on since the last call.
func (s *Sink) Write(e *protocols.Event) error {
	var err error
	if s.own != nil {
		err = s.own.Write(e)
	}
	return errors.Join(err, s.c.Err())
}

// Flush implements events.Sink.
func (s *Sink) Flush() error {
	var err error
	if s.own != nil {
		err = s.own.Flush()
	}
	return errors.Join(err, s.c.Err())
}

// Close implements events.Sink: the last bundle is queued, then the queue drains for at
// most close_timeout.
func (s *Sink) Close() error {
	var err error
	switch {
	case s.own != nil:
		err = s.own.Close()
	case s.linked != nil:
		err = s.linked.Cut() // whichever of the two sinks closes first, the last sessions get here
	}
	return errors.Join(err, s.c.Close())
}
