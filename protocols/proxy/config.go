package proxy

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
)

// proxyConf is one <proxy> element with the sensor's options applied.
type proxyConf struct {
	Name    string
	ID      string // Conpot's id: the name lower-cased, spaces as underscores
	Port    int    // the port it listens on (the element's port attribute)
	Backend backend
	// BackendTLS is whether the backend connection uses TLS.
	BackendTLS bool
	// Confirmed is whether the sensor's configuration names the backend (a backends entry,
	// or template_backends = true); the proxy never connects to one that is not.
	Confirmed bool
	// DecoderName is the <decoder> class path; Decoder is nil when it is empty or unknown.
	DecoderName string
	Decoder     func() protocols.StreamDecoder
	// KeyFile and CertFile are the attributes; TLS is whether the proxy terminates TLS.
	KeyFile, CertFile string
	TLS               bool
	// Where names the element, "file:line", for log lines.
	Where string
	node  *profiles.Node
}

// maxProxies bounds the <proxy> elements of one section.
const maxProxies = 256

// parseConfig reads <proxies> and applies the sensor's backend overrides. Proxies turned
// off by an override are left out.
func parseConfig(sec *profiles.Section, o *Options) ([]*proxyConf, error) {
	root := sec.Root
	if root.Name != "proxies" {
		return nil, root.Errorf("root element must be <proxies>")
	}
	sec.CheckChildren(root, "proxy")
	var out []*proxyConf
	names := map[string]*profiles.Node{}
	ports := map[int]*profiles.Node{}
	used := map[string]bool{}
	elems := root.ChildrenNamed("proxy")
	if len(elems) > maxProxies {
		return nil, elems[maxProxies].Errorf("more than %d proxies", maxProxies)
	}
	for _, n := range elems {
		p, err := parseProxy(sec, n)
		if err != nil {
			return nil, err
		}
		if prev, dup := names[p.ID]; dup {
			return nil, n.Errorf("proxy %q has the name of the proxy at line %d", p.Name, prev.Line)
		}
		names[p.ID] = n
		if prev, dup := ports[p.Port]; dup {
			return nil, n.Errorf("port %d is taken by the proxy at line %d", p.Port, prev.Line)
		}
		ports[p.Port] = n
		if v, key, ok := lookupName(o.Backends, p.Name); ok {
			used[key] = true
			b, err := parseBackendOverride(v)
			if err != nil {
				return nil, fmt.Errorf("[protocols.proxy] backends.%q: %w", key, err)
			}
			if b == nil {
				continue // turned off by the operator
			}
			p.Backend, p.Confirmed = *b, true
		} else if p.Backend.Host == "" {
			return nil, n.Errorf("proxy %q has no <proxy_host> and [protocols.proxy] backends names none for it", p.Name)
		} else if o.TemplateBackends {
			p.Confirmed = true
		} else {
			sec.Warnf(n, "proxy %q: the sensor connects only to backends its configuration names, and %s is the template's: "+
				"name it in [protocols.proxy] backends (or set template_backends = true); until then its clients are logged and closed",
				p.Name, p.Backend)
		}
		if v, key, ok := lookupName(o.BackendTLS, p.Name); ok {
			used["tls:"+key] = true
			p.BackendTLS = v
		}
		out = append(out, p)
	}
	for _, k := range sortedKeys(o.Backends) {
		if !used[k] {
			sec.Warnf(root, "[protocols.proxy] backends names %q, which no <proxy> of this template is called", k)
		}
	}
	for _, k := range sortedKeys(o.BackendTLS) {
		if !used["tls:"+k] {
			sec.Warnf(root, "[protocols.proxy] backend_tls names %q, which no <proxy> of this template is called", k)
		}
	}
	return out, nil
}

// parseProxy reads one <proxy name host port [keyfile certfile]> with its <proxy_host>,
// <proxy_port> and <decoder>.
func parseProxy(sec *profiles.Section, n *profiles.Node) (*proxyConf, error) {
	name, _ := n.Attr("name")
	name = strings.TrimSpace(name)
	if name == "" {
		return nil, n.Errorf("a proxy needs a name attribute")
	}
	if len(name) > 128 {
		return nil, n.Errorf("proxy name longer than 128 characters")
	}
	p := &proxyConf{Name: name, ID: proxyID(name), Where: fmt.Sprintf("%s:%d", n.File, n.Line), node: n}
	ps, ok := n.Attr("port")
	port, err := strconv.Atoi(strings.TrimSpace(ps))
	if !ok || err != nil || port < 1 || port > 65535 {
		return nil, n.Errorf("proxy %q: port %q is not a port number", name, ps)
	}
	p.Port = port
	switch h, _ := n.Attr("host"); strings.TrimSpace(h) {
	case "", "0.0.0.0", "::", "[::]":
	default:
		sec.Warnf(n, "host %q ignored: icsnare answers on the addresses of [[hosts]]", h)
	}
	for _, a := range n.Attrs {
		switch a.Name.Local {
		case "name", "host", "port", "keyfile", "certfile":
		default:
			sec.Warnf(n, "unknown attribute %s, ignored", a.Name.Local)
		}
	}
	p.KeyFile, _ = n.Attr("keyfile")
	p.CertFile, _ = n.Attr("certfile")
	p.KeyFile, p.CertFile = strings.TrimSpace(p.KeyFile), strings.TrimSpace(p.CertFile)
	switch {
	case p.KeyFile != "" && p.CertFile != "":
		p.TLS, p.BackendTLS = true, true
	case p.KeyFile != "" || p.CertFile != "":
		sec.Warnf(n, "proxy %q names only one of keyfile and certfile; it serves plain TCP (Conpot needs both for TLS)", name)
	}
	sec.CheckChildren(n, "proxy_host", "proxy_port", "decoder")
	host, hasHost := n.ChildText("proxy_host")
	portText, hasPort := n.ChildText("proxy_port")
	if hasHost || hasPort {
		if !hasHost || !hasPort {
			return nil, n.Errorf("proxy %q needs both <proxy_host> and <proxy_port>", name)
		}
		b, err := newBackend(host, portText)
		if err != nil {
			return nil, n.Child("proxy_host").Errorf("proxy %q: %v", name, err)
		}
		p.Backend = b
	}
	if d := n.Child("decoder"); d != nil && d.TextTrim() != "" {
		p.DecoderName = d.TextTrim()
		if f, ok := lookupDecoder(p.DecoderName); ok {
			p.Decoder = f
		} else {
			sec.Warnf(d, "decoder %q is not in this icsnare (it has %s); proxy %q logs raw chunks only",
				p.DecoderName, strings.Join(protocols.DecoderNames(), ", "), name)
		}
	}
	return p, nil
}
