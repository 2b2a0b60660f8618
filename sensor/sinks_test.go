package sensor

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/icsnare/icsnare/events"
	"github.com/icsnare/icsnare/protocols"
)

// recordKind is a sink kind for the configuration tests: its options have one key, and
// Validate refuses a negative value.
type recordKind struct{}

type recordOptions struct {
	Depth int `toml:"depth"`
}

func (o *recordOptions) Validate() error {
	if o.Depth < 0 {
		return errors.New("depth: must not be negative")
	}
	return nil
}

type recordSink struct{ depth int }

func (recordSink) Name() string                 { return "record" }
func (recordSink) Write(*protocols.Event) error { return nil }
func (recordSink) Flush() error                 { return nil }
func (recordSink) Close() error                 { return nil }
func (recordKind) Name() string                 { return "sensor-test-record" }
func (recordKind) NewOptions() any              { return &recordOptions{Depth: 7} }
func (recordKind) Open(_ context.Context, o any, _ events.Env) (events.Sink, error) {
	return recordSink{o.(*recordOptions).Depth}, nil
}

func init() { events.Register(recordKind{}) }

func TestSinkTables(t *testing.T) {
	tests := []struct {
		name, body string
		wantErr    string // "" for success
		wantDepth  int
	}{
		{"defaults", "[sinks.sensor-test-record]\n", "", 7},
		{"set", "[sinks.sensor-test-record]\ndepth = 3\n", "", 3},
		{"unknown kind", "\n[sinks.nosuch]\n", ":2: [sinks.nosuch]: no sink kind \"nosuch\"", 0},
		{"unknown key", "[sinks.sensor-test-record]\ndepht = 3\n", "sinks.sensor-test-record.depht", 0},
		{"invalid", "[sinks.sensor-test-record]\ndepth = -1\n", "depth: must not be negative", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "icsnare.toml")
			if err := os.WriteFile(path, []byte(tt.body), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := LoadConfig(path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("LoadConfig: %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			cfg.Events.File = ""
			sinks, err := OpenSinks(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if len(sinks) != 1 || sinks[0].(recordSink).depth != tt.wantDepth {
				t.Fatalf("sinks = %#v, want one record sink of depth %d", sinks, tt.wantDepth)
			}
		})
	}
}
