package proxy

import (
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration written as a string in the configuration ("5s").
type Duration struct{ time.Duration }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	if v <= 0 {
		return fmt.Errorf("duration %s is not positive", b)
	}
	d.Duration = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Options is the [protocols.proxy] table of the sensor configuration.
type Options struct {
	// Backends replaces the backend of a proxy, named as in the template (name="…") or by
	// Conpot's id of it (lower case, spaces as underscores), with "host:port", or turns the
	// proxy off with "off". A proxy not named keeps the template's proxy_host:proxy_port.
	Backends map[string]string `toml:"backends"`
	// TemplateBackends lets proxies relay to the backend their template names
	// (<proxy_host>:<proxy_port>) without a Backends entry, as Conpot does. Off by default:
	// a template, Conpot's sample among them with its made-up 192.168 addresses, does not
	// make the sensor connect anywhere on its own.
	TemplateBackends bool `toml:"template_backends"`
	// BackendTLS says whether the connection to a proxy's backend uses TLS. By default it
	// does exactly when the proxy terminates TLS (keyfile and certfile set), as Conpot does.
	BackendTLS map[string]bool `toml:"backend_tls"`
	// DialTimeout bounds connecting to a backend, TLS handshake included.
	DialTimeout Duration `toml:"dial_timeout"`
	// HandshakeTimeout bounds a client's TLS handshake on a proxy that terminates TLS.
	HandshakeTimeout Duration `toml:"handshake_timeout"`
	// IdleTimeout closes a relayed connection when neither side sent anything for this long.
	IdleTimeout Duration `toml:"idle_timeout"`
	// MaxDuration closes a relayed connection this long after it was accepted.
	MaxDuration Duration `toml:"max_duration"`
	// MaxBytesIn and MaxBytesOut bound the bytes relayed per connection towards the backend
	// and back to the client; past them the connection is closed.
	MaxBytesIn  int64 `toml:"max_bytes_in"`
	MaxBytesOut int64 `toml:"max_bytes_out"`
	// MaxChunkEvents bounds the request and response events of one connection; later
	// chunks are relayed and counted in the proxy.end event only.
	MaxChunkEvents int `toml:"max_chunk_events"`
	// MaxBackendConnections bounds the connections open at once to one proxy's backend
	// from all hosts of a profile; a client past it is closed with a proxy.backend_error.
	MaxBackendConnections int `toml:"max_backend_connections"`
	// CertCache bounds the per-host certificates generated for proxies whose template
	// names no key and certificate file.
	CertCache int `toml:"cert_cache"`
	// GeneratedKey is the key type of those certificates: KeyRSA2048 (what embedded web
	// servers make for themselves; 0.1-0.5 s of CPU per host) or KeyP256 (microseconds, for
	// TLS proxies on very large prefixes).
	GeneratedKey string `toml:"generated_key"`
}

// Key types of generated certificates.
const (
	KeyRSA2048 = "rsa2048"
	KeyP256    = "p256"
)

// Off is the Backends value that turns a proxy off.
const Off = "off"

// DefaultOptions returns the options of a sensor whose configuration has no
// [protocols.proxy] table.
func DefaultOptions() *Options {
	return &Options{
		DialTimeout:           Duration{5 * time.Second},
		HandshakeTimeout:      Duration{10 * time.Second},
		IdleTimeout:           Duration{60 * time.Second},
		MaxDuration:           Duration{10 * time.Minute},
		MaxBytesIn:            1 << 20,
		MaxBytesOut:           8 << 20,
		MaxChunkEvents:        64,
		MaxBackendConnections: 64,
		CertCache:             1024,
		GeneratedKey:          KeyRSA2048,
	}
}

// Validate implements protocols.Validator.
func (o *Options) Validate() error {
	for _, name := range sortedKeys(o.Backends) {
		if _, err := parseBackendOverride(o.Backends[name]); err != nil {
			return fmt.Errorf("backends.%q: %w", name, err)
		}
	}
	switch {
	case o.MaxBytesIn < 1:
		return fmt.Errorf("max_bytes_in %d: must be at least 1", o.MaxBytesIn)
	case o.MaxBytesOut < 1:
		return fmt.Errorf("max_bytes_out %d: must be at least 1", o.MaxBytesOut)
	case o.MaxChunkEvents < 0 || o.MaxChunkEvents > 1<<20:
		return fmt.Errorf("max_chunk_events %d: out of range 0..%d", o.MaxChunkEvents, 1<<20)
	case o.MaxBackendConnections < 1 || o.MaxBackendConnections > 1<<20:
		return fmt.Errorf("max_backend_connections %d: out of range 1..%d", o.MaxBackendConnections, 1<<20)
	case o.CertCache < 1 || o.CertCache > 1<<20:
		return fmt.Errorf("cert_cache %d: out of range 1..%d", o.CertCache, 1<<20)
	case o.GeneratedKey != KeyRSA2048 && o.GeneratedKey != KeyP256:
		return fmt.Errorf("generated_key %q: want %q or %q", o.GeneratedKey, KeyRSA2048, KeyP256)
	}
	return nil
}

// backend is where a proxy relays to.
type backend struct {
	Host string // an IP address or a DNS name
	Port int
}

func (b backend) String() string { return net.JoinHostPort(b.Host, strconv.Itoa(b.Port)) }

// parseBackendOverride parses a Backends value: "host:port", or Off (nil backend).
func parseBackendOverride(v string) (*backend, error) {
	if strings.EqualFold(strings.TrimSpace(v), Off) {
		return nil, nil
	}
	host, port, err := net.SplitHostPort(strings.TrimSpace(v))
	if err != nil {
		return nil, fmt.Errorf("%q is not host:port or %q: %w", v, Off, err)
	}
	b, err := newBackend(host, port)
	if err != nil {
		return nil, err
	}
	return &b, nil
}

// newBackend checks a backend address: a port, and a host that names one machine (not
// the unspecified address, which would connect to this one, nor a multicast or
// broadcast address).
func newBackend(host, port string) (backend, error) {
	p, err := strconv.Atoi(strings.TrimSpace(port))
	if err != nil || p < 1 || p > 65535 {
		return backend{}, fmt.Errorf("port %q is not a port number", port)
	}
	host = strings.TrimSpace(host)
	if host == "" {
		return backend{}, fmt.Errorf("no backend host")
	}
	if a, err := netip.ParseAddr(host); err == nil {
		a = a.Unmap()
		if a.IsUnspecified() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
			return backend{}, fmt.Errorf("backend host %s is not the address of one machine", a)
		}
		if a.Zone() != "" {
			return backend{}, fmt.Errorf("backend host %s: zones are not supported", a)
		}
		return backend{Host: a.String(), Port: p}, nil
	}
	if len(host) > 253 || strings.ContainsAny(host, " /\\@:") {
		return backend{}, fmt.Errorf("backend host %q is neither an IP address nor a DNS name", host)
	}
	return backend{Host: host, Port: p}, nil
}

// proxyID is the name Conpot logs a proxy's events under (its data_type).
func proxyID(name string) string { return strings.ReplaceAll(strings.ToLower(name), " ", "_") }

// lookupName finds the value m keeps for a proxy: under its name, its name in another
// case, or its Conpot id. The key that matched is returned for error messages.
func lookupName[V any](m map[string]V, name string) (V, string, bool) {
	if v, ok := m[name]; ok {
		return v, name, true
	}
	id := proxyID(name)
	for _, k := range sortedKeys(m) {
		if strings.EqualFold(k, name) || proxyID(k) == id {
			return m[k], k, true
		}
	}
	var zero V
	return zero, "", false
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
