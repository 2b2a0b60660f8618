// Package iec104 serves IEC 60870-5-104 (TCP 2404) from a Conpot IEC104.xml profile section:
// the APCI with its sequence numbers, k and w windows and t1-t3 timers; general, group and
// counter interrogation, read, clock synchronisation; single, double, regulating-step and
// set-point commands with select-before-operate, confirmations, terminations and the related
// monitored points; spontaneous transmission of changed points. See README.md.
package iec104

import (
	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
)

// Name is the protocol's name and Conpot's template directory.
const Name = "IEC104"

// Port is the standard IEC 60870-5-104 port.
const Port = 2404

func init() { protocols.Register(protocol{}) }

// protocol is the registered IEC 60870-5-104 implementation.
type protocol struct{}

// Name implements protocols.Protocol.
func (protocol) Name() string { return Name }

// Configure implements protocols.Protocol. IEC 104 takes no sensor-wide options.
func (protocol) Configure(sec *profiles.Section, _ any) (protocols.Service, error) {
	c, err := parseConfig(sec)
	if err != nil {
		return nil, err
	}
	return newService(c), nil
}
