package iec104

import (
	"encoding/hex"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// testAddr returns a random loopback address of this package's range 127.70.0.0/16.
func testAddr() netip.Addr {
	return netip.AddrFrom4([4]byte{127, 70, byte(rand.IntN(256)), byte(1 + rand.IntN(254))})
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// configure loads testdata/dir and configures the service, failing on warnings.
func configure(t testing.TB, dir string) (*service, *profiles.Profile) {
	t.Helper()
	p := protocoltest.Profile(t, "testdata/"+dir)
	return protocoltest.Configure(t, protocol{}, p).(*service), p
}

// serve runs the service on port 2404 of a fresh loopback address.
func serve(t testing.TB, seed uint64) (*service, *protocols.Host, *protocoltest.Server) {
	t.Helper()
	svc, p := configure(t, "IEC104")
	addr := testAddr()
	h := protocoltest.Host(p, addr, seed)
	srv := protocoltest.ServeTCP(t, Name, svc, h, netip.AddrPortFrom(addr, Port).String())
	return svc, h, srv
}

// client is a raw IEC 104 client.
type client struct {
	t testing.TB
	c net.Conn
}

func dial(t testing.TB, addr netip.AddrPort) *client {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{t: t, c: c}
}

func (c *client) send(b []byte) {
	c.t.Helper()
	c.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.c.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

// recv reads one APDU.
func (c *client) recv() []byte {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	h := make([]byte, 2)
	if _, err := io.ReadFull(c.c, h); err != nil {
		c.t.Fatalf("read: %v", err)
	}
	b := make([]byte, h[1])
	if _, err := io.ReadFull(c.c, b); err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return append(h, b...)
}

// expect sends req and checks the replies byte for byte.
func (c *client) expect(req string, replies ...string) {
	c.t.Helper()
	c.send(unhex(c.t, req))
	for _, r := range replies {
		if got, want := c.recv(), unhex(c.t, r); string(got) != string(want) {
			c.t.Fatalf("after %s:\n got % x\nwant % x", req, got, want)
		}
	}
}

// closed checks that the server closed the connection.
func (c *client) closed() {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 512)
	for i := 0; i < 100; i++ {
		if _, err := c.c.Read(buf); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				c.t.Fatal("connection still open")
			}
			return
		}
	}
	c.t.Fatal("connection still sending")
}

func testSession(h *protocols.Host, rec protocols.Emitter) *protocols.Session {
	return &protocols.Session{ID: "t", Protocol: Name, Transport: protocols.TCP, Host: h,
		Log: slog.New(slog.DiscardHandler), Events: rec, MaxPayload: 4096}
}
