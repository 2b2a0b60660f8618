// Package stix is the [sinks.stix] event sink: it turns the sensor's sessions into STIX 2.1
// bundles (the sensor's identity, observed-data with network-traffic and address SCOs,
// indicators and sightings of sources that wrote to a device or changed its state) and
// writes them as files to a directory, hands them to the TAXII client of [sinks.taxii], or
// both.
package stix

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/icsnare/icsnare/events"
)

// Name is the sink kind's name: the [sinks.stix] table.
const Name = "stix"

func init() { events.Register(kind{}) }

type kind struct{}

func (kind) Name() string    { return Name }
func (kind) NewOptions() any { o := DefaultOptions(); return &o }
func (kind) Open(ctx context.Context, opts any, env events.Env) (events.Sink, error) {
	o, ok := opts.(*Options)
	if !ok {
		return nil, fmt.Errorf("stix: options of type %T", opts)
	}
	s, err := NewSink(*o, env)
	if err != nil {
		return nil, err
	}
	s.publish(ctx, env.SensorID)
	return s, nil
}

// Duration is a time.Duration written as a string in the configuration ("5m").
type Duration struct{ time.Duration }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Options is the [sinks.stix] table: what the bundles hold, how much the exporter keeps,
// and where bundles go as files.
type Options struct {
	// Dir is the directory bundles are written to, one file each (bundle-<time>-<n>.json);
	// "" writes no files (the bundles then only go to [sinks.taxii]).
	Dir string `toml:"dir"`
	// MaxFiles and MaxBytes bound the bundle files kept in Dir: the oldest go first.
	MaxFiles int   `toml:"max_files"`
	MaxBytes int64 `toml:"max_bytes"`
	// BundleInterval is how long sessions collect before their bundle is cut.
	BundleInterval Duration `toml:"bundle_interval"`
	// MaxBundleObjects cuts a bundle early when it would hold more objects.
	MaxBundleObjects int `toml:"max_bundle_objects"`
	// MaxSessions bounds the open sessions followed; past it the least recently active
	// one is exported before it ends.
	MaxSessions int `toml:"max_sessions"`
	// SessionTimeout exports a session that saw no event for this long (UDP flows have
	// no end event).
	SessionTimeout Duration `toml:"session_timeout"`
	// MaxIndicators bounds the indicators remembered (one per source address), so a
	// returning source's sightings refer to the indicator made for it.
	MaxIndicators int `toml:"max_indicators"`
	// IndicatorValidity sets valid_until after valid_from; 0 leaves it open.
	IndicatorValidity Duration `toml:"indicator_validity"`
	// IdentityName names the sensor's identity; "" is "icsnare sensor <sensor id>".
	IdentityName string `toml:"identity_name"`
	// ObserveAll makes observed-data of every session; false only of the sessions of
	// sources that wrote or changed a device's state.
	ObserveAll bool `toml:"observe_all"`
	// Aggregate is what one observed-data stands for: "host", the sessions of a source
	// to one port of one emulated host; "port", to one port of any host (a scan of a
	// large prefix is one object, its network-traffic without dst_ref, counting hosts).
	Aggregate string `toml:"aggregate"`
}

// Aggregations.
const (
	AggregateHost = "host"
	AggregatePort = "port"
)

// DefaultOptions returns the defaults of [sinks.stix].
func DefaultOptions() Options {
	return Options{MaxFiles: 1000, MaxBytes: 256 << 20, BundleInterval: Duration{time.Minute},
		MaxBundleObjects: 5000, MaxSessions: 10000, SessionTimeout: Duration{5 * time.Minute},
		MaxIndicators: 10000, IndicatorValidity: Duration{30 * 24 * time.Hour}, ObserveAll: true,
		Aggregate: AggregateHost}
}

// Validate checks the options; errors name the key.
func (o *Options) Validate() error {
	var errs []error
	pos := func(key string, v int64) {
		if v <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, not %d", key, v))
		}
	}
	pos("max_files", int64(o.MaxFiles))
	pos("max_bytes", o.MaxBytes)
	pos("bundle_interval", int64(o.BundleInterval.Duration))
	pos("max_sessions", int64(o.MaxSessions))
	pos("session_timeout", int64(o.SessionTimeout.Duration))
	pos("max_indicators", int64(o.MaxIndicators))
	if o.MaxBundleObjects < 1+objectsPerFlow+objectsPerActor {
		errs = append(errs, fmt.Errorf("max_bundle_objects must be at least %d, not %d", 1+objectsPerFlow+objectsPerActor, o.MaxBundleObjects))
	}
	if o.Aggregate != AggregateHost && o.Aggregate != AggregatePort {
		errs = append(errs, fmt.Errorf("aggregate must be %q or %q, not %q", AggregateHost, AggregatePort, o.Aggregate))
	}
	if o.IndicatorValidity.Duration < 0 {
		errs = append(errs, fmt.Errorf("indicator_validity must not be negative"))
	}
	if o.Dir != "" {
		if fi, err := os.Stat(o.Dir); err != nil {
			errs = append(errs, fmt.Errorf("dir: %w", err))
		} else if !fi.IsDir() {
			errs = append(errs, fmt.Errorf("dir: %s is not a directory", o.Dir))
		}
	}
	return errors.Join(errs...)
}
