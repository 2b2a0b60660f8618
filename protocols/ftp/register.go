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

// Configure implements protocols.Protocol.
func (protocol) Configure(sec *profiles.Section) (protocols.Service, error) {
	c, err := parseConfig(sec)
	if err != nil {
		return nil, err
	}
	return newService(c)
}
