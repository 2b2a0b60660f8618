// Package ftp serves FTP (RFC 959 with the extensions clients expect: FEAT, SIZE, MDTM,
// REST, EPSV, EPRT, MLSD/MLST) on TCP 21 from a Conpot ftp.xml profile section, over the
// host's virtual filesystem (protocols/vfs). Passive data connections use the sensor's
// ephemeral endpoints on the host's own address; active ones go only to the client's own
// address. Uploads are kept in the host's filesystem and copied to the capture directory
// under their SHA-256. See README.md.
package ftp

import (
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

// NewOptions implements protocols.Configurable.
func (protocol) NewOptions() any { return &vfs.CaptureOptions{} }

// Flags implements protocols.Configurable: the options are set in the configuration file.
func (protocol) Flags() []protocols.Flag { return nil }

// Configure implements protocols.Protocol. opts is the sensor's *vfs.CaptureOptions, or nil for the
// defaults.
func (protocol) Configure(sec *profiles.Section, opts any) (protocols.Service, error) {
	o, _ := opts.(*vfs.CaptureOptions)
	if o == nil {
		o = &vfs.CaptureOptions{}
	}
	c, err := parseConfig(sec)
	if err != nil {
		return nil, err
	}
	c.captureDir, c.captureQuota = o.CaptureDir, o.Quotas()
	return newService(c)
}
