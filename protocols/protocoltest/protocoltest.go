// Package protocoltest runs a protocol service on a real loopback socket for tests, the way
// the sensor would, without the sensor: one host, events recorded in memory.
package protocoltest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
)

// Recorder keeps every event emitted to it.
type Recorder struct {
	mu     sync.Mutex
	events []*protocols.Event
}

// Emit implements protocols.Emitter.
func (r *Recorder) Emit(e *protocols.Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

// Events returns the events so far.
func (r *Recorder) Events() []*protocols.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*protocols.Event(nil), r.events...)
}

// OfType returns the events whose Type is typ.
func (r *Recorder) OfType(typ string) []*protocols.Event {
	var out []*protocols.Event
	for _, e := range r.Events() {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// Profile loads an embedded profile (or a template directory) or fails the test.
func Profile(t testing.TB, nameOrDir string) *profiles.Profile {
	t.Helper()
	if nameOrDir == Station {
		nameOrDir = StationDir()
	}
	p, err := profiles.Open(nameOrDir)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Configure configures proto from p's section of the same name with the protocol's default
// options, failing the test on error or on template warnings.
func Configure(t testing.TB, proto protocols.Protocol, p *profiles.Profile) protocols.Service {
	t.Helper()
	var opts any
	if c, ok := proto.(protocols.Configurable); ok {
		opts = c.NewOptions()
	}
	return ConfigureWith(t, proto, p, opts)
}

// ConfigureWith is Configure with the given protocol options (what the sensor would decode
// from [protocols.<name>]).
func ConfigureWith(t testing.TB, proto protocols.Protocol, p *profiles.Profile, opts any) protocols.Service {
	t.Helper()
	sec, ok := p.Sections[proto.Name()]
	if !ok {
		t.Fatalf("profile %s has no enabled %s section", p.Name, proto.Name())
	}
	svc, err := proto.Configure(sec, opts)
	if err != nil {
		t.Fatal(err)
	}
	if w := p.Warnings(); len(w) > 0 {
		t.Fatalf("template warnings: %v", w)
	}
	return svc
}

// Host returns a host of profile p at addr with a fixed seed.
func Host(p *profiles.Profile, addr netip.Addr, seed uint64) *protocols.Host {
	return protocols.NewHost(addr, p, seed, time.Now().Add(-72*time.Hour))
}

// LoopbackAddr returns a random address in 127.64.0.0/10 so parallel tests can bind
// standard ports (102, 502 …) without colliding. Binding ports below 1024 needs root.
func LoopbackAddr() netip.Addr {
	return netip.AddrFrom4([4]byte{127, byte(64 + rand.IntN(64)), byte(rand.IntN(256)), byte(1 + rand.IntN(254))})
}

type metrics struct{ n atomic.Int64 }

func (m *metrics) Request(string, string, bool) { m.n.Add(1) }

// Server is a running test listener.
type Server struct {
	Addr   netip.AddrPort
	Events *Recorder
	Host   *protocols.Host
	// Panics counts handler panics (the sensor would log and count them too).
	Panics atomic.Int64
	// Sessions counts sessions started.
	Sessions atomic.Int64
}

func (s *Server) session(proto, transport string, local, remote netip.AddrPort) *protocols.Session {
	n := s.Sessions.Add(1)
	return &protocols.Session{
		ID: fmt.Sprintf("test-%d", n), Protocol: proto, Transport: transport,
		Local: local, Remote: remote, Host: s.Host, Sensor: "test",
		Log:    slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Events: s.Events, Metrics: &metrics{}, MaxPayload: 4096,
	}
}

func (s *Server) recoverPanic(t testing.TB) {
	if r := recover(); r != nil {
		s.Panics.Add(1)
		t.Errorf("handler panic: %v\n%s", r, debug.Stack())
	}
}

// ServeTCP serves svc for host h on addr (e.g. "127.0.0.1:0"), with a 10 s idle timeout,
// until the test ends. A handler panic fails the test.
func ServeTCP(t testing.TB, proto string, svc protocols.StreamService, h *protocols.Host, addr string) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv := &Server{Addr: ln.Addr().(*net.TCPAddr).AddrPort(), Events: &Recorder{}, Host: h}
	var wg sync.WaitGroup
	conns := map[net.Conn]struct{}{}
	var mu sync.Mutex
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = struct{}{}
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() {
					c.Close()
					mu.Lock()
					delete(conns, c)
					mu.Unlock()
				}()
				defer srv.recoverPanic(t)
				sess := srv.session(proto, protocols.TCP, c.LocalAddr().(*net.TCPAddr).AddrPort(), c.RemoteAddr().(*net.TCPAddr).AddrPort())
				svc.ServeConn(ctx, sess, &protocols.TimeoutConn{Conn: c, Idle: 10 * time.Second, WriteTimeout: 10 * time.Second})
			}()
		}
	}()
	t.Cleanup(func() {
		cancel()
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return srv
}

// PromptCheck wraps the reply a harness gives one ServePacket call of svc: when svc says it
// replies promptly (protocols.PromptReplier), a call after returned has been called fails t.
func PromptCheck(t testing.TB, svc protocols.PacketService, reply func([]byte)) (checked func([]byte), returned func()) {
	if !protocols.RepliesPromptly(svc) {
		return reply, func() {}
	}
	var done atomic.Bool
	return func(resp []byte) {
		if done.Load() {
			t.Errorf("%T says it replies promptly (protocols.PromptReplier) but replied after ServePacket returned", svc)
			return
		}
		reply(resp)
	}, func() { done.Store(true) }
}

// ServeUDP serves svc for host h on addr until the test ends. Each datagram is one request.
func ServeUDP(t testing.TB, proto string, svc protocols.PacketService, h *protocols.Host, addr string) *Server {
	t.Helper()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	uc := pc.(*net.UDPConn)
	srv := &Server{Addr: uc.LocalAddr().(*net.UDPAddr).AddrPort(), Events: &Recorder{}, Host: h}
	var wg sync.WaitGroup
	var smu sync.Mutex
	sessions := map[netip.AddrPort]*protocols.Session{}
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
			smu.Lock()
			sess, ok := sessions[from]
			if !ok {
				sess = srv.session(proto, protocols.UDP, srv.Addr, from)
				sessions[from] = sess
			}
			smu.Unlock()
			func() {
				defer srv.recoverPanic(t)
				var once atomic.Bool
				reply, returned := PromptCheck(t, svc, func(resp []byte) {
					if once.Swap(true) {
						t.Errorf("reply called twice for one request")
						return
					}
					if ctx.Err() != nil {
						return
					}
					uc.WriteToUDPAddrPort(resp, from)
				})
				defer returned()
				svc.ServePacket(ctx, sess, buf[:n], reply)
			}()
		}
	}()
	t.Cleanup(func() {
		cancel()
		uc.Close()
		wg.Wait()
	})
	return srv
}

// NeedTool returns the path of an external client, skipping the test when it is missing
// locally and failing it under CI (CI=true), where every client must be installed.
func NeedTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if InCI() {
		t.Fatalf("%s is not installed (CI must install it): %v", name, err)
	}
	t.Skipf("%s not installed", name)
	return ""
}

// ExportDefault exports the embedded default profile into a temporary directory of t,
// rewrites the file at rel (slash-separated, relative to the profile) with edit, and
// returns the profile's directory.
func ExportDefault(t testing.TB, rel string, edit func(string) string) string {
	t.Helper()
	p, err := profiles.Open(profiles.DefaultName)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "profile")
	if err := p.Export(dir); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, filepath.FromSlash(rel))
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte(edit(string(b))), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// WithoutSNMPDelays drops the tarpit and evasion entities from an snmp.xml, so that every
// request is answered at once (as the benchmarks run the agent).
func WithoutSNMPDelays(snmpXML string) string {
	var kept []string
	for line := range strings.SplitSeq(snmpXML, "\n") {
		if !strings.Contains(line, `name="tarpit"`) && !strings.Contains(line, `name="evasion"`) {
			kept = append(kept, line)
		}
	}
	return strings.Join(kept, "\n")
}

// NeedRoot skips the test when not root, and fails it under CI.
func NeedRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if InCI() {
		t.Fatal("this test needs root, and CI runs as root")
	}
	t.Skip("needs root")
}

// InCI reports whether the tests run under CI (CI=true), where skips are failures.
func InCI() bool { return strings.EqualFold(os.Getenv("CI"), "true") }

// Run runs an external command with a timeout and returns its combined output.
func Run(t testing.TB, timeout time.Duration, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = 2 * time.Second
	out, err := cmd.CombinedOutput()
	t.Logf("$ %s %s\n%s", name, strings.Join(args, " "), out)
	return string(out), err
}

// ExpertProblems runs `tshark -z expert,warn` on a capture and returns the rows that belong
// to one of the given protocols (as tshark names them in its Protocol column, e.g.
// "Modbus/TCP") or report a malformed packet. Rows of other layers, such as the kernel's
// TCP D-SACK or retransmission notes on loopback, are not the dissected protocol's problems
// and are left out, so the check does not flake on a busy machine.
func ExpertProblems(t testing.TB, tshark, pcap string, protos ...string) []string {
	t.Helper()
	out, err := Run(t, 60*time.Second, tshark, "-r", pcap, "-q", "-z", "expert,warn")
	if err != nil {
		t.Fatalf("tshark expert info: %v", err)
	}
	var bad []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || strings.Trim(f[0], "0123456789") != "" {
			continue // not a table row (its first column is the frequency)
		}
		for _, w := range f[1:] {
			if strings.EqualFold(w, "Malformed") || slices.ContainsFunc(protos, func(p string) bool { return strings.EqualFold(p, w) }) {
				bad = append(bad, strings.TrimSpace(line))
				break
			}
		}
	}
	return bad
}

// FreeOffset returns a port offset at which every one of ports is free on the wildcard for
// TCP and UDP right now, for tests that must run a sensor on standard ports plus an offset.
// The offsets keep ports up to 502 below the kernel's ephemeral range (32768 and up), where
// client sockets of other tests could take them between the check and the bind.
func FreeOffset(t testing.TB, ports ...int) int {
	t.Helper()
	if len(ports) == 0 {
		ports = []int{21, 69, 80, 102, 161, 502, 623, 2404, 44818, 47808}
	}
	for range 100 {
		off := 10000 + rand.IntN(32768-10000-1000)
		ok := true
		var closers []func() error
		for _, p := range ports {
			if p+off > 65535 {
				continue
			}
			addr := fmt.Sprintf("0.0.0.0:%d", p+off)
			ln, err := net.Listen("tcp4", addr)
			if err != nil {
				ok = false
				break
			}
			closers = append(closers, ln.Close)
			pc, err := net.ListenPacket("udp4", addr)
			if err != nil {
				ok = false
				break
			}
			closers = append(closers, pc.Close)
		}
		for _, c := range closers {
			c()
		}
		if ok {
			return off
		}
	}
	t.Fatal("protocoltest: no free port offset in 100 tries")
	return 0
}

// Capture starts dumpcap on lo with a capture filter and returns a function that stops it
// once the packets are written (it also runs at cleanup). It returns only after a packet
// that probe sends shows in the file, so no packet of the test is missed; probe is called
// repeatedly, about every 100 ms, for at most 20 s.
func Capture(t testing.TB, dumpcap, filter, file string, probe func()) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	cmd := exec.CommandContext(ctx, dumpcap, "-i", "lo", "-f", filter, "-w", file)
	cmd.WaitDelay = 5 * time.Second
	stderr, err := cmd.StderrPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("dumpcap: %v", err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		once := false
		for sc.Scan() {
			t.Log("dumpcap: " + sc.Text())
			if !once && strings.Contains(sc.Text(), "Capturing on") {
				once = true
				close(ready)
			}
		}
		if !once {
			close(ready)
		}
	}()
	done := false
	stop = func() {
		if done {
			return
		}
		done = true
		time.Sleep(500 * time.Millisecond) // let the last packets reach the capture
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		cancel()
	}
	t.Cleanup(stop)
	select {
	case <-ready:
	case <-time.After(20 * time.Second):
		t.Fatal("dumpcap did not start capturing")
	}
	size := func() int64 {
		st, err := os.Stat(file)
		if err != nil {
			return 0
		}
		return st.Size()
	}
	before := size()
	for deadline := time.Now().Add(20 * time.Second); size() == before; {
		if time.Now().After(deadline) {
			t.Fatal("dumpcap captures nothing")
		}
		probe()
		time.Sleep(100 * time.Millisecond)
	}
	return stop
}

// GrepContext returns the lines of s that contain word, each with the 30 lines before it
// (tshark -V puts the layers above a finding there), at most about 300 lines.
func GrepContext(s, word string) string {
	var out []string
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if strings.Contains(l, word) {
			out = append(out, lines[max(0, i-30):min(len(lines), i+3)]...)
			if len(out) > 300 {
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

// Station names the protocol tests' fixed device: an S7 station with Modbus (a TCP/RS-485
// gateway), SNMP (v1, v2c and v3 users) and a web HMI, kept in protocoltest/testdata so
// protocol tests do not change whenever an embedded persona is made more lifelike. Profile
// resolves it.
const Station = "station"

// StationDir is the directory of the Station profile.
func StationDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "testdata", "station")
}
