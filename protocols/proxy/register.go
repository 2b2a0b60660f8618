// Package proxy serves Conpot's <proxy> sections (proxy/proxy.xml): each proxy listens on
// its port on every host of the profile, optionally terminates TLS with the template's key
// pair or a certificate derived from the host's seed, and relays to the backend the
// sensor's [protocols.proxy] table names (or, when it allows, the template), and nowhere else. Every chunk is
// an event, with the text of the proxy's decoder (Conpot's AsciiDecoder here, the Kamstrup
// Decoder382 from protocols/kamstrup_meter). See README.md.
package proxy

import (
	"fmt"
	"strings"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
)

// Name is the protocol's name and Conpot's template directory.
const Name = "proxy"

func init() { protocols.Register(protocol{}) }

// protocol is the registered proxy.
type protocol struct{}

// Name implements protocols.Protocol.
func (protocol) Name() string { return Name }

// NewOptions implements protocols.Configurable.
func (protocol) NewOptions() any { return DefaultOptions() }

// Flags implements protocols.Configurable: the options are set in the configuration file.
func (protocol) Flags() []protocols.Flag { return nil }

// Configure implements protocols.Protocol. opts is the sensor's *Options, or nil for the
// defaults.
func (protocol) Configure(sec *profiles.Section, opts any) (protocols.Service, error) {
	o, _ := opts.(*Options)
	if o == nil {
		o = DefaultOptions()
	}
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("[protocols.proxy]: %w", err)
	}
	confs, err := parseConfig(sec, o)
	if err != nil {
		return nil, err
	}
	s := &service{opts: *o, byPort: map[int]*proxy{}, certs: newCertCache(o.CertCache, certOrg(sec.Profile), o.GeneratedKey)}
	for _, c := range confs {
		p := &proxy{proxyConf: c, sem: make(chan struct{}, o.MaxBackendConnections)}
		if c.TLS {
			cert, err := loadKeyPair(sec, c.KeyFile, c.CertFile)
			switch {
			case err == nil:
				p.cert = cert
			case isNotExist(err):
				sec.Warnf(c.node, "proxy %q: %v; serving a self-signed certificate made for each host from its seed instead", c.Name, err)
			default:
				return nil, c.node.Errorf("proxy %q: %v", c.Name, err)
			}
		}
		s.proxies = append(s.proxies, p)
		s.byPort[c.Port] = p
	}
	return s, nil
}

// certOrg is the organisation generated certificates name: the template's vendor, unless
// it is a placeholder.
func certOrg(p *profiles.Profile) string {
	v := strings.TrimSpace(p.Meta.Vendor)
	switch strings.ToLower(v) {
	case "", "none", "unknown", "n/a":
		return ""
	}
	return clip(v, 64)
}
