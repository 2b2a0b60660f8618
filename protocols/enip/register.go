// Package enip serves EtherNet/IP (CIP encapsulation, TCP and UDP 44818) from a Conpot
// enip.xml profile section: ListIdentity, ListServices and ListInterfaces over TCP, UDP and
// broadcast; sessions, unconnected and connected (Forward Open) messaging; the Identity,
// Message Router, Connection Manager, TCP/IP Interface and Ethernet Link objects with the
// host's own identity; and Logix tag services over the profile's tags. See README.md.
package enip

import (
	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
)

// Name is the protocol's name and template directory.
const Name = "enip"

// Port is the standard EtherNet/IP explicit messaging port, TCP and UDP.
const Port = 44818

func init() { protocols.Register(protocol{}) }

// protocol is the registered EtherNet/IP implementation.
type protocol struct{}

// Name implements protocols.Protocol.
func (protocol) Name() string { return Name }

// Configure implements protocols.Protocol. EtherNet/IP takes no sensor-wide options.
func (protocol) Configure(sec *profiles.Section, _ any) (protocols.Service, error) {
	c, err := parseConfig(sec)
	if err != nil {
		return nil, err
	}
	return newService(c), nil
}
