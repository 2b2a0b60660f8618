// Package guardianast serves a Veeder-Root TLS-350 style automatic tank gauge (TCP 10001)
// from a Conpot guardian_ast profile: the serial-over-TCP inquiries I101, I111, I201 to I206
// and I902 in the display and computer formats, the S602 product-label command and the
// gauge's error reply, with tank values that move over time per host. See README.md.
package guardianast

import (
	"strings"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
)

// Name is the protocol's name and Conpot's template directory.
const Name = "guardian_ast"

// Port is the TCP port of TLS-350 consoles' serial-over-IP interface.
const Port = 10001

func init() { protocols.Register(protocol{}) }

// protocol is the registered Guardian AST implementation.
type protocol struct{}

// Name implements protocols.Protocol.
func (protocol) Name() string { return Name }

// Configure implements protocols.Protocol. The gauge takes no sensor-wide options.
func (protocol) Configure(sec *profiles.Section, _ any) (protocols.Service, error) {
	c, err := parseConfig(sec)
	if err != nil {
		return nil, err
	}
	return newService(c), nil
}

// ConpotEvents implements protocols.ConpotEventer: one "AST <cmd>" document per command,
// with the raw request as Python bytes text and the reply text (null when there was none),
// as Conpot's guardian_ast logs them. Bytes outside any command are not logged by Conpot.
func (protocol) ConpotEvents(e *protocols.Event) []protocols.ConpotEvent {
	if e.Type != evCommand {
		return nil
	}
	cmd := ""
	for _, f := range e.Fields {
		if f.Key == "command" {
			cmd, _ = f.Value.(string)
		}
	}
	var resp any
	if e.Response != nil {
		resp = strings.ToValidUTF8(string(e.Response), "?")
	}
	return []protocols.ConpotEvent{{DataType: Name, EventType: "AST " + cmd, Request: PyBytes(e.Request), Response: resp}}
}
