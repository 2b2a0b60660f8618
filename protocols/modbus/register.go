package modbus

import (
	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
)

// Name is the protocol's name and template directory.
const Name = "modbus"

func init() { protocols.Register(protocol{}) }

// protocol is the registered Modbus/TCP implementation.
type protocol struct{}

// Name implements protocols.Protocol.
func (protocol) Name() string { return Name }

// Configure implements protocols.Protocol. Modbus takes no sensor-wide options.
func (protocol) Configure(sec *profiles.Section, _ any) (protocols.Service, error) {
	c, err := parseConfig(sec)
	if err != nil {
		return nil, err
	}
	return newService(c), nil
}
