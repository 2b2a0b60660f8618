package proxy

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/profiles"
)

func configureErr(t *testing.T, body string, opts *Options) ([]string, error) {
	t.Helper()
	dir := writeTemplate(t, body)
	p, err := profiles.LoadDir(dir)
	if err != nil {
		return nil, err
	}
	_, err = protocol{}.Configure(p.Sections[Name], opts)
	return p.Warnings(), err
}

// TestConfigErrors: what a template or the options get wrong is an error naming the file,
// line and element, or a warning where the proxy can still serve.
func TestConfigErrors(t *testing.T) {
	const ok = `<proxy name="A" port="1025"><proxy_host>192.0.2.1</proxy_host><proxy_port>1025</proxy_port></proxy>`
	wrap := func(s string) string { return "<proxies enabled=\"True\">\n" + s + "\n</proxies>" }
	cases := []struct {
		name, body string
		backends   map[string]string
		err, warn  string
	}{
		{"no name", wrap(`<proxy port="1"><proxy_host>192.0.2.1</proxy_host><proxy_port>1</proxy_port></proxy>`), nil,
			"proxy.xml:2: <proxy>: a proxy needs a name attribute", ""},
		{"bad port", wrap(`<proxy name="A" port="70000"/>`), nil, `proxy.xml:2: <proxy>: proxy "A": port "70000" is not a port number`, ""},
		{"same port", wrap(ok + "\n" + strings.Replace(ok, `"A"`, `"B"`, 1)), nil, "port 1025 is taken by the proxy at line 2", ""},
		{"same name", wrap(ok + "\n" + strings.Replace(ok, `1025"`, `1026"`, 1)), nil, `proxy "A" has the name of the proxy at line 2`, ""},
		{"no backend", wrap(`<proxy name="A" port="1"/>`), nil, `proxy "A" has no <proxy_host>`, ""},
		{"host only", wrap(`<proxy name="A" port="1"><proxy_host>h</proxy_host></proxy>`), nil, "needs both <proxy_host> and <proxy_port>", ""},
		{"unspecified", wrap(`<proxy name="A" port="1"><proxy_host>0.0.0.0</proxy_host><proxy_port>1</proxy_port></proxy>`), nil,
			"<proxy_host>: proxy \"A\": backend host 0.0.0.0 is not the address of one machine", ""},
		{"bad override", wrap(ok), map[string]string{"A": "nohostport"}, `backends."A": "nohostport" is not host:port`, ""},
		{"override to multicast", wrap(ok), map[string]string{"A": "224.0.0.1:5"}, "not the address of one machine", ""},
		{"wrong root", "<proxy enabled=\"True\"/>", nil, "root element must be <proxies>", ""},
		{"unknown element", wrap(strings.Replace(ok, "</proxy>", "<timeout>5</timeout></proxy>", 1)), nil, "",
			"proxy.xml:2: <timeout>: unknown element inside <proxy>, ignored"},
		{"unknown decoder", wrap(strings.Replace(ok, "</proxy>", "<decoder>my.Decoder</decoder></proxy>", 1)), nil, "",
			`proxy.xml:2: <decoder>: decoder "my.Decoder" is not in this icsnare`},
		{"one of key and cert", wrap(strings.Replace(ok, `port="1025">`, `port="1025" keyfile="a.key">`, 1)), nil, "",
			"names only one of keyfile and certfile"},
		{"override names nothing", wrap(ok), map[string]string{"Kamstrup Channel A": "127.0.0.1:1"}, "",
			`backends names "Kamstrup Channel A", which no <proxy> of this template is called`},
		{"host attribute", wrap(strings.Replace(ok, `port="1025"`, `host="10.1.1.1" port="1025"`, 1)), nil, "", `host "10.1.1.1" ignored`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			opts := DefaultOptions()
			opts.Backends = c.backends
			warnings, err := configureErr(t, c.body, opts)
			switch {
			case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
				t.Errorf("error %v, want %q", err, c.err)
			case c.err == "" && err != nil:
				t.Errorf("error %v", err)
			case c.warn != "" && !hasWarning(warnings, c.warn):
				t.Errorf("warnings %q, want %q", warnings, c.warn)
			}
		})
	}
}

// TestOptions: overrides by name, case or Conpot id; "off" removes a proxy; validation.
func TestOptions(t *testing.T) {
	opts := DefaultOptions()
	opts.Backends = map[string]string{"kamstrup channel a": "127.33.0.1:10", "kamstrup_telnet": "off", "SSL proxy": "[::1]:443"}
	opts.BackendTLS = map[string]bool{"ssl_proxy": false}
	svc, _, _ := configure(t, conpotProxyTemplate, opts)
	got := map[string]string{}
	for _, p := range svc.proxies {
		got[p.Name] = p.Backend.String()
		if p.Name == "SSL proxy" && (p.BackendTLS || !p.TLS) {
			t.Errorf("SSL proxy: tls %v backend tls %v", p.TLS, p.BackendTLS)
		}
	}
	want := map[string]string{"Kamstrup Channel A": "127.33.0.1:10", "Kamstrup Channel B": "192.168.0.10:1026", "SSL proxy": "[::1]:443"}
	if len(got) != len(want) {
		t.Fatalf("proxies %v", got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s → %s, want %s", k, got[k], v)
		}
	}
	for _, bad := range []func(*Options){
		func(o *Options) { o.MaxBytesIn = 0 },
		func(o *Options) { o.MaxBackendConnections = 0 },
		func(o *Options) { o.CertCache = -1 },
		func(o *Options) { o.Backends = map[string]string{"x": "host:0"} },
	} {
		o := DefaultOptions()
		bad(o)
		if o.Validate() == nil {
			t.Errorf("%+v validated", o)
		}
	}
	var d Duration
	if d.UnmarshalText([]byte("-1s")) == nil || d.UnmarshalText([]byte("2s")) != nil || d.Duration != 2*time.Second {
		t.Error("Duration")
	}
}

// TestTemplateKeyPair: a key pair in the template's ssl/ directory (where Conpot's default
// template keeps one) is served instead of a generated certificate, without a warning.
func TestTemplateKeyPair(t *testing.T) {
	dir := writeTemplate(t, `<proxies enabled="True">
  <proxy name="SSL proxy" port="1234" keyfile="ssl.key" certfile="ssl.crt"><proxy_host>192.0.2.1</proxy_host><proxy_port>443</proxy_port></proxy>
</proxies>`)
	other, err := hostCertificate(netip.MustParseAddr("192.0.2.77"), 99, "Moonshiners nest", KeyRSA2048)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(other.PrivateKey)
	os.MkdirAll(filepath.Join(dir, "ssl"), 0o755)
	os.WriteFile(filepath.Join(dir, "ssl", "ssl.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
	os.WriteFile(filepath.Join(dir, "ssl", "ssl.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: other.Certificate[0]}), 0o644)
	opts := DefaultOptions()
	opts.TemplateBackends = true
	svc, _, warnings := configure(t, dir, opts)
	if len(warnings) != 0 {
		t.Fatalf("warnings %q", warnings)
	}
	if c := svc.proxies[0].cert; c == nil || !bytes.Equal(c.Certificate[0], other.Certificate[0]) {
		t.Fatal("template key pair not loaded")
	}
	// Conpot's place, ssl/ beside the template directory, is found too.
	parent := t.TempDir()
	tdir := filepath.Join(parent, "proxy_t")
	os.Rename(dir, tdir)
	os.Rename(filepath.Join(tdir, "ssl"), filepath.Join(parent, "ssl"))
	svc, _, warnings = configure(t, tdir, opts)
	if len(warnings) != 0 || svc.proxies[0].cert == nil {
		t.Fatalf("beside the template: warnings %q", warnings)
	}
	// A broken pair is an error naming the element.
	os.WriteFile(filepath.Join(parent, "ssl", "ssl.crt"), []byte("not PEM"), 0o644)
	p, _ := profiles.LoadDir(tdir)
	if _, err := (protocol{}).Configure(p.Sections[Name], opts); err == nil || !strings.Contains(err.Error(), "proxy.xml:2: <proxy>") {
		t.Fatalf("broken pair: %v", err)
	}
}

// TestHostCertificate: the generated certificate is the same on every run for a host,
// different between hosts, and looks like a device's own, with either key type.
func TestHostCertificate(t *testing.T) {
	a := netip.MustParseAddr("198.51.100.7")
	for _, kt := range []struct {
		key     string
		pub     x509.PublicKeyAlgorithm
		sig     x509.SignatureAlgorithm
		usageKE bool
	}{{KeyRSA2048, x509.RSA, x509.SHA256WithRSA, true}, {KeyP256, x509.ECDSA, x509.ECDSAWithSHA256, false}} {
		t.Run(kt.key, func(t *testing.T) {
			c1, err := hostCertificate(a, 42, "Kamstrup", kt.key)
			if err != nil {
				t.Fatal(err)
			}
			c2, _ := hostCertificate(a, 42, "Kamstrup", kt.key)
			c3, _ := hostCertificate(netip.MustParseAddr("198.51.100.8"), 43, "Kamstrup", kt.key)
			if !bytes.Equal(c1.Certificate[0], c2.Certificate[0]) {
				t.Error("same host, different certificates")
			}
			if bytes.Equal(c1.Certificate[0], c3.Certificate[0]) || c1.Leaf.SerialNumber.Cmp(c3.Leaf.SerialNumber) == 0 {
				t.Error("two hosts share a certificate or serial")
			}
			l := c1.Leaf
			if l.Subject.CommonName != "198.51.100.7" || len(l.Subject.Organization) != 1 || l.Subject.Organization[0] != "Kamstrup" ||
				l.PublicKeyAlgorithm != kt.pub || l.SignatureAlgorithm != kt.sig || len(l.IPAddresses) != 1 ||
				(l.KeyUsage&x509.KeyUsageKeyEncipherment != 0) != kt.usageKE {
				t.Errorf("certificate %+v %v %v", l.Subject, l.PublicKeyAlgorithm, l.SignatureAlgorithm)
			}
			if l.NotBefore.Year() < 2017 || l.NotBefore.After(time.Now()) || l.NotAfter.Sub(l.NotBefore) < 19*365*24*time.Hour {
				t.Errorf("validity %s – %s", l.NotBefore, l.NotAfter)
			}
			if err := l.CheckSignature(l.SignatureAlgorithm, l.RawTBSCertificate, l.Signature); err != nil {
				t.Errorf("self-signature: %v", err)
			}
			if _, err := tls.X509KeyPair(pemCert(c1), pemKey(t, c1)); err != nil {
				t.Errorf("key pair: %v", err)
			}
		})
	}
	// The cache gives the same certificate and bounds its size.
	cc := newCertCache(2, "", KeyP256)
	x, _ := cc.get(a, 1, nil)
	y, _ := cc.get(a, 1, nil)
	if x != y {
		t.Error("cache generated twice")
	}
	cc.get(netip.MustParseAddr("198.51.100.9"), 2, nil)
	cc.get(netip.MustParseAddr("198.51.100.10"), 3, nil)
	if cc.lru.Len() != 2 {
		t.Errorf("cache holds %d", cc.lru.Len())
	}
	if o := DefaultOptions(); o.GeneratedKey != KeyRSA2048 || func() bool { o.GeneratedKey = "dsa"; return o.Validate() == nil }() {
		t.Error("generated_key default or validation")
	}
}

func pemCert(c *tls.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]})
}

func pemKey(t *testing.T, c *tls.Certificate) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}
