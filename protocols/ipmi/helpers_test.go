package ipmi

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

// testProfile loads testdata/bmc, with its ipmi.xml rewritten by edit when edit is set.
func testProfile(t testing.TB, edit func(string) string) *profiles.Profile {
	t.Helper()
	if edit == nil {
		return protocoltest.Profile(t, "testdata/bmc")
	}
	dir := filepath.Join(t.TempDir(), "bmc")
	err := filepath.WalkDir("testdata/bmc", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel("testdata/bmc", p)
		dst := filepath.Join(dir, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if d.Name() == "ipmi.xml" {
			b = []byte(edit(string(b)))
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return protocoltest.Profile(t, dir)
}

// withSuites sets the profile's cipher suites.
func withSuites(list string) func(string) string {
	return func(s string) string {
		return strings.Replace(s, "<user_list>", "<cipher_suites>"+list+"</cipher_suites>\n    <user_list>", 1)
	}
}

func testService(t testing.TB, edit func(string) string) (*service, *profiles.Profile) {
	t.Helper()
	p := testProfile(t, edit)
	return protocoltest.Configure(t, protocol{}, p).(*service), p
}

// loopback returns an address of 127.60.0.0/16, which this package's tests own.
func loopback() netip.Addr {
	return netip.AddrFrom4([4]byte{127, 60, byte(rand.IntN(256)), byte(1 + rand.IntN(254))})
}

// server is a UDP listener driving a PacketService the way the sensor does: a session per
// flow (source address and port) with its lifetime, several replies per request allowed.
type server struct {
	Addr   netip.AddrPort
	Host   *protocols.Host
	Events *protocoltest.Recorder
	panics atomic.Int64

	mu    sync.Mutex
	flows map[netip.AddrPort]*protocols.Session
}

// serve serves svc for h on addr ("127.60.x.y:0") until the test ends.
func serve(t testing.TB, svc protocols.PacketService, h *protocols.Host, addr string) *server {
	t.Helper()
	pc, err := net.ListenPacket("udp4", addr)
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	uc := pc.(*net.UDPConn)
	ctx, cancel := context.WithCancel(context.Background())
	srv := &server{Addr: uc.LocalAddr().(*net.UDPAddr).AddrPort(), Host: h, Events: &protocoltest.Recorder{},
		flows: map[netip.AddrPort]*protocols.Session{}}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 65536)
		for {
			n, from, err := uc.ReadFromUDPAddrPort(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			srv.mu.Lock()
			sess, ok := srv.flows[from]
			if !ok {
				sess = &protocols.Session{ID: fmt.Sprintf("flow-%d", len(srv.flows)+1), Protocol: Name,
					Transport: protocols.UDP, Local: srv.Addr, Remote: from, Host: h, Sensor: "test",
					Log:    slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
					Events: srv.Events, MaxPayload: 4096, Amplification: 10} // the sensor's default bound
				to := from
				sess.Open(ctx, func(b []byte) error { _, err := uc.WriteToUDPAddrPort(b, to); return err })
				srv.flows[from] = sess
			}
			srv.mu.Unlock()
			sess.Received(n)
			func() {
				defer func() {
					if r := recover(); r != nil {
						srv.panics.Add(1)
						t.Errorf("handler panic: %v\n%s", r, debug.Stack())
					}
				}()
				replies := 0
				svc.ServePacket(ctx, sess, buf[:n], func(resp []byte) {
					if replies++; replies > protocols.MaxRepliesPerRequest {
						t.Errorf("more than %d replies to one request", protocols.MaxRepliesPerRequest)
						return
					}
					if !sess.TakeReply(len(resp)) {
						t.Errorf("a %d-byte answer passes the amplification bound", len(resp))
						return
					}
					uc.WriteToUDPAddrPort(resp, from)
				})
			}()
		}
	}()
	t.Cleanup(func() {
		cancel()
		uc.Close()
		wg.Wait()
		srv.mu.Lock()
		defer srv.mu.Unlock()
		for _, s := range srv.flows {
			s.Close()
		}
	})
	return srv
}

// closeFlows ends every flow, as the sensor does when they go idle.
func (s *server) closeFlows() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, f := range s.flows {
		f.Close()
		delete(s.flows, k)
	}
}

// hostFor returns a host of p at a fixed address and seed.
func hostFor(p *profiles.Profile) *protocols.Host {
	return protocoltest.Host(p, netip.MustParseAddr("192.0.2.23"), 4242)
}

// startBMC configures the test profile (edited by edit) and serves one host on a fresh
// loopback address and kernel-picked port.
func startBMC(t testing.TB, edit func(string) string) (*server, *service) {
	t.Helper()
	svc, p := testService(t, edit)
	return serve(t, svc, hostFor(p), loopback().String()+":0"), svc
}
