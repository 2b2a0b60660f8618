// Package tftp serves TFTP (RFC 1350 with the option extensions of RFC 2347–2349: blksize,
// tsize, timeout) on UDP 69 from a Conpot tftp.xml profile section, over the host's
// virtual filesystem (protocols/vfs). Each transfer runs on its own port of the host's
// address (the sensor's ephemeral endpoints); uploads are copied to the capture directory
// under their SHA-256. See README.md.
package tftp

import (
	"errors"
	"fmt"
	"os"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/vfs"
)

// Name is the protocol's name and template directory.
const Name = "tftp"

// Port is the standard TFTP port.
const Port = 69

func init() { protocols.Register(protocol{}) }

// protocol is the registered TFTP server.
type protocol struct{}

// Name implements protocols.Protocol.
func (protocol) Name() string { return Name }

// options are the sensor-wide options of the [protocols.tftp] table.
type options struct {
	// CaptureDir receives every upload as a file named by its SHA-256 ("" keeps only the
	// hashes and events). FTP and TFTP naming one directory share it and its quotas.
	CaptureDir string `toml:"capture_dir"`
	// CaptureMaxBytes bounds the directory, CaptureMaxBytesPerSource what one source address
	// may store in it (0: the defaults, 1 GiB and 64 MiB).
	CaptureMaxBytes          int64 `toml:"capture_max_bytes"`
	CaptureMaxBytesPerSource int64 `toml:"capture_max_bytes_per_source"`
}

// NewOptions implements protocols.Configurable.
func (protocol) NewOptions() any { return &options{} }

// Flags implements protocols.Configurable: the options are set in the configuration file.
func (protocol) Flags() []protocols.Flag { return nil }

// Validate implements protocols.Validator.
func (o *options) Validate() error {
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

// quotas returns the capture quotas the options set.
func (o *options) quotas() vfs.Quotas {
	q := vfs.DefaultQuotas
	if o.CaptureMaxBytes > 0 {
		q.Total = o.CaptureMaxBytes
	}
	if o.CaptureMaxBytesPerSource > 0 {
		q.PerSource = o.CaptureMaxBytesPerSource
	}
	return q
}

// Configure implements protocols.Protocol. opts is the sensor's *options, or nil for the
// defaults.
func (protocol) Configure(sec *profiles.Section, opts any) (protocols.Service, error) {
	o, _ := opts.(*options)
	if o == nil {
		o = &options{}
	}
	c, err := parseConfig(sec)
	if err != nil {
		return nil, err
	}
	c.captureDir, c.captureQuota = o.CaptureDir, o.quotas()
	return newService(c)
}
