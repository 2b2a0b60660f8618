package s7comm

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// Frames seen on the wire: nmap s7-info, nodes7, snap7-style jobs (TPKT included).
var seedFrames = []string{
	"0300001611e00000001400c1020100c2020102c0010a",                                  // nmap CR
	"0300001611e00000000500c1020100c2020200c0010a",                                  // nmap fallback CR
	"0300001611e00000000200c0010ac1020100c2020102",                                  // nodes7 CR
	"0300001902f08032010000000000080000f0000001000101e0",                            // setup 480
	"0300001902f08032010000000000080000f0000008000803c0",                            // nodes7 setup 960
	"0300002102f080320700000000000800080001120411440100ff09000400110001",            // SZL 0x0011
	"0300002102f080320700000000000800080001120411440100ff090004001c0001",            // SZL 0x001C
	"0300002502f080320700000001000c0004000112081244010100000000 0a000000",           // SZL follow-up
	"0300001f02f080320100000002000e00000401120a10040004000184000000",                // read DB1.DBW0 x4
	"0300002802f080320100000003000e00090501120a1002000300 0a8400002000040018010203", // write DB10
	"0300002102f0803201000000040010000029000000000009505f50524f4752414d",            // stop
	"0300002502f080320100000005001400002800000000000000fd000009505f50524f4752414d",  // hot start
	"0300001d02f08032070000000600080004000112041143010 00a000000",                   // list blocks
	"0300001402f080320700000007000800040001120411470100",                            // read clock, no data
	"0300000b0680000000140080",                                                      // DR
	"0300000702f080",                                                                // empty DT
}

func seedBytes(s string) []byte {
	return hexb(string(bytes.ReplaceAll([]byte(s), []byte(" "), nil)))
}

func FuzzTPKT(f *testing.F) {
	for _, s := range seedFrames {
		f.Add(seedBytes(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		var buf []byte
		for i := 0; i < 64; i++ {
			tpdu, frame, err := ReadTPKT(r, buf, 1024)
			if err != nil {
				return
			}
			if len(frame) < tpktMinLen || len(frame) > 1024 || len(tpdu) != len(frame)-tpktHeaderLen {
				t.Fatalf("frame %d bytes, TPDU %d", len(frame), len(tpdu))
			}
			buf = frame[:0]
		}
	})
}

func FuzzCOTP(f *testing.F) {
	for _, s := range seedFrames {
		f.Add(seedBytes(s)[tpktHeaderLen:])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		tp, err := ParseCOTP(b)
		if err != nil {
			return
		}
		again, err := ParseCOTP(tp.Append(nil))
		if err != nil {
			t.Fatalf("re-encoded TPDU does not parse: %v", err)
		}
		if again.Code != tp.Code || again.DstRef != tp.DstRef || !bytes.Equal(again.Data, tp.Data) || len(again.Params) != len(tp.Params) {
			t.Fatalf("round trip: %+v != %+v", again, tp)
		}
	})
}

func FuzzS7(f *testing.F) {
	for _, s := range seedFrames {
		if b := seedBytes(s); len(b) > 7 {
			f.Add(b[7:])
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePDU(b)
		if err != nil {
			return
		}
		if enc := p.Append(nil); !bytes.Equal(enc, b) {
			t.Fatalf("round trip % x != % x", enc, b)
		}
		ParseSetup(p.Param)
		if _, items, err := ParseVarJob(p.Param); err == nil {
			if len(items) > MaxItems {
				t.Fatalf("%d items", len(items))
			}
			ParseDataItems(p.Data, len(items))
		}
		parsePI(p.Param)
		if u, err := ParseUDParam(p.Param); err == nil {
			if enc := u.Append(nil); !bytes.Equal(enc, p.Param) {
				t.Fatalf("userdata parameter round trip % x != % x", enc, p.Param)
			}
		}
		if d, err := ParseUDData(p.Data); err == nil {
			ParseSZLRequest(d.Payload)
			decodePassword(d.Payload)
			parseBCDClock(d.Payload)
		}
	})
}

// discard is a net.Conn that throws writes away (for fuzzing and benchmarks).
type discard struct{ net.Conn }

func (discard) Write(b []byte) (int, error)        { return len(b), nil }
func (discard) SetReadDeadline(time.Time) error    { return nil }
func (discard) Read([]byte) (int, error)           { return 0, io.EOF }
func (discard) Close() error                       { return nil }
func (discard) LocalAddr() net.Addr                { return &net.TCPAddr{} }
func (discard) RemoteAddr() net.Addr               { return &net.TCPAddr{} }
func (discard) SetDeadline(time.Time) error        { return nil }
func (discard) SetWriteDeadline(t time.Time) error { return nil }

// reader feeds fixed input to ServeConn and discards its answers.
type reader struct {
	discard
	r io.Reader
}

func (c *reader) Read(b []byte) (int, error) { return c.r.Read(b) }

func testService(t testing.TB) (*service, *protocols.Host) {
	p := protocoltest.Profile(t, protocoltest.Station)
	svc := protocoltest.Configure(t, protocol{}, p).(*service)
	return svc, protocoltest.Host(p, netip.MustParseAddr("192.0.2.30"), 5)
}

// FuzzConn runs the whole connection loop on arbitrary client bytes.
func FuzzConn(f *testing.F) {
	var session []byte
	for _, s := range seedFrames {
		b := seedBytes(s)
		f.Add(b)
		session = append(session, b...)
	}
	f.Add(session)
	f.Add(append(seedBytes(seedFrames[0]), seedBytes("0300000702f000")...))
	svc, host := testService(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		sess := &protocols.Session{Protocol: Name, Host: host}
		svc.ServeConn(context.Background(), sess, &reader{r: bytes.NewReader(b)})
	})
}

type dropEvents struct{}

func (dropEvents) Emit(e *protocols.Event) { protocols.ReleaseEvent(e) }

func newBenchSession(h *protocols.Host) *protocols.Session {
	return &protocols.Session{Protocol: Name, Host: h, Events: dropEvents{}, MaxPayload: 4096}
}
