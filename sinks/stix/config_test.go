package stix_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/icsnare/icsnare/sensor"
	"github.com/icsnare/icsnare/sinks/stix"
	_ "github.com/icsnare/icsnare/sinks/taxii"
)

// TestConfigTables loads [sinks.stix] and [sinks.taxii] tables as the sensor does: values
// decoded into the options, bad ones refused with the file and the key.
func TestConfigTables(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, toml, err string
	}{
		{"both", `[sinks.stix]
dir = "` + dir + `"
bundle_interval = "30s"
aggregate = "port"
[sinks.taxii]
url = "https://taxii.example.org/api1/"
collection = "c1"
token = "t"
`, ""},
		{"a bad aggregation", "[sinks.stix]\naggregate = \"subnet\"\n", `aggregate must be "host" or "port"`},
		{"a bad duration", "[sinks.stix]\nsession_timeout = \"soon\"\n", `icsnare.toml:2: [sinks.stix]: time: invalid duration "soon"`},
		{"an unknown key", "[sinks.stix]\nbundle_size = 3\n", "bundle_size"},
		{"taxii without a collection", "[sinks.taxii]\nurl = \"https://taxii.example.org/api1/\"\n", "collection is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "icsnare.toml")
			os.WriteFile(f, []byte(tc.toml), 0o600)
			cfg, err := sensor.LoadConfig(f)
			if err == nil {
				err = cfg.Validate()
			}
			if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("LoadConfig: %v, want %q", err, tc.err)
			}
			if err != nil {
				if !strings.Contains(err.Error(), f) {
					t.Errorf("the error does not name the file: %v", err)
				}
				return
			}
			o := cfg.Sinks["stix"].(*stix.Options)
			if o.Dir != dir || o.BundleInterval.Seconds() != 30 || o.Aggregate != stix.AggregatePort || o.MaxSessions != 10000 {
				t.Errorf("decoded %+v", o)
			}
		})
	}
}
