package guardianast

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// conpotDir is Conpot's guardian_ast template, regenerated (see testdata/conpot/README.md).
const conpotDir = "../../testdata/conpot/guardian_ast"

// testAddr returns a random loopback address of this package's range 127.31.0.0/16.
func testAddr() netip.Addr {
	return netip.AddrFrom4([4]byte{127, 31, byte(rand.IntN(256)), byte(1 + rand.IntN(254))})
}

// loadConpot loads Conpot's template unchanged through profiles.Load.
func loadConpot(t testing.TB) *profiles.Profile {
	t.Helper()
	p, err := profiles.Load(os.DirFS(conpotDir), "guardian_ast", conpotDir)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// configure configures the service from p, failing on errors and template warnings.
func configure(t testing.TB, p *profiles.Profile) *service {
	t.Helper()
	return protocoltest.Configure(t, protocol{}, p).(*service)
}

// serve runs the service for a host of p on port 10001 of a fresh loopback address.
func serve(t testing.TB, p *profiles.Profile, seed uint64) (*service, *protocoltest.Server) {
	t.Helper()
	svc := configure(t, p)
	addr := testAddr()
	h := protocoltest.Host(p, addr, seed)
	return svc, protocoltest.ServeTCP(t, Name, svc, h, netip.AddrPortFrom(addr, Port).String())
}

// client is a raw TCP client of the gauge.
type client struct {
	t testing.TB
	c net.Conn
}

func dial(t testing.TB, srv *protocoltest.Server) *client {
	t.Helper()
	c, err := net.DialTimeout("tcp", srv.Addr.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{t: t, c: c}
}

func (c *client) send(s string) {
	c.t.Helper()
	c.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.c.Write([]byte(s)); err != nil {
		c.t.Fatal(err)
	}
}

// readFor reads whatever arrives within d (Conpot's tests read with a timeout too).
func (c *client) readFor(d time.Duration) []byte {
	c.t.Helper()
	var out []byte
	buf := make([]byte, 4096)
	deadline := time.Now().Add(d)
	for {
		c.c.SetReadDeadline(deadline)
		n, err := c.c.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, io.EOF) {
				return out
			}
			c.t.Fatalf("read: %v", err)
		}
	}
}

// readUntil reads until the reply ends with end (a blank line, ETX …) or 5 s pass.
func (c *client) readUntil(end string) []byte {
	c.t.Helper()
	var out []byte
	buf := make([]byte, 4096)
	c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for !bytes.HasSuffix(out, []byte(end)) {
		n, err := c.c.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			c.t.Fatalf("read after %q: %v", out, err)
		}
	}
	return out
}

// ask sends a command and returns the whole display reply (Conpot framing ends it with a
// blank line after the last line).
func (c *client) ask(cmd string) string {
	c.t.Helper()
	c.send(cmd)
	return string(c.readUntil("\n\n"))
}

func testSession(h *protocols.Host, rec protocols.Emitter) *protocols.Session {
	return &protocols.Session{ID: "t", Protocol: Name, Transport: protocols.TCP, Host: h,
		Log: slog.New(slog.DiscardHandler), Events: rec, MaxPayload: 4096}
}
