package proxy

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestTOMLTemplate: Conpot's proxy template in its TOML form (template.toml and
// proxy.toml, one [[proxies.proxy]] table per proxy) configures the same proxies as the
// XML form, warnings included, with positions in proxy.toml.
func TestTOMLTemplate(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "template.toml"), []byte(`[core.template]
unit = "Proxy"
vendor = "None"
description = "Sample template that demonstrates the proxy feature."
creator = "the conpot team"

[core.databus.key_value_mappings]
`), 0o644)
	var b []byte
	b = append(b, "[proxies]\nenabled = true\n"...)
	for _, p := range []struct{ name, port, host, hostPort, decoder, tls string }{
		{"Kamstrup Channel A", "1025", "192.168.1.176", "1025", decoder382, ""},
		{"Kamstrup Channel B", "1026", "192.168.0.10", "1026", decoder382, ""},
		{"Kamstrup telnet", "50100", "192.168.0.10", "50100", AsciiDecoderName, ""},
		{"SSL proxy", "1234", "192.168.1.123", "443", "", "keyfile = \"ssl.key\"\ncertfile = \"ssl.crt\"\n"},
	} {
		b = fmt.Appendf(b, "\n[[proxies.proxy]]\nname = %q\nhost = \"0.0.0.0\"\nport = %s\nproxy_host = %q\nproxy_port = %s\ndecoder = %q\n%s",
			p.name, p.port, p.host, p.hostPort, p.decoder, p.tls)
	}
	os.WriteFile(filepath.Join(dir, "proxy.toml"), b, 0o644)
	opts := DefaultOptions()
	opts.Backends = map[string]string{"Kamstrup Channel A": "127.33.0.1:1", "Kamstrup Channel B": "127.33.0.1:2",
		"Kamstrup telnet": "127.33.0.1:3", "SSL proxy": "127.33.0.1:4"}
	fromTOML, prof, tw := configure(t, dir, opts)
	fromXML, _, xw := configure(t, conpotProxyTemplate, opts)
	if !prof.TOML || len(fromTOML.proxies) != 4 {
		t.Fatalf("TOML %v, %d proxies", prof.TOML, len(fromTOML.proxies))
	}
	for i, p := range fromTOML.proxies {
		x := fromXML.proxies[i]
		if p.Name != x.Name || p.Port != x.Port || p.Backend != x.Backend || p.DecoderName != x.DecoderName ||
			p.TLS != x.TLS || p.BackendTLS != x.BackendTLS || (p.Decoder == nil) != (x.Decoder == nil) {
			t.Errorf("TOML %+v\nXML  %+v", p.proxyConf, x.proxyConf)
		}
	}
	if len(tw) != len(xw) || !hasWarning(tw, "proxy.toml:") {
		t.Errorf("TOML warnings %q\nXML warnings %q", tw, xw)
	}
}
