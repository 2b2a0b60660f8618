package http

import (
	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
)

// Name is the protocol's template directory name.
const Name = "http"

func init() { protocols.Register(protocol{}) }

// protocol is the registered HTTP implementation.
type protocol struct{}

// Name implements protocols.Protocol.
func (protocol) Name() string { return Name }

// Configure parses the <http> section and loads every page it names. HTTP takes no
// sensor-wide options.
func (protocol) Configure(sec *profiles.Section, _ any) (protocols.Service, error) {
	cfg, err := parseConfig(sec)
	if err != nil {
		return nil, err
	}
	if err := loadContent(sec, cfg); err != nil {
		return nil, err
	}
	s := &service{cfg: cfg, headerTimeout: headerTimeout, bodyTimeout: bodyTimeout, maxRequests: maxRequests}
	for _, n := range allNodes(cfg) {
		if n.proxy != nil {
			if s.proxyClient == nil {
				s.proxyClient = newProxyClient()
			}
			n.proxy.client = s.proxyClient
		}
		if len(n.chunks) > 0 && cfg.version == "HTTP/1.0" {
			sec.Warnf(nodeAt(sec, n), "chunks need protocol_version HTTP/1.1; sent with Content-Length")
		}
	}
	return s, nil
}
