package modbus

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// unhex decodes hex with spaces, failing the test on bad input.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

// adu builds an MBAP frame.
func adu(tid uint16, unit uint8, pdu ...byte) []byte {
	return append(AppendHeader(nil, tid, 0, unit, len(pdu)), pdu...)
}

// testService configures the default profile, optionally rewriting its modbus.xml with
// edit (applied to the XML text), and returns the service and a fresh host.
func testService(t testing.TB, edit func(string) string) (*service, *protocols.Host) {
	t.Helper()
	p := protocoltest.Profile(t, protocoltest.Station)
	if edit != nil {
		p = editedProfile(t, edit)
	}
	svc := protocoltest.Configure(t, protocol{}, p).(*service)
	h := protocoltest.Host(p, netip.MustParseAddr("192.0.2.10"), 42)
	// Deterministic memory for golden replies.
	h.Databus.Set("memoryModbusCoils", seq(128, func(i int) any { return int64(i % 3 % 2) }))
	h.Databus.Set("memoryModbusDiscreteInputs", seq(64, func(i int) any { return i%2 == 0 }))
	h.Databus.Set("memoryModbusInputRegisters", seq(32, func(i int) any { return int64(1000 + i) }))
	h.Databus.Set("memoryModbusHoldingRegisters", seq(64, func(i int) any { return int64(i) }))
	return svc, h
}

func seq(n int, f func(int) any) []any {
	l := make([]any, n)
	for i := range l {
		l[i] = f(i)
	}
	return l
}

// editedProfile copies the embedded default profile to a temporary directory with its
// modbus.xml rewritten by edit.
func editedProfile(t testing.TB, edit func(string) string) *profiles.Profile {
	t.Helper()
	p := protocoltest.Profile(t, protocoltest.Station)
	dir := t.TempDir() + "/default"
	if err := copyFS(p, dir, edit); err != nil {
		t.Fatal(err)
	}
	return protocoltest.Profile(t, dir)
}

// fakeConn feeds chunks to Read one at a time and records every Write.
type fakeConn struct {
	chunks [][]byte
	out    bytes.Buffer
	writes int
}

func (c *fakeConn) Read(p []byte) (int, error) {
	for len(c.chunks) > 0 && len(c.chunks[0]) == 0 {
		c.chunks = c.chunks[1:]
	}
	if len(c.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.chunks[0])
	c.chunks[0] = c.chunks[0][n:]
	return n, nil
}
func (c *fakeConn) Write(p []byte) (int, error)      { c.writes++; return c.out.Write(p) }
func (c *fakeConn) Close() error                     { return nil }
func (c *fakeConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *fakeConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *fakeConn) SetDeadline(time.Time) error      { return nil }
func (c *fakeConn) SetReadDeadline(time.Time) error  { return nil }
func (c *fakeConn) SetWriteDeadline(time.Time) error { return nil }

func testSession(h *protocols.Host, rec protocols.Emitter) *protocols.Session {
	return &protocols.Session{ID: "t", Protocol: Name, Transport: protocols.TCP, Host: h,
		Log: slog.New(slog.DiscardHandler), Events: rec, MaxPayload: 4096}
}

// splitADUs splits a byte stream of MBAP frames; it fails on trailing garbage.
func splitADUs(t testing.TB, b []byte) [][]byte {
	t.Helper()
	var out [][]byte
	for len(b) > 0 {
		n, err := NextFrame(b)
		if err != nil || n == 0 {
			t.Fatalf("reply stream is not whole MBAP frames: % x", b)
		}
		out = append(out, b[:n])
		b = b[n:]
	}
	return out
}

// client is a raw Modbus/TCP client for the loopback tests.
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

// recv reads one ADU.
func (c *client) recv() []byte {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	h := make([]byte, HeaderLen)
	if _, err := io.ReadFull(c.c, h); err != nil {
		c.t.Fatalf("read header: %v", err)
	}
	l := int(binary.BigEndian.Uint16(h[4:]))
	rest := make([]byte, l-1)
	if _, err := io.ReadFull(c.c, rest); err != nil {
		c.t.Fatalf("read body: %v", err)
	}
	return append(h, rest...)
}
