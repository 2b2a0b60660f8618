package enip

import (
	"bytes"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// seeds are frames a scanner and clients send.
func seeds(f *testing.F) {
	f.Add(unhex(f, "63000000000000000000000000000000c1debed100000000")) // nmap enip-info
	f.Add(frame(cmdRegisterSession, 0, "", []byte{1, 0, 0, 0}))
	f.Add(append(frame(cmdRegisterSession, 0, "", []byte{1, 0, 0, 0}),
		frame(cmdSendRRData, 0, "", rrData(cipReq(svcReadTag, symbolic("Counts", 3), []byte{2, 0})))...))
	f.Add(frame(cmdSendRRData, 0, "", rrData(cipReq(svcMultipleService, logical(2, 1), []byte{1, 0, 4, 0, 1, 2, 0x20, 1, 0x24, 1}))))
	f.Add(frame(cmdSendUnitData, 0, "", unitData(1, 1, cipReq(svcGetAttributesAll, logical(1, 1), nil))))
	f.Add(unhex(f, "650004000001000000000000000000000000000000000000 0100 0000 deadbeef"))
}

// FuzzParsePath: any path decodes without panicking, within its bounds.
func FuzzParsePath(f *testing.F) {
	f.Add(logical(1, 1, 7))
	f.Add(symbolic("Counts", 1, 300))
	f.Add([]byte{0x01, 0x00, 0x34, 0x04, 1, 0, 14, 0, 90, 0, 2, 10})
	f.Add([]byte{0x12, 0x09, '1', '0', '.', '0', '.', '0', '.', '1', 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parsePath(b)
		if err == nil && p.NumElements > maxElements {
			t.Fatalf("%d elements", p.NumElements)
		}
	})
}

// FuzzParseCPF: item counts and lengths are never trusted beyond the data.
func FuzzParseCPF(f *testing.F) {
	f.Add(rrData(nil)[6:])
	f.Add([]byte{0xFF, 0xFF, 0, 0, 0xFF, 0xFF})
	f.Fuzz(func(t *testing.T, b []byte) {
		items, err := parseCPF(b, nil)
		if err == nil && len(items) > maxItems {
			t.Fatalf("%d items", len(items))
		}
		total := 0
		for _, it := range items {
			total += 4 + len(it.Data)
		}
		if err == nil && total+2 != len(b) {
			t.Fatalf("items cover %d of %d bytes", total+2, len(b))
		}
	})
}

// pipeConn feeds a byte string to ServeConn and discards what it writes.
type pipeConn struct {
	r   *bytes.Reader
	out int
}

func (c *pipeConn) Read(p []byte) (int, error) {
	if c.r.Len() == 0 {
		return 0, io.EOF
	}
	// deliver in small pieces so frames straddle reads
	if len(p) > 37 {
		p = p[:37]
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

// FuzzServeConn: a registered session followed by any bytes never panics, and replies stay
// within a bound of the input.
func FuzzServeConn(f *testing.F) {
	seeds(f)
	svc, p := configure(f, "logix")
	f.Fuzz(func(t *testing.T, b []byte) {
		h := protocoltest.Host(p, netip.MustParseAddr("198.18.70.5"), 1)
		s := testSession(h, &protocoltest.Recorder{}, protocols.TCP)
		c := &pipeConn{r: bytes.NewReader(b)}
		svc.ServeConn(s.Context(), s, c)
		// one frame of at least 24 bytes is answered with at most a few kilobytes
		if c.out > (len(b)/headerLen+1)*(headerLen+maxData) {
			t.Fatalf("%d bytes out for %d in", c.out, len(b))
		}
	})
}

// FuzzServePacket: any datagram, unicast or broadcast, never panics and gets at most one
// reply.
func FuzzServePacket(f *testing.F) {
	seeds(f)
	svc, p := configure(f, "default")
	h := protocoltest.Host(p, netip.MustParseAddr("198.18.70.6"), 1)
	f.Fuzz(func(t *testing.T, b []byte) {
		s := testSession(h, &protocoltest.Recorder{}, protocols.UDP)
		n := 0
		reply := func(r []byte) {
			n++
			if len(r) > 200 {
				t.Fatalf("%d-byte reply", len(r))
			}
		}
		svc.ServePacket(s.Context(), s, b, reply)
		svc.ServeBroadcast(s.Context(), s, netip.MustParseAddr("198.18.70.255"), b, reply)
		if n > 2 {
			t.Fatalf("%d replies", n)
		}
	})
}
