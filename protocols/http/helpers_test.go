package http

import (
	"bytes"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// start serves the embedded default profile on a loopback port.
func start(t testing.TB) (*protocoltest.Server, *service) {
	t.Helper()
	return startProfile(t, protocoltest.Profile(t, protocoltest.Station), "127.0.0.1:0")
}

// startProfile serves p on addr; tweak, if given, adjusts the service before it serves.
func startProfile(t testing.TB, p *profiles.Profile, addr string, tweak ...func(*service)) (*protocoltest.Server, *service) {
	t.Helper()
	svc := protocoltest.Configure(t, protocol{}, p).(*service)
	for _, f := range tweak {
		f(svc)
	}
	h := protocoltest.Host(p, netip.MustParseAddr("192.0.2.10"), 42)
	return protocoltest.ServeTCP(t, Name, svc, h, addr), svc
}

// testProfile writes a template directory with the given http.xml and files (relative to
// the http directory) and loads it.
func testProfile(t testing.TB, httpXML string, files map[string]string) *profiles.Profile {
	t.Helper()
	dir := t.TempDir()
	write := func(rel, content string) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("template.xml", `<core><template><entity name="unit">T</entity></template><databus><key_value_mappings>
<key name="sysName"><value type="value">"cp-test"</value></key>
<key name="sysLocation"><value type="value">"Hall 1"</value></key>
<key name="Uptime"><value type="function">conpot.emulators.misc.uptime.Uptime</value></key>
</key_value_mappings></databus></core>`)
	write("http/http.xml", httpXML)
	for rel, c := range files {
		write(filepath.Join("http", rel), c)
	}
	p, err := profiles.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func baseURL(s *protocoltest.Server) string { return "http://" + s.Addr.String() }

// nthEvent returns the n-th (from 1) event of type typ the server emitted.
func nthEvent(t testing.TB, s *protocoltest.Server, typ string, n int) *protocols.Event {
	t.Helper()
	// The server writes the answer, then emits its event: a client may read the answer
	// first, so wait (bounded) until the n-th event of the type has arrived.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if ev := s.Events.OfType(typ); len(ev) >= n {
			return ev[n-1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s event number %d", typ, n)
		}
	}
}

func field(e *protocols.Event, key string) any {
	for _, f := range e.Fields {
		if f.Key == key {
			return f.Value
		}
	}
	return nil
}

// headerOf returns the value of a header in a raw response head, or "".
func headerOf(resp, name string) string {
	for _, l := range strings.Split(resp, "\r\n") {
		k, v, ok := strings.Cut(l, ":")
		if ok && strings.EqualFold(k, name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// memConn is an in-memory connection: reads come from in (then EOF), writes go to out.
type memConn struct {
	in  *bytes.Reader
	out bytes.Buffer
}

func (c *memConn) Read(p []byte) (int, error)  { return c.in.Read(p) }
func (c *memConn) Write(p []byte) (int, error) { return c.out.Write(p) }
func (c *memConn) Close() error                { return nil }
func (c *memConn) LocalAddr() net.Addr         { return &net.TCPAddr{IP: net.IPv4(192, 0, 2, 10), Port: 80} }
func (c *memConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(198, 51, 100, 7), Port: 40000}
}
func (c *memConn) SetDeadline(t time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(t time.Time) error { return nil }

// memService configures the default profile without tarpits, for in-memory serving.
func memService(t testing.TB) (*service, *protocols.Session) {
	t.Helper()
	return memServiceOf(t, protocoltest.Station)
}

// memServiceOf is memService for the embedded profile named profile.
func memServiceOf(t testing.TB, profile string) (*service, *protocols.Session) {
	t.Helper()
	p := protocoltest.Profile(t, profile)
	svc := protocoltest.Configure(t, protocol{}, p).(*service)
	for _, n := range allNodes(svc.cfg) {
		n.tarpit = nil
	}
	svc.cfg.tarpit = tarpit{}
	h := protocoltest.Host(p, netip.MustParseAddr("192.0.2.10"), 42)
	sess := &protocols.Session{ID: "mem", Protocol: Name, Transport: protocols.TCP, Host: h,
		Log: slog.New(slog.DiscardHandler), Events: &protocoltest.Recorder{}, MaxPayload: 4096}
	return svc, sess
}

func fsReadDir(p *profiles.Profile, dir string) ([]string, error) {
	es, err := fs.ReadDir(p.FS, dir)
	var out []string
	for _, e := range es {
		if !e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out, err
}

func fsReadFile(p *profiles.Profile, name string) ([]byte, error) { return fs.ReadFile(p.FS, name) }

// sessionT is the session type exchange takes.
type sessionT = *protocols.Session

// hostOf makes a test host of p.
func hostOf(p *profiles.Profile) *protocols.Host {
	return protocoltest.Host(p, netip.MustParseAddr("192.0.2.10"), 42)
}
