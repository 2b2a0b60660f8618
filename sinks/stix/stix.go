package stix

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/icsnare/icsnare/events"
	"github.com/icsnare/icsnare/protocols"
)

// Output takes the bundles a Sink makes (the TAXII client does). Offer must not block
// and must not keep b's objects beyond the bundle's use; an error means the bundle was
// not taken and is counted as lost.
type Output interface {
	Offer(b *Bundle) error
}

// Sink is the [sinks.stix] sink: an Exporter fed with the bus's events, writing bundles
// to a directory and offering them to its outputs.
type Sink struct {
	mu   sync.Mutex
	x    *Exporter
	dir  *dirWriter
	outs []Output
	log  *slog.Logger
	now  func() time.Time

	unpublish func()
	stop      chan struct{}
	ticker    sync.WaitGroup
	late      []error // failures of deliveries the ticker made, reported by the next call

	bundles atomic.Int64
	objects atomic.Int64
	lost    atomic.Int64
	failing bool // the last delivery failed (logged once until one succeeds)
}

// NewSink returns a sink with validated options for the sensor env describes.
func NewSink(o Options, env events.Env) (*Sink, error) {
	log := env.Logger
	if log == nil {
		log = slog.Default()
	}
	now := time.Now()
	id := Identity{Type: "identity", SpecVersion: SpecVersion, ID: IdentityID(env.SensorID),
		Name: o.IdentityName, IdentityClass: "system",
		Description: fmt.Sprintf("icsnare ICS/SCADA honeypot sensor %s", env.SensorID)}
	if id.Name == "" {
		id.Name = "icsnare sensor " + env.SensorID
	}
	created, err := identityCreated(env.StateDir, id.ID, now)
	if err != nil {
		log.Warn("stix: the identity's creation time is not kept across restarts", "err", err)
	}
	id.Created, id.Modified = created, created
	s := &Sink{x: NewExporter(o, id), log: log, now: time.Now, stop: make(chan struct{})}
	if o.Dir != "" {
		s.dir = &dirWriter{dir: o.Dir, maxFiles: o.MaxFiles, maxBytes: o.MaxBytes}
		// temporary files a crash left behind
		if stale, _ := filepath.Glob(filepath.Join(o.Dir, ".bundle-*.tmp")); len(stale) > 0 {
			for _, f := range stale {
				os.Remove(f)
			}
			log.Info("stix: removed the temporary files of unfinished bundles", "dir", o.Dir, "files", len(stale))
		}
	}
	// Bundles are due by the clock, whether events (and the bus's flushes) come or not.
	every := min(o.BundleInterval.Duration, o.SessionTimeout.Duration, time.Second)
	s.ticker.Add(1)
	go s.tick(max(every, 10*time.Millisecond))
	return s, nil
}

func (s *Sink) tick(every time.Duration) {
	defer s.ticker.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.mu.Lock()
			if err := s.deliver(s.x.Tick(s.now())); err != nil && len(s.late) < 16 {
				s.late = append(s.late, err)
			}
			s.mu.Unlock()
		}
	}
}

// takeLate returns the failures of the ticker's deliveries since the last call; s.mu is
// held.
func (s *Sink) takeLate() error {
	err := errors.Join(s.late...)
	s.late = nil
	return err
}

// identityCreated returns when the identity was first made: kept in the state directory
// so the identity, whose id the sensor id fixes, stays one object across restarts.
func identityCreated(stateDir, id string, now time.Time) (string, error) {
	ts := Timestamp(now)
	if stateDir == "" {
		return ts, nil
	}
	path := filepath.Join(stateDir, "stix-identity.json")
	var kept struct{ ID, Created string }
	if b, err := os.ReadFile(path); err == nil && json.Unmarshal(b, &kept) == nil && kept.ID == id {
		if _, err := time.Parse(time.RFC3339Nano, kept.Created); err == nil {
			return kept.Created, nil
		}
	}
	kept.ID, kept.Created = id, ts
	if err := os.WriteFile(path, mustJSON(kept), 0o640); err != nil {
		return ts, fmt.Errorf("keeping the identity: %w", err)
	}
	return ts, nil
}

// Name implements events.Sink.
func (s *Sink) Name() string { return Name }

// AddOutput makes s offer its bundles to o too.
func (s *Sink) AddOutput(o Output) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.outs = append(s.outs, o)
}

// Write implements events.Sink.
func (s *Sink) Write(e *protocols.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(s.deliver(s.x.Add(e, s.now())), s.takeLate())
}

// Flush implements events.Sink: it exports idle sessions and cuts the bundle when due.
func (s *Sink) Flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(s.deliver(s.x.Tick(s.now())), s.takeLate())
}

// Close implements events.Sink: every open session goes into a last bundle.
func (s *Sink) Close() error {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	s.ticker.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.unpublish != nil {
		s.unpublish()
	}
	return errors.Join(s.deliver(s.x.Close(s.now())), s.takeLate())
}

// Stats is what a Sink counts.
type Stats struct {
	Bundles, Objects, Lost int64 // bundles delivered, their objects, bundles lost
	Evicted, Expired       int64 // sessions exported early (MaxSessions) or when idle
	OpenSessions           int
}

// Stats returns the sink's counters.
func (s *Sink) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Bundles: s.bundles.Load(), Objects: s.objects.Load(), Lost: s.lost.Load(),
		Evicted: s.x.Evicted, Expired: s.x.Expired, OpenSessions: s.x.OpenSessions()}
}

// deliver writes and offers the bundles; it reports the first failure of each (the bus
// counts the error against this sink) and logs once until a delivery succeeds again.
func (s *Sink) deliver(bs []*Bundle) error {
	var errs []error
	for _, b := range bs {
		var err error
		if s.dir != nil {
			raw, _ := b.MarshalJSON()
			if _, werr := s.dir.write(raw, s.now()); werr != nil {
				err = werr
			}
		}
		for _, o := range s.outs {
			if oerr := o.Offer(b); oerr != nil {
				err = errors.Join(err, oerr)
			}
		}
		if err != nil {
			s.lost.Add(1)
			errs = append(errs, err)
			if !s.failing {
				s.failing = true
				s.log.Error("stix: a bundle was not delivered; counting further losses quietly", "err", err)
			}
			continue
		}
		if s.failing {
			s.failing = false
			s.log.Info("stix: bundles are delivered again", "lost", s.lost.Load())
		}
		s.bundles.Add(1)
		s.objects.Add(int64(len(b.Objects)))
	}
	return errors.Join(errs...)
}

// The sinks of the sensors of this process, by the context and sensor id they were opened
// with, so that [sinks.taxii], opened after [sinks.stix], can take its bundles.
var published sync.Map // linkKey → *Sink

type linkKey struct {
	ctx    context.Context
	sensor string
}

func (s *Sink) publish(ctx context.Context, sensor string) {
	if !reflect.TypeOf(ctx).Comparable() {
		s.log.Warn("stix: the sensor's context cannot key a link: [sinks.taxii] will make bundles of its own")
		return
	}
	k := linkKey{ctx, sensor}
	published.Store(k, s)
	stop := context.AfterFunc(ctx, func() { published.CompareAndDelete(k, s) })
	s.unpublish = func() {
		stop()
		published.CompareAndDelete(k, s)
	}
}

// Attach adds out to the [sinks.stix] sink opened with ctx for sensor and returns that
// sink, or nil when there is none.
func Attach(ctx context.Context, sensor string, out Output) *Sink {
	if !reflect.TypeOf(ctx).Comparable() {
		return nil
	}
	v, ok := published.Load(linkKey{ctx, sensor})
	if !ok {
		return nil
	}
	s := v.(*Sink)
	s.AddOutput(out)
	return s
}

// Cut exports every open session now and delivers their bundle, as Close does, but the
// sink stays open: an output about to close takes its last bundle first.
func (s *Sink) Cut() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.deliver(s.x.Close(s.now()))
}
