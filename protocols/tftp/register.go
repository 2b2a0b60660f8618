// Package tftp serves TFTP (RFC 1350 with the option extensions of RFC 2347–2349: blksize,
// tsize, timeout) on UDP 69 from a Conpot tftp.xml profile section, over the host's
// virtual filesystem (protocols/vfs). Each transfer runs on its own port of the host's
// address (the sensor's ephemeral endpoints); uploads are copied to the capture directory
// under their SHA-256. See README.md.
package tftp

import (
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
