// Package ftp serves FTP (RFC 959 with the extensions clients expect: FEAT, SIZE, MDTM,
// REST, EPSV, EPRT, MLSD/MLST) on TCP 21 from a Conpot ftp.xml profile section, over the
// host's virtual filesystem (protocols/vfs). Passive data connections use the sensor's
// ephemeral endpoints on the host's own address; active ones go only to the client's own
// address. Uploads are kept in the host's filesystem and copied to the capture directory
// under their SHA-256. See README.md.
package ftp

import (
	"errors"
	"fmt"
	"os"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/vfs"
)

// Name is the protocol's name and template directory.
const Name = "ftp"

// Port is the standard FTP control port.
const Port = 21

func init() { protocols.Register(protocol{}) }

// protocol is the registered FTP server.
type protocol struct{}

// Name implements protocols.Protocol.
func (protocol) Name() string { return Name }

// options are the sensor-wide options of the [protocols.ftp] table.
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
