package vfs

import (
	"errors"
	"fmt"
	"os"
)

// CaptureOptions are the sensor-wide options of a protocol that captures uploads (FTP's
// and TFTP's [protocols.<name>] tables). Profiles cannot set them, so a template never
// chooses where the sensor writes.
type CaptureOptions struct {
	// CaptureDir receives every upload as a file named by its SHA-256 ("" keeps only the
	// hashes and events). Protocols naming one directory share it and its quotas.
	CaptureDir string `toml:"capture_dir"`
	// CaptureMaxBytes bounds the directory, CaptureMaxBytesPerSource what one source address
	// may store in it (0: DefaultQuotas).
	CaptureMaxBytes          int64 `toml:"capture_max_bytes"`
	CaptureMaxBytesPerSource int64 `toml:"capture_max_bytes_per_source"`
}

// Validate checks the options (protocols.Validator).
func (o *CaptureOptions) Validate() error {
	if o.CaptureMaxBytes < 0 || o.CaptureMaxBytesPerSource < 0 {
		return errors.New("capture_max_bytes and capture_max_bytes_per_source must not be negative")
	}
	if o.CaptureDir != "" {
		if st, err := os.Stat(o.CaptureDir); err == nil && !st.IsDir() {
			return fmt.Errorf("capture_dir %s is not a directory", o.CaptureDir)
		}
	}
	return nil
}

// Quotas returns the capture quotas the options set.
func (o *CaptureOptions) Quotas() Quotas {
	q := DefaultQuotas
	if o.CaptureMaxBytes > 0 {
		q.Total = o.CaptureMaxBytes
	}
	if o.CaptureMaxBytesPerSource > 0 {
		q.PerSource = o.CaptureMaxBytesPerSource
	}
	return q
}
