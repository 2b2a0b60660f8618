package s7comm

import (
	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
)

// Name is the protocol's template directory name.
const Name = "s7comm"

func init() { protocols.Register(protocol{}) }

// protocol is the registered S7comm implementation.
type protocol struct{}

// Name implements protocols.Protocol.
func (protocol) Name() string { return Name }

// Configure implements protocols.Protocol. S7comm takes no sensor-wide options.
func (protocol) Configure(sec *profiles.Section, _ any) (protocols.Service, error) {
	cfg, err := parseConfig(sec)
	if err != nil {
		return nil, err
	}
	return &service{cfg: cfg}, nil
}
