// Package bacnet serves BACnet/IP (Annex J, UDP 47808) from a Conpot bacnet.xml profile
// section: BVLC, NPDU and APDU, Who-Is/I-Am, Who-Has/I-Have, ReadProperty,
// ReadPropertyMultiple, WriteProperty and segmented answers, for every host of a prefix,
// broadcasts included. See README.md.
package bacnet

import (
	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
)

// Name is the protocol's name and template directory.
const Name = "bacnet"

// Port is the standard BACnet/IP port (0xBAC0).
const Port = 47808

func init() { protocols.Register(protocol{}) }

// protocol is the registered BACnet/IP implementation.
type protocol struct{}

// Name implements protocols.Protocol.
func (protocol) Name() string { return Name }

// Configure implements protocols.Protocol. BACnet takes no sensor-wide options.
func (protocol) Configure(sec *profiles.Section, _ any) (protocols.Service, error) {
	c, err := parseConfig(sec)
	if err != nil {
		return nil, err
	}
	return newService(c), nil
}
