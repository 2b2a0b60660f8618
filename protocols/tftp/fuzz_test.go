package tftp

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"testing"

	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

func addSeeds(f *testing.F) {
	f.Add(encodeRequest(opRRQ, "tftp_data.txt", "octet", option{"blksize", "1024"}, option{"tsize", "0"}))
	f.Add(encodeRequest(opWRQ, "../../x", "netascii", option{"timeout", "1"}))
	f.Add(encodeRequest(opRRQ, "a", "mail"))
	f.Add(encodeData(1, []byte("x")))
	f.Add(encodeACK(0))
	f.Add(encodeError(1, "File not found"))
	f.Add(encodeOACK([]option{{"blksize", "8"}}))
	f.Add([]byte{0, 1, 0, 0})
}

// FuzzCodec: any datagram decodes without panicking; an accepted request round-trips.
func FuzzCodec(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		parsePacket(b)
		fromNetascii(b)
		r, err := parseRequest(b)
		if err != nil {
			return
		}
		if len(r.options) > maxOptions || r.filename == "" || len(r.filename) > maxFilename {
			t.Fatalf("accepted %+v", r)
		}
		again, err := parseRequest(encodeRequest(r.op, r.filename, r.mode, r.options...))
		if err != nil || again.filename != r.filename || len(again.options) != len(r.options) {
			t.Fatalf("round trip of %+v: %+v %v", r, again, err)
		}
	})
}

// FuzzServePacket: any datagram to port 69 gets at most one answer and no transfer port
// unless it is a request for a file that exists.
func FuzzServePacket(f *testing.F) {
	addSeeds(f)
	p := protocoltest.Profile(f, "testdata/conpot")
	svc := protocoltest.Configure(f, protocol{}, p).(*service)
	host := protocoltest.Host(p, netip.MustParseAddr("192.0.2.1"), 1)
	f.Fuzz(func(t *testing.T, b []byte) {
		s := &protocols.Session{ID: "fuzz", Protocol: Name, Transport: protocols.UDP, Host: host,
			Local: netip.MustParseAddrPort("192.0.2.1:69"), Remote: netip.MustParseAddrPort("198.51.100.1:4000"),
			Events: &protocoltest.Recorder{}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
		n := 0
		svc.ServePacket(context.Background(), s, b, func([]byte) { n++ })
		if n > 1 {
			t.Fatalf("%d answers", n)
		}
	})
}
