package collect

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// FuzzMessage feeds arbitrary subjects and bodies to what collect derives from a message:
// the line is one line of valid JSON or refused, the sensor and day are file names that
// stay in their directory.
func FuzzMessage(f *testing.F) {
	f.Add("icsnare.plant-1.modbus.request", []byte(`{"timestamp":"2026-11-29T10:00:00Z","event_id":"a-1"}`))
	f.Add("icsnare.a/\\b.x", []byte("{\n\"timestamp\": \"../x\"\n}"))
	f.Add("icsnare", []byte(`"\u2028"`))
	f.Fuzz(func(t *testing.T, subject string, body []byte) {
		if line, ok := Line(body); ok {
			if bytes.ContainsAny(line, "\r\n") || !json.Valid(line) {
				t.Fatalf("Line(%q) = %q", body, line)
			}
		}
		fallback := time.Unix(0, 0)
		for _, name := range []string{SensorOf(subject, "icsnare"), Day(body, fallback)} {
			if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\\\x00") || filepath.Base(name) != name {
				t.Fatalf("unsafe file name %q from %q / %q", name, subject, body)
			}
		}
	})
}
