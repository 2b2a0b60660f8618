package proxy

import (
	"bytes"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols"
	_ "github.com/icsnare/icsnare/protocols/kamstrup_meter" // Decoder382
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// conpotProxyTemplate is the regenerated copy of Conpot's proxy template.
const conpotProxyTemplate = "../../testdata/conpot/proxy"

// decoder382 is the class path of Conpot's Kamstrup decoder, which protocols/kamstrup_meter
// registers (imported by this test).
const decoder382 = "conpot.protocols.kamstrup_meter.decoder_382.Decoder382"

// Kamstrup frames from Conpot's tests (conpot.md §1.12): GetRegister 1033 and the reply.
var (
	kamRequest = mustHex("803f1001040918 6d0d")
	kamReply   = mustHex("403f1004091604430000 00004a410d")
)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

// TestConpotTemplate loads Conpot's proxy template unchanged, points its four backends at
// this test's servers the way an operator does ([protocols.proxy] backends), and relays
// through each: Kamstrup meter frames on channels A and B with Decoder382's text, the
// telnet console with AsciiDecoder text, and the SSL proxy terminating TLS for curl and openssl with a
// certificate made for the host, re-encrypting to an HTTPS backend.
func TestConpotTemplate(t *testing.T) {
	curl := protocoltest.NeedTool(t, "curl")
	openssl := protocoltest.NeedTool(t, "openssl")
	meter := startBackend(t, func(c net.Conn, b *testBackend) {
		buf := make([]byte, 256)
		var frame []byte
		for {
			n, err := c.Read(buf)
			b.record(buf[:n])
			frame = append(frame, buf[:n]...)
			if i := bytes.IndexByte(frame, 0x0d); i >= 0 {
				frame = frame[i+1:]
				c.Write(kamReply)
			}
			if err != nil {
				return
			}
		}
	})
	const welcome = "\r\nWelcome...\r\nConnected to [00:13:EA:00:00:00]\r\n"
	console := startBackend(t, func(c net.Conn, b *testBackend) {
		c.Write([]byte(welcome))
		echoBackend("\r\n? ")(c, b)
	})
	https := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "device page %s", r.URL.Path)
	}))
	ln, err := net.Listen("tcp", netip.AddrPortFrom(testAddr(), 0).String())
	if err != nil {
		t.Fatal(err)
	}
	https.Listener = ln
	https.StartTLS()
	defer https.Close()

	opts := DefaultOptions()
	opts.Backends = map[string]string{
		"Kamstrup Channel A": meter.Addr.String(),
		"kamstrup_channel_b": meter.Addr.String(), // Conpot's id works too
		"Kamstrup telnet":    console.Addr.String(),
		"SSL proxy":          ln.Addr().String(),
	}
	svc, prof, warnings := configure(t, conpotProxyTemplate, opts)
	if prof.Meta.Unit != "Proxy" || len(svc.proxies) != 4 {
		t.Fatalf("template: unit %q, %d proxies", prof.Meta.Unit, len(svc.proxies))
	}
	var ports []int
	for _, ep := range svc.Endpoints() {
		ports = append(ports, ep.Port)
	}
	if fmt.Sprint(ports) != "[1025 1026 50100 1234]" {
		t.Fatalf("endpoints %v", ports)
	}
	// The shipped template has no ssl/ files: a warning with file and line, then a
	// generated certificate (the only warning: every backend is named, every decoder known).
	if !hasWarning(warnings, "proxy/proxy.xml:17: <proxy>: proxy \"SSL proxy\": \"ssl.key\" not found") {
		t.Errorf("no missing-key warning: %q", warnings)
	}
	if len(warnings) != 1 {
		t.Errorf("warnings %q", warnings)
	}
	h := protocols.NewHost(testAddr(), prof, 0x5eed, time.Now())
	srv := serve(t, svc, h)

	// Kamstrup channels A and B: the meter gets the request, the client the reply.
	for _, port := range []int{1025, 1026} {
		c := srv.dial(t, port)
		c.Write(kamRequest)
		got := make([]byte, len(kamReply))
		if _, err := ioReadFull(c, got); err != nil || !bytes.Equal(got, kamReply) {
			t.Fatalf("port %d: reply %x, %v", port, got, err)
		}
		c.Close()
	}
	eventually(t, "meter saw both requests", func() bool { return meter.Received() == string(kamRequest)+string(kamRequest) })
	// Decoder382 (protocols/kamstrup_meter) turns both directions into text on both channels.
	eventually(t, "decoded meter replies", func() bool { return len(srv.events.OfType("proxy.response")) >= 2 })
	for _, typ := range []string{"proxy.request", "proxy.response"} {
		seen := map[string]bool{}
		for _, e := range srv.events.OfType(typ) {
			if d, _ := field(e, "decoded").(string); strings.Contains(d, "1033") && field(e, "decoder") == decoder382 {
				seen[field(e, "proxy").(string)] = true
				t.Logf("%s %s: %q", typ, field(e, "proxy"), d)
			}
		}
		if !seen["Kamstrup Channel A"] || !seen["Kamstrup Channel B"] {
			t.Errorf("%s: no decoded register 1033 on both channels: %v", typ, seen)
		}
	}

	// The telnet console: banner and answers relayed, decoded as text.
	c := srv.dial(t, 50100)
	banner := make([]byte, len(welcome))
	if _, err := ioReadFull(c, banner); err != nil || !strings.Contains(string(banner), "Connected to [00:13:EA:00:00:00]") {
		t.Fatalf("banner %q %v", banner, err)
	}
	c.Write([]byte("H\r\n\x80abc\r\n"))
	answer := make([]byte, 4+len("H\r\n\x80abc\r\n"))
	if _, err := ioReadFull(c, answer); err != nil || string(answer) != "\r\n? H\r\n\x80abc\r\n" {
		t.Fatalf("answer %q %v", answer, err)
	}
	c.CloseWrite()
	if rest := readAll(c); rest != "" {
		t.Fatalf("after half-close: %q", rest)
	}
	var sawText bool
	for _, e := range srv.events.OfType("proxy.request") {
		if field(e, "proxy") == "Kamstrup telnet" && field(e, "decoded") == "H\r\n\ufffdabc\r\n" && string(e.Request) == "H\r\n\x80abc\r\n" {
			sawText = true
		}
	}
	if !sawText {
		t.Errorf("no decoded console request in %v", srv.events.OfType("proxy.request"))
	}

	// The SSL proxy: curl over TLS to the proxy, which speaks TLS to the HTTPS backend.
	ssl := srv.addrs[1234]
	out, err := protocoltest.Run(t, 30*time.Second, curl, "-sS", "-k", "--max-time", "20", fmt.Sprintf("https://%s/status.htm", ssl))
	if err != nil || out != "device page /status.htm" {
		t.Fatalf("curl through the SSL proxy: %v %q", err, out)
	}
	tlsEv := srv.waitEvent(t, "tls")
	if field(tlsEv, "certificate") != "generated" || field(tlsEv, "tls_version") == nil {
		t.Errorf("tls event %+v", tlsEv.Fields)
	}
	// openssl sees the host's own certificate: its address as subject CN.
	cmd := exec.Command(openssl, "s_client", "-connect", ssl.String(), "-servername", "meter.local")
	cmd.Stdin = strings.NewReader("")
	b, _ := cmd.CombinedOutput()
	t.Logf("$ %s\n%s", cmd, b)
	if !strings.Contains(string(b), "subject=CN = "+h.Addr.String()) || !strings.Contains(string(b), "BEGIN CERTIFICATE") {
		t.Fatalf("openssl s_client does not show the host certificate")
	}
	cert, err := svc.certs.get(h.Addr, h.Seed, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "Server certificate\n-----BEGIN CERTIFICATE-----") || cert.Leaf.Subject.CommonName != h.Addr.String() {
		t.Errorf("certificate subject %v", cert.Leaf.Subject)
	}
	eventually(t, "both TLS sessions ended", func() bool { return len(srv.events.OfType("proxy.tls")) >= 2 && svc.running.Load() == 0 })
	var sni bool
	for _, e := range srv.events.OfType("proxy.tls") {
		sni = sni || field(e, "server_name") == "meter.local"
	}
	if !sni {
		t.Errorf("no tls event with openssl's server name")
	}
	_ = tls.VersionTLS12
}

func ioReadFull(c net.Conn, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := c.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
