// Package modbus serves Modbus/TCP (MBAP framing, port 502) from a Conpot modbus.xml
// profile section: coils, discrete inputs, input and holding registers backed by the
// host's databus, Read Device Identification, Report Server ID and diagnostics echo, with
// the unit-id semantics of a directly attached device (tcp mode) or of a TCP/serial
// gateway (serial mode). See README.md.
package modbus

import (
	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
)

// Name is the protocol's name and template directory.
const Name = "modbus"

// Port is the standard Modbus/TCP port.
const Port = 502

func init() { protocols.Register(Protocol{}) }

// Protocol is the registered Modbus/TCP implementation.
type Protocol struct{}

// Name implements protocols.Protocol.
func (Protocol) Name() string { return Name }

// Configure implements protocols.Protocol.
func (Protocol) Configure(sec *profiles.Section) (protocols.Service, error) {
	c, err := parseConfig(sec)
	if err != nil {
		return nil, err
	}
	return newService(c), nil
}
