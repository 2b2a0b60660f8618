package kamstrupmeter

import (
	"bytes"
	"context"
	"encoding/hex"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// templateDir is Conpot's kamstrup_382 template, regenerated (testdata/conpot/README.md).
const templateDir = "../../testdata/conpot/kamstrup_382"

// loadTemplate loads the kamstrup_382 template unchanged through profiles.Load.
func loadTemplate(t testing.TB) *profiles.Profile {
	t.Helper()
	p, err := profiles.Load(os.DirFS(templateDir), "kamstrup_382", templateDir)
	if err != nil {
		t.Fatal(err)
	}
	if w := p.Warnings(); len(w) > 0 {
		t.Fatalf("template warnings: %v", w)
	}
	return p
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// testAddr returns an address in the test range 127.32.0.0/16.
func testAddr() netip.Addr {
	return netip.AddrFrom4([4]byte{127, 32, byte(rand.IntN(256)), byte(1 + rand.IntN(254))})
}

// meter is a running meter service on loopback.
type meter struct {
	*protocoltest.Server
	svc  *service
	skew atomic.Int64 // added to the service's clock
}

// startMeter serves the template's meter for a fresh host; with delay false the reply
// delay is skipped.
func startMeter(t *testing.T, delay bool) *meter {
	t.Helper()
	p := loadTemplate(t)
	svc := protocoltest.Configure(t, protocol{}, p).(*service)
	if !delay {
		svc.sleep = func(ctx context.Context, _ time.Duration) bool { return ctx.Err() == nil }
	}
	m := &meter{svc: svc}
	svc.now = func() time.Time { return time.Now().Add(time.Duration(m.skew.Load())) }
	addr := testAddr()
	h := protocoltest.Host(p, addr, 7)
	m.Server = protocoltest.ServeTCP(t, Name, svc, h, netip.AddrPortFrom(addr, 0).String())
	return m
}

// client is a raw meter connection.
type client struct {
	t  *testing.T
	c  net.Conn
	sc Scanner
	q  [][]byte
}

func (m *meter) dial(t *testing.T) *client {
	t.Helper()
	c, err := net.DialTimeout("tcp", m.Addr.String(), 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{t: t, c: c, sc: Scanner{Start: ResponseMagic}}
}

func (c *client) send(b []byte) {
	c.t.Helper()
	if _, err := c.c.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

// request sends a GetRegister request for ids to addr.
func (c *client) request(addr byte, ids ...uint16) {
	c.t.Helper()
	c.send(AppendFrame(nil, RequestMagic, Message{Addr: addr, Cmd: CmdGetRegister, Data: AppendGetRegister(nil, ids...)}))
}

// read returns the next response frame.
func (c *client) read() []byte {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 4096)
	for len(c.q) == 0 {
		n, err := c.c.Read(buf)
		for _, f := range c.sc.Feed(buf[:n]) {
			c.q = append(c.q, f.Raw)
		}
		if err != nil && len(c.q) == 0 {
			c.t.Fatalf("read: %v", err)
		}
	}
	f := c.q[0]
	c.q = c.q[1:]
	return f
}

// closed reports whether the server closed the connection (within 10 s).
func (c *client) closed() bool {
	c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b := make([]byte, 64)
	for {
		n, err := c.c.Read(b)
		if err != nil {
			return !isTimeout(err)
		}
		if n > 0 && !bytes.Contains(b[:n], []byte{ResponseMagic}) {
			continue
		}
		return false
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

func mustConfig(t testing.TB, p *profiles.Profile) *config {
	t.Helper()
	c, err := parseConfig(p.Sections[Name])
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func hostFor(p *profiles.Profile) *protocols.Host {
	return protocoltest.Host(p, netip.MustParseAddr("127.32.0.1"), 3)
}

func testSession(h *protocols.Host) *protocols.Session {
	return &protocols.Session{ID: "fuzz", Protocol: Name, Transport: protocols.TCP, Host: h, MaxPayload: 4096}
}
