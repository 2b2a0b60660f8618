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

// options are the sensor-wide Modbus options, the [protocols.modbus] table.
type options struct {
	// Addressing is "modicon" (the default: starting_address 40001 is holding register
	// 0 on the wire, as real devices number them) or "literal" (Conpot's: the wire
	// address is starting_address itself). A profile's <addressing> wins.
	Addressing string `toml:"addressing"`
}

// NewOptions implements protocols.Configurable.
func (protocol) NewOptions() any { return &options{} }

// Flags implements protocols.Configurable; Modbus has none.
func (protocol) Flags() []protocols.Flag { return nil }

// Validate implements protocols.Validator.
func (o *options) Validate() error {
	if o.Addressing == "" {
		return nil
	}
	_, err := parseAddressing(o.Addressing)
	return err
}

// Configure implements protocols.Protocol. opts is the sensor's *options or nil.
func (protocol) Configure(sec *profiles.Section, opts any) (protocols.Service, error) {
	o, _ := opts.(*options)
	c, err := parseConfig(sec, o)
	if err != nil {
		return nil, err
	}
	return newService(c), nil
}
