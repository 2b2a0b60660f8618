// Package kamstrupmeter serves the Kamstrup Meter Protocol (KMP) of a Kamstrup 382
// electricity meter on TCP 1025 from a Conpot kamstrup_meter.xml profile section:
// GetRegister for the template's registers, GetSerialNo, the meter's communication
// address and reply delay. It also registers Conpot's UsageSimulator databus function and
// the Decoder382 proxy decoder, and keeps the per-host reboot state the management
// console (protocols/kamstrup_management) triggers. See README.md.
package kamstrupmeter

import (
	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
)

// Name is the protocol's name and Conpot's template directory.
const Name = "kamstrup_meter"

// Port is the meter's KMP port (channel A of its network module).
const Port = 1025

// DataType is the protocol name Conpot's JSON logger writes for meter events.
const DataType = "kamstrup_protocol"

func init() { protocols.Register(protocol{}) }

// protocol is the registered Kamstrup meter implementation.
type protocol struct{}

// Name implements protocols.Protocol.
func (protocol) Name() string { return Name }

// Configure implements protocols.Protocol. The meter takes no sensor-wide options.
func (protocol) Configure(sec *profiles.Section, _ any) (protocols.Service, error) {
	c, err := parseConfig(sec)
	if err != nil {
		return nil, err
	}
	return newService(c), nil
}

// ConpotEvents implements protocols.ConpotEventer: Conpot logs each request with the
// request and response frames as hex (no response when the meter stayed silent).
func (protocol) ConpotEvents(e *protocols.Event) []protocols.ConpotEvent {
	if e.Type != evRequest {
		return nil
	}
	ce := protocols.ConpotEvent{DataType: DataType, Request: protocols.ConpotHex(e.Request)}
	if e.Response != nil {
		ce.Response = protocols.ConpotHex(e.Response)
	}
	return []protocols.ConpotEvent{ce}
}

// ConpotSession implements protocols.ConpotSessioner: Conpot's name for the protocol in
// data_type, with its NEW_CONNECTION and CONNECTION_LOST documents.
func (protocol) ConpotSession() protocols.ConpotSession {
	return protocols.ConpotSession{DataType: DataType, Start: protocols.ConpotNewConnection, End: protocols.ConpotConnectionLost}
}
