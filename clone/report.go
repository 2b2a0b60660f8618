package clone

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// Report is clone.json: what each protocol revealed, skipped or refused, and which
// fields became per-host seeded keys or value engines.
type Report struct {
	Target    string            `json:"target"`
	Started   time.Time         `json:"started"`
	Finished  time.Time         `json:"finished"`
	Seconds   float64           `json:"seconds"`
	Requests  int               `json:"requests"`
	Rate      float64           `json:"rate_limit"`
	Timeout   string            `json:"timeout"`
	Budget    int               `json:"budget_per_protocol"`
	Protocols []*ProtocolReport `json:"protocols"`
	Seeded    []SeededField     `json:"seeded"`
	Engines   []EngineField     `json:"engines"`
}

// ProtocolReport is one protocol's part of the report.
type ProtocolReport struct {
	Name     string   `json:"name"`
	Port     int      `json:"port"`
	Status   string   `json:"status"` // cloned, absent, failed, interrupted
	Error    string   `json:"error,omitempty"`
	Requests int      `json:"requests"`
	Seconds  float64  `json:"seconds"`
	Found    []string `json:"found,omitempty"`
	Skipped  []string `json:"skipped,omitempty"`
	Refused  []string `json:"refused,omitempty"` // what the device answered with an error
	Varying  []string `json:"varying,omitempty"` // values that changed between reads and were frozen
	Notes    []string `json:"notes,omitempty"`
}

// SeededField is a value that identified the real unit and became a per-host seeded key.
type SeededField struct {
	Protocol   string `json:"protocol"`
	Field      string `json:"field"`
	Kind       string `json:"kind"`
	Key        string `json:"databus_key"`
	Original   string `json:"original"`
	Expression string `json:"expression"`
}

// EngineField is a value that moved between two reads and became a value engine.
type EngineField struct {
	Protocol string `json:"protocol"`
	Field    string `json:"field"`
	Engine   string `json:"engine"`
	Observed string `json:"observed"`
}

// Find records something the device revealed.
func (r *ProtocolReport) Find(format string, a ...any) {
	r.Found = append(r.Found, fmt.Sprintf(format, a...))
}

// Skip records something left out.
func (r *ProtocolReport) Skip(format string, a ...any) {
	r.Skipped = append(r.Skipped, fmt.Sprintf(format, a...))
}

// Refuse records a request the device answered with an error.
func (r *ProtocolReport) Refuse(format string, a ...any) {
	r.Refused = append(r.Refused, fmt.Sprintf(format, a...))
}

// WriteFile writes the report as dir/clone.json.
func (r *Report) WriteFile(dir string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("clone.json: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "clone.json"), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("clone.json: %w", err)
	}
	return nil
}

// Summary writes a short human summary.
func (r *Report) Summary(w io.Writer) {
	fmt.Fprintf(w, "cloned %s in %.1fs with %d requests (limit %.0f/s)\n", r.Target, r.Seconds, r.Requests, r.Rate)
	for _, p := range r.Protocols {
		line := fmt.Sprintf("  %-7s port %-5d %-11s %5d requests, %d found, %d skipped, %d refused",
			p.Name, p.Port, p.Status, p.Requests, len(p.Found), len(p.Skipped), len(p.Refused))
		if p.Error != "" {
			line += ": " + p.Error
		}
		fmt.Fprintln(w, line)
	}
	fmt.Fprintf(w, "  %d per-host seeded fields, %d value engines (clone.json lists them)\n", len(r.Seeded), len(r.Engines))
}
