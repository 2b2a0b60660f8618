package iec104

import (
	"bytes"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols/protocoltest"
)

func seeds(f *testing.F) {
	for _, s := range []string{
		"68 04 07 00 00 00 68 0e 00 00 00 00 64 01 06 00 ff ff 00 00 00 14",
		"68 04 07 00 00 00 68 0e 00 00 00 00 2d 01 06 00 28 1e 00 16 14 01",
		"68 04 07 00 00 00 68 0e 00 00 00 00 2e 01 06 00 28 1e 00 3c 06 82 68 0e 02 00 00 00 2e 01 06 00 28 1e 00 3c 06 02",
		"68 04 07 00 00 00 68 10 00 00 00 00 32 01 06 00 28 1e 00 6d 03 00 00 48 42 00",
		"68 04 43 00 00 00 68 04 13 00 00 00 68 04 01 00 02 00",
		"68 04 07 00 00 00 68 0e 00 00 00 00 64 81 06 00 28 1e 00 00 00 14",
	} {
		f.Add(unhex(f, s))
	}
}

// FuzzParseASDU: any ASDU decodes without panicking, and accepted objects lie inside it.
func FuzzParseASDU(f *testing.F) {
	f.Add(unhex(f, "64 01 06 00 28 1e 00 00 00 14"))
	f.Add(unhex(f, "01 83 14 00 28 1e 00 0d 14 01 00 01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := parseASDU(b, nil)
		if err != nil {
			return
		}
		if len(a.Objects) != a.N || a.N > maxObjects {
			t.Fatalf("%d objects for N=%d", len(a.Objects), a.N)
		}
	})
}

// pipeConn feeds a byte string to ServeConn in small pieces and counts what it writes.
type pipeConn struct {
	r   *bytes.Reader
	out int
}

func (c *pipeConn) Read(p []byte) (int, error) {
	if c.r.Len() == 0 {
		return 0, io.EOF
	}
	if len(p) > 29 {
		p = p[:29]
	}
	return c.r.Read(p)
}
func (c *pipeConn) Write(p []byte) (int, error)      { c.out += len(p); return len(p), nil }
func (c *pipeConn) Close() error                     { return nil }
func (c *pipeConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *pipeConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *pipeConn) SetDeadline(time.Time) error      { return nil }
func (c *pipeConn) SetReadDeadline(time.Time) error  { return nil }
func (c *pipeConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzServeConn: any byte stream (sequence games, frames before STARTDT, lying lengths)
// never panics, and the output stays bounded by the k window per request.
func FuzzServeConn(f *testing.F) {
	seeds(f)
	svc, p := configure(f, "IEC104")
	f.Fuzz(func(t *testing.T, b []byte) {
		h := protocoltest.Host(p, netip.MustParseAddr("198.18.70.7"), 1)
		s := testSession(h, &protocoltest.Recorder{})
		c := &pipeConn{r: bytes.NewReader(b)}
		svc.ServeConn(s.Context(), s, c)
		// at most k frames of 255 octets and a few U/S frames per input frame
		if c.out > (len(b)/6+1)*(12*255+18) {
			t.Fatalf("%d octets out for %d in", c.out, len(b))
		}
	})
}
