package ftp

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

func addCommandSeeds(f *testing.F) {
	for _, s := range []string{
		"USER nobody", "PASS nobody", "\xff\xf4\xff\xf2ABOR", "PORT 127,0,0,1,200,10", "EPRT |2|::1|5000|",
		"CWD ../../..", "RETR ..\\..\\x", "SITE CHMOD 777 /", "MKD a/b/../c", "TYPE L 8", "REST 99999999999999999999",
		"OPTS UTF8 ON", "MLST /", "STAT /", "HELP SITE", "RNFR x\r\nRNTO y",
	} {
		f.Add([]byte(s))
	}
}

// FuzzParseCommand: any line splits into a short upper-case verb and an argument.
func FuzzParseCommand(f *testing.F) {
	addCommandSeeds(f)
	f.Fuzz(func(t *testing.T, line []byte) {
		verb, arg := parseCommand(line)
		if len(verb) > 8 || asciiUpper(verb) != verb || len(arg) > len(line) {
			t.Fatalf("parseCommand(%q) = %q, %q", line, verb, arg)
		}
		parsePORT(arg)
		parseEPRT(arg)
	})
}

// FuzzSession: any byte stream on the control connection, logged in or not, is answered
// without a panic, within bounded output.
func FuzzSession(f *testing.F) {
	addCommandSeeds(f)
	p := protocoltest.Profile(f, "testdata/conpot")
	svc := protocoltest.Configure(f, protocol{}, p).(*service)
	host := protocoltest.Host(p, netip.MustParseAddr("192.0.2.1"), 1)
	f.Fuzz(func(t *testing.T, in []byte) {
		a, b := net.Pipe()
		sess := &protocols.Session{ID: "fuzz", Protocol: Name, Transport: protocols.TCP, Host: host,
			Local:  netip.MustParseAddrPort("192.0.2.1:21"),
			Remote: netip.MustParseAddrPort("198.51.100.1:40000"),
			Log:    slog.New(slog.NewTextHandler(io.Discard, nil)), Events: &protocoltest.Recorder{}}
		done := make(chan struct{})
		go func() {
			defer close(done)
			svc.ServeConn(context.Background(), sess, &protocols.TimeoutConn{Conn: a, Idle: 2 * time.Second, WriteTimeout: 2 * time.Second})
			a.Close()
		}()
		go func() {
			b.Write([]byte("USER nobody\r\nPASS nobody\r\n"))
			b.Write(in)
			b.Write([]byte("\r\nQUIT\r\n"))
		}()
		out, _ := io.ReadAll(io.LimitReader(b, 1<<20))
		b.Close()
		<-done
		if !strings.HasPrefix(string(out), "220 ") {
			t.Fatalf("no greeting: %q", out)
		}
	})
}
