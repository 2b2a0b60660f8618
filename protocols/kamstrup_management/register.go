// Package kamstrupmgmt serves the configuration console of a Kamstrup 382 meter's network
// module on TCP 50100 from a Conpot kamstrup_management.xml profile section: the banner
// with the module's MAC, the service menu and its seventeen commands, with every setting
// kept in the host's databus. Commands that restart the module make the host's meter
// (protocols/kamstrup_meter) stop answering for a moment. See README.md.
package kamstrupmgmt

import (
	"time"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
)

// Name is the protocol's name and Conpot's template directory.
const Name = "kamstrup_management"

// Port is the module's configuration port.
const Port = 50100

// DataType is the protocol name Conpot's JSON logger writes for console events.
const DataType = "kamstrup_management_protocol"

func init() { protocols.Register(protocol{}) }

// protocol is the registered console implementation.
type protocol struct{}

// Name implements protocols.Protocol.
func (protocol) Name() string { return Name }

// Configure implements protocols.Protocol. The console takes no sensor-wide options, and
// its template section has no elements.
func (protocol) Configure(sec *profiles.Section, _ any) (protocols.Service, error) {
	if sec.Root.Name != Name {
		return nil, sec.Root.Errorf("root element must be <%s>", Name)
	}
	sec.CheckChildren(sec.Root)
	return newService(), nil
}

// ConpotEvents implements protocols.ConpotEventer: one document per line with the request
// and the reply as text (null when the module closed the connection instead).
func (protocol) ConpotEvents(e *protocols.Event) []protocols.ConpotEvent {
	if e.Type != evCommand {
		return nil
	}
	ce := protocols.ConpotEvent{DataType: DataType, Request: string(e.Request)}
	if e.Response != nil {
		ce.Response = string(e.Response)
	}
	return []protocols.ConpotEvent{ce}
}

// minRequestTimeout is the time a person gets to type one command line.
const minRequestTimeout = 2 * time.Minute

// RequestTimeout implements protocols.RequestTimeouter: people type at this console.
func (s *service) RequestTimeout(sensorDefault time.Duration) time.Duration {
	return max(sensorDefault, minRequestTimeout)
}

// ConpotSession implements protocols.ConpotSessioner: Conpot's name for the protocol in
// data_type, with its NEW_CONNECTION and CONNECTION_LOST documents.
func (protocol) ConpotSession() protocols.ConpotSession {
	return protocols.ConpotSession{DataType: DataType, Start: protocols.ConpotNewConnection, End: protocols.ConpotConnectionLost}
}
