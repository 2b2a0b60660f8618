// Package events holds what the sensor's event sinks share: the Sink interface, the icsnare
// JSON form of an event, and the registry of sink kinds that [sinks.<kind>] tables of the
// sensor configuration turn on.
package events

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"

	"github.com/icsnare/icsnare/protocols"
)

// Sink writes events somewhere. Write is called from one goroutine only, and must not keep
// the event (or its slices) after it returns: the bus reuses it.
type Sink interface {
	Name() string
	Write(e *protocols.Event) error
	Flush() error
	Close() error
}

// Reopener is a Sink that can reopen its file (after log rotation).
type Reopener interface {
	Reopen() error
}

// Kind is a kind of sink that a [sinks.<name>] table of the sensor configuration turns on
// (syslog, nats …). Kinds register themselves from init with Register.
type Kind interface {
	// Name is the table's name: [sinks.<Name>].
	Name() string
	// NewOptions returns a fresh options value holding the defaults: a pointer to a struct
	// whose fields carry toml tags. The sensor decodes the kind's table into it (a key the
	// struct lacks is an error naming the key) and calls Validate when the value has that
	// method (protocols.Validator).
	NewOptions() any
	// Open starts a sink with validated options. ctx ends when the sensor stops; the sink's
	// Close is still called after that.
	Open(ctx context.Context, opts any, env Env) (Sink, error)
}

// Env is what a sink learns about the sensor that opens it.
type Env struct {
	// SensorID names the sensor (sensor_id, or the host name).
	SensorID string
	// StateDir is a directory the sink may keep files in (spools, cursors); "" when the
	// sensor has none.
	StateDir string
	// Logger is the sensor's log.
	Logger *slog.Logger
}

var (
	kindsMu sync.RWMutex
	kinds   = map[string]Kind{}
)

// Register makes a sink kind available under its name; it panics on a duplicate name.
func Register(k Kind) {
	kindsMu.Lock()
	defer kindsMu.Unlock()
	if _, dup := kinds[k.Name()]; dup {
		panic("events: sink kind " + k.Name() + " registered twice")
	}
	kinds[k.Name()] = k
}

// Lookup returns the sink kind registered under name.
func Lookup(name string) (Kind, bool) {
	kindsMu.RLock()
	defer kindsMu.RUnlock()
	k, ok := kinds[name]
	return k, ok
}

// Names lists the registered sink kinds, sorted.
func Names() []string {
	kindsMu.RLock()
	defer kindsMu.RUnlock()
	out := make([]string, 0, len(kinds))
	for n := range kinds {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// NewOptions returns the default options of the sink kind registered under name, or an
// error naming the kinds there are.
func NewOptions(name string) (any, error) {
	k, ok := Lookup(name)
	if !ok {
		have := strings.Join(Names(), ", ")
		if have == "" {
			have = "none"
		}
		return nil, fmt.Errorf("no sink kind %q in this icsnare (have %s)", name, have)
	}
	return k.NewOptions(), nil
}

// Spooler is a Sink that keeps events it could not deliver yet (on disk, say) and replays
// them later; the bus reports Spooled as the sink's icsnare_events_spooled gauge.
type Spooler interface {
	// Spooled returns how many events wait in the spool now.
	Spooled() int64
}
