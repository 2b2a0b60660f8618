package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols"
)

// TestConpotProxyExchanges is Conpot's test_proxy.py: an echo server behind a proxy gets
// "Hiya, this is a test" and the client gets it back, with and without TLS (the template's
// key pair on both sides) and with and without AsciiDecoder.
func TestConpotProxyExchanges(t *testing.T) {
	pair, err := hostCertificate(netip.MustParseAddr("127.0.0.1"), 2014, "Moonshiners nest", KeyRSA2048)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name         string
		tls, decoder bool
	}{{"plain", false, false}, {"plain ascii", false, true}, {"tls", true, false}, {"tls ascii", true, true}} {
		t.Run(c.name, func(t *testing.T) {
			echo := func(conn net.Conn, b *testBackend) { echoBackend("")(conn, b) }
			if c.tls {
				echo = func(conn net.Conn, b *testBackend) {
					tc := tls.Server(conn, &tls.Config{Certificates: []tls.Certificate{*pair}})
					echoBackend("")(tc, b)
				}
			}
			back := startBackend(t, echo)
			attrs, decoder := "", ""
			if c.tls {
				attrs = ` keyfile="ssl.key" certfile="ssl.crt"`
			}
			if c.decoder {
				decoder = AsciiDecoderName
			}
			dir := writeTemplate(t, `<proxies enabled="True">
  <proxy name="Echo Proxy" host="127.0.0.1" port="1025"`+attrs+`>
    <proxy_host>`+back.Addr.Addr().String()+`</proxy_host><proxy_port>`+itoa(int(back.Addr.Port()))+`</proxy_port>
    <decoder>`+decoder+`</decoder>
  </proxy>
</proxies>`)
			os.MkdirAll(filepath.Join(dir, "ssl"), 0o755)
			der, _ := x509.MarshalPKCS8PrivateKey(pair.PrivateKey)
			os.WriteFile(filepath.Join(dir, "ssl", "ssl.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
			os.WriteFile(filepath.Join(dir, "ssl", "ssl.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: pair.Certificate[0]}), 0o644)
			opts := DefaultOptions()
			opts.TemplateBackends = true // Conpot relays to the template's backend
			svc, prof, warnings := configure(t, dir, opts)
			for _, w := range warnings {
				if !strings.Contains(w, `host "127.0.0.1" ignored`) {
					t.Fatalf("warning %q", w)
				}
			}
			srv := serve(t, svc, protocols.NewHost(testAddr(), prof, 3, time.Now()))
			var conn net.Conn = srv.dial(t, 1025)
			if c.tls {
				tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true})
				if err := tc.Handshake(); err != nil {
					t.Fatal(err)
				}
				if got := tc.ConnectionState().PeerCertificates[0].Subject.Organization; len(got) != 1 || got[0] != "Moonshiners nest" {
					t.Fatalf("served certificate of %v", got)
				}
				conn = tc
			}
			const msg = "Hiya, this is a test"
			conn.Write([]byte(msg))
			got := make([]byte, len(msg))
			if _, err := ioReadFull(conn, got); err != nil || string(got) != msg {
				t.Fatalf("echo %q %v", got, err)
			}
			conn.Close()
			srv.waitEvent(t, "end")
			req := srv.events.OfType("proxy.request")
			if len(req) != 1 || string(req[0].Request) != msg || (field(req[0], "decoded") == msg) != c.decoder {
				t.Errorf("request events %+v", req)
			}
			if c.decoder {
				if docs := (protocol{}).ConpotEvents(req[0]); len(docs) != 2 || docs[1].DataType != "echo_proxy" || docs[1].Request != "b'"+msg+"'" {
					t.Errorf("conpot documents %+v", docs)
				}
			}
		})
	}
}

// TestBackendByName: a backend named by DNS name is resolved by the sensor and each of its
// addresses tried in turn (localhost may answer ::1 first, where nothing listens).
func TestBackendByName(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("meter"))
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	svc, srv := oneProxy(t, "localhost:"+itoa(port), "", nil)
	if got := readAll(srv.dial(t, 1025)); got != "meter" {
		t.Fatalf("got %q", got)
	}
	e := srv.waitEvent(t, "backend_connect")
	if field(e, "backend") != "localhost:"+itoa(port) || field(e, "backend_addr") != "127.0.0.1:"+itoa(port) {
		t.Errorf("backend_connect %+v", e.Fields)
	}
	eventually(t, "relay done", func() bool { return svc.running.Load() == 0 })
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestUnconfirmedBackend: a backend that only the template names is not connected to:
// the listener logs the client's bytes and closes in order, with a warning at load time.
func TestUnconfirmedBackend(t *testing.T) {
	back := startBackend(t, echoBackend(""))
	dir := writeTemplate(t, `<proxies enabled="True">
  <proxy name="Meter" port="1025"><proxy_host>`+back.Addr.Addr().String()+`</proxy_host><proxy_port>`+itoa(int(back.Addr.Port()))+`</proxy_port></proxy>
</proxies>`)
	svc, prof, warnings := configure(t, dir, DefaultOptions())
	if !hasWarning(warnings, "proxy.xml:2: <proxy>: proxy \"Meter\": the sensor connects only to backends its configuration names") {
		t.Fatalf("warnings %q", warnings)
	}
	var dialed atomic.Int64
	svc.dialed = func(netip.AddrPort) { dialed.Add(1) }
	srv := serve(t, svc, protocols.NewHost(testAddr(), prof, 5, time.Now()))
	c := srv.dial(t, 1025)
	c.Write([]byte("\x80\x3f\x10\x01\x04\x09\x18\x6d\x0d"))
	if got := readAll(c); got != "" {
		t.Fatalf("got %q", got)
	}
	c.Close()
	e := srv.waitEvent(t, "backend_error")
	if field(e, "stage") != "unconfirmed" || len(e.Request) != 9 {
		t.Errorf("backend_error %+v %x", e.Fields, e.Request)
	}
	if dialed.Load() != 0 || back.accepted.Load() != 0 {
		t.Errorf("connected to the template's backend")
	}
}
