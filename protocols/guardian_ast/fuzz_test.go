package guardianast

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
		"\x01I20100\r\n", "\x01i20100", "\x01S60201NONSUPER\r\n", "\x01S60200ULTIMATETEST\n",
		"\x01S6020\r\n", "\x01I20200\x01I20300\x01I20400\x01I20500", "\x01i20500\x01i20200",
		"\x01I10100\n\x01I11100\n\x01I20600\n", "\x01I90200\x01i90200", "GET / HTTP/1.0\r\n\r\n", "\x01I201", "\x01I20109\n",
		"\x01s60203LABEL\x03", "\x00\x01\x02\x03\x01\xff",
	} {
		f.Add([]byte(s))
	}
}

// FuzzParseCommand: any command parses without panicking; an accepted one is consistent.
func FuzzParseCommand(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCommand(b)
		if len(c.Code) > 6 || c.Kind == "" {
			t.Fatalf("%q: %+v", b, c)
		}
		if err != nil {
			return
		}
		if c.Tank < 0 || c.Tank > 99 || (c.Set && (len(c.Data) == 0 || len(c.Data) > LabelLen)) || (!c.Set && len(c.Data) != 0) {
			t.Fatalf("%q accepted as %+v", b, c)
		}
	})
}

// FuzzSplitter: any stream, in any cut, splits into bounded commands.
func FuzzSplitter(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		var s Splitter
		var toks []Token
		for i := 0; i < len(b); i += 7 {
			toks = s.Feed(b[i:min(i+7, len(b))], toks)
		}
		toks = s.Flush(toks)
		for _, tk := range toks {
			if len(tk.Cmd) > MaxCommand || bytes.IndexByte(tk.Cmd, SOH) >= 0 {
				t.Fatalf("token %q", tk.Cmd)
			}
		}
		if len(toks) > bytes.Count(b, []byte{SOH}) {
			t.Fatalf("%d tokens from %d SOHs", len(toks), bytes.Count(b, []byte{SOH}))
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
	return c.r.Read(p[:min(len(p), 13)])
}
func (c *pipeConn) Write(p []byte) (int, error)      { c.out += len(p); return len(p), nil }
func (c *pipeConn) Close() error                     { return nil }
func (c *pipeConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *pipeConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *pipeConn) SetDeadline(time.Time) error      { return nil }
func (c *pipeConn) SetReadDeadline(time.Time) error  { return nil }
func (c *pipeConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzServeConn: any byte stream never panics or hangs, and the output stays bounded by the
// commands in it (the longest report per SOH).
func FuzzServeConn(f *testing.F) {
	seeds(f)
	p := loadConpot(f)
	svc := configure(f, p)
	f.Fuzz(func(t *testing.T, b []byte) {
		h := protocoltest.Host(p, netip.MustParseAddr("198.18.31.7"), 1)
		s := testSession(h, &protocoltest.Recorder{})
		c := &pipeConn{r: bytes.NewReader(b)}
		svc.ServeConn(s.Context(), s, c)
		if c.out > (bytes.Count(b, []byte{SOH})+1)*8192 {
			t.Fatalf("%d bytes out for %d in", c.out, len(b))
		}
	})
}
