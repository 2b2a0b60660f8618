package nats_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/sensor"
	natssink "github.com/icsnare/icsnare/sinks/nats"
)

// TestConfigTable loads [sinks.nats] tables the way the sensor does: durations and lists
// decode, and a bad value or an unknown key is an error that names the table and line.
func TestConfigTable(t *testing.T) {
	for _, c := range []struct {
		name, table, want string
	}{
		{"valid", `servers = ["nats://n1:4222", "tls://n2:4222"]
ack_timeout = "2s"
duplicate_window = "1h"
create_stream = true
replicas = 3`, ""},
		{"bad url", `servers = ["http://n1"]`, "nats:// or tls://"},
		{"unknown key", `sever = ["nats://n1:4222"]`, "sever"},
		{"bad duration", `ack_timeout = "soon"`, ":"},
		{"two credentials", `user = "a"
token = "b"`, "at most one"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "icsnare.toml")
			if err := os.WriteFile(p, []byte("[sinks.nats]\n"+c.table+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := sensor.LoadConfig(p)
			if c.want != "" {
				if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "nats") {
					t.Fatalf("LoadConfig = %v, want an error about %q naming the table", err, c.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			o, ok := cfg.Sinks["nats"].(*natssink.Options)
			if !ok {
				t.Fatalf("sinks.nats decoded into %T", cfg.Sinks["nats"])
			}
			if len(o.Servers) != 2 || o.AckTimeout != 2*time.Second || o.DuplicateWindow != time.Hour || !o.CreateStream ||
				o.Replicas != 3 || o.Buffer != natssink.DefaultOptions().Buffer {
				t.Fatalf("decoded %+v", o)
			}
		})
	}
}
