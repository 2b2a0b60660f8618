package syslog

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/sensor"
)

// TestConfig loads [sinks.syslog] tables through the sensor's configuration loader: the
// keys reach the options (durations as "5s"), and bad values are errors naming the key.
func TestConfig(t *testing.T) {
	for _, tc := range []struct {
		table, err string
	}{
		{"address = \"192.0.2.1:6514\"\ntransport = \"tcp\"\nfacility = \"3\"\nreconnect_max = \"1m\"\nnotice = [\"x.* k=v\"]", ""},
		{"transport = \"sctp\"", "transport \"sctp\""},
		{"facility = \"local9\"", "facility \"local9\""},
		{"severity = \"loud\"", "severity \"loud\""},
		{"sd_id = \"icsnare\"", "sd_id: SD-ID \"icsnare\" is not name@enterprise-number"},
		{"sd_id = \"ics nare@1\"", "sd_id"},
		{"sd_id = \"icsnare@01\"", "not a private enterprise number"},
		{"notice = [\"[\"]", "notice: rule \"[\": bad pattern"},
		{"warning = [\"x.y key\"]", "warning: rule \"x.y key\": the condition is not key=value"},
		{"ca_file = \"/nonexistent\"", "need transport = \"tls\""},
		{"transport = \"tls\"\nca_file = \"/nonexistent\"", "ca_file: stat /nonexistent"},
		{"transport = \"tls\"\ncert_file = \"/etc/hostname\"", "cert_file and key_file go together"},
		{"max_message = 100", "max_message 100"},
		{"reconnect_min = \"0s\"", "reconnect_min: want a positive duration"},
		{"message = \"xml\"", "message \"xml\""},
		{"no_such_key = 1", "no_such_key"},
	} {
		dir := t.TempDir()
		path := filepath.Join(dir, "icsnare.toml")
		if err := os.WriteFile(path, []byte("[sinks.syslog]\n"+tc.table+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := sensor.LoadConfig(path)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want one containing %q", tc.table, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%q: %v", tc.table, err)
		}
		o := cfg.Sinks[Name].(*Options)
		if o.Address != "192.0.2.1:6514" || o.Transport != "tcp" || o.facility != 3 || o.ReconnectMax != time.Minute ||
			o.MaxMessage != 8192 || len(o.classifier.Notice) != 1 || o.classifier.Notice[0] != (Rule{"x.*", "k", "v"}) {
			t.Errorf("options %+v", o)
		}
	}
}
