package kamstrupmgmt

import (
	"bufio"
	"context"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// templateDir is Conpot's kamstrup_382 template, regenerated (testdata/conpot/README.md).
const templateDir = "../../testdata/conpot/kamstrup_382"

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

// freshStore is a new host's databus, as each of Conpot's tests starts from.
func freshStore(t testing.TB) (databusStore, *protocols.Host) {
	p := loadTemplate(t)
	h := protocoltest.Host(p, netip.MustParseAddr("127.32.1.1"), 5)
	return databusStore{db: h.Databus, seed: h.Seed}, h
}

func testAddr() netip.Addr {
	return netip.AddrFrom4([4]byte{127, 32, byte(rand.IntN(256)), byte(1 + rand.IntN(254))})
}

// console is a running console service.
type console struct {
	*protocoltest.Server
	svc *service
}

func startConsole(t *testing.T, delay bool) *console {
	t.Helper()
	p := loadTemplate(t)
	svc := protocoltest.Configure(t, protocol{}, p).(*service)
	if !delay {
		svc.sleep = func(ctx context.Context, _ time.Duration) bool { return ctx.Err() == nil }
	}
	addr := testAddr()
	h := protocoltest.Host(p, addr, 11)
	return &console{Server: protocoltest.ServeTCP(t, Name, svc, h, netip.AddrPortFrom(addr, 0).String()), svc: svc}
}

type client struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func (c *console) dial(t *testing.T) *client {
	t.Helper()
	nc, err := net.DialTimeout("tcp", c.Addr.String(), 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	return &client{t: t, c: nc, r: bufio.NewReader(nc)}
}

// readN reads exactly len(want) bytes.
func (c *client) readN(n int) string {
	c.t.Helper()
	b := make([]byte, n)
	for i := 0; i < n; {
		m, err := c.r.Read(b[i:])
		if err != nil {
			c.t.Fatalf("read after %q: %v", b[:i], err)
		}
		i += m
	}
	return string(b)
}

// expect reads the reply and compares it to want.
func (c *client) expect(want string) {
	c.t.Helper()
	if got := c.readN(len(want)); got != want {
		c.t.Fatalf("got %q\nwant %q", got, want)
	}
}

func (c *client) send(s string) {
	c.t.Helper()
	if _, err := c.c.Write([]byte(s)); err != nil {
		c.t.Fatal(err)
	}
}

// closed reports whether the server closed the connection.
func (c *client) closed() bool {
	_, err := c.r.ReadByte()
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return false
	}
	return err != nil
}

var _ = strings.Contains
