// Package ipmi is an IPMI v2.0 BMC on 623/udp: RMCP presence ping, IPMI v1.5 session-less
// framing, RMCP+ sessions (Open Session, RAKP 1–4 with HMAC-SHA1 and HMAC-SHA256,
// HMAC-SHA1-96 and HMAC-SHA256-128 integrity, AES-CBC-128 confidentiality) held per UDP
// flow, and the commands ipmitool and scanners use, configured from Conpot's ipmi.xml.
// See README.md.
package ipmi

import (
	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
)

// Name is the protocol's name and template directory.
const Name = "ipmi"

// Port is the standard RMCP port.
const Port = 623

func init() { protocols.Register(protocol{}) }

// protocol is the registered IPMI implementation.
type protocol struct{}

// Name implements protocols.Protocol.
func (protocol) Name() string { return Name }

// Configure implements protocols.Protocol: it parses <ipmi> (device_info, user_list and
// icsnare's cipher_suites, auth_types, session_timeout, max_sessions, mac_oui, rate_limit).
// IPMI takes no sensor-wide options.
func (protocol) Configure(sec *profiles.Section, _ any) (protocols.Service, error) {
	c, err := parseConfig(sec)
	if err != nil {
		return nil, err
	}
	return newService(c), nil
}
