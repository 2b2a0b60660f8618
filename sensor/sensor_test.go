package sensor

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
)

// echoProto is a test protocol: TCP answers each line with the host's identity, "panic"
// panics; UDP answers each datagram the same way.
type echoProto struct{}

func (echoProto) Name() string { return "echotest" }
func (echoProto) Configure(sec *profiles.Section, _ any) (protocols.Service, error) {
	sec.CheckChildren(sec.Root, "greeting")
	g, _ := sec.Root.ChildText("greeting")
	return &echoService{greeting: g}, nil
}

type echoService struct{ greeting string }

func (e *echoService) Endpoints() []protocols.Endpoint {
	return []protocols.Endpoint{{Transport: protocols.TCP, Port: 7}, {Transport: protocols.UDP, Port: 7}}
}

func (e *echoService) answer(s *protocols.Session, line string) string {
	name, err := s.Host.Databus.GetString("name")
	if err != nil {
		name = err.Error()
	}
	return fmt.Sprintf("%s %s %s %s", e.greeting, s.Host.Addr, name, line)
}

func (e *echoService) ServeConn(ctx context.Context, s *protocols.Session, c net.Conn) {
	r := bufio.NewReaderSize(io.LimitReader(c, 1<<16), 512)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimSpace(line)
		if line == "panic" {
			panic("test panic")
		}
		resp := e.answer(s, line) + "\n"
		s.Request("line", false)
		s.EmitText("request", []byte(line), []byte(resp), protocols.F("length", len(line)))
		if _, err := c.Write([]byte(resp)); err != nil {
			return
		}
	}
}

func (e *echoService) ServePacket(ctx context.Context, s *protocols.Session, req []byte, reply func([]byte)) {
	s.Request("datagram", false)
	if string(req) == "nop" { // allocates nothing: TestDatagramPathNoAllocs
		reply(nopAnswer)
		return
	}
	reply([]byte(e.answer(s, string(req))))
}

var nopAnswer = []byte("nop")

// RepliesPromptly implements protocols.PromptReplier: every datagram is answered before
// ServePacket returns.
func (e *echoService) RepliesPromptly() bool { return true }

func init() { protocols.Register(echoProto{}) }

func writeProfile(t *testing.T, greeting string) string {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "echotest"), 0o755)
	os.WriteFile(filepath.Join(dir, "template.xml"), []byte(`<core><template><entity name="unit">T</entity></template>
<databus><key_value_mappings><key name="name"><value type="value">"dev-" + str(random.randint(0, 1000000))</value></key></key_value_mappings></databus></core>`), 0o644)
	os.WriteFile(filepath.Join(dir, "echotest", "echotest.xml"), []byte(`<echotest enabled="True"><greeting>`+greeting+`</greeting></echotest>`), 0o644)
	return dir
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

type running struct {
	s      *Sensor
	port   int
	events *syncBuffer
	stop   func()
}

// startSensor runs a sensor with two profiles on the two halves of a 127/8 /24 (every
// 127/8 address is local, so no namespace is needed).
func startSensor(t *testing.T, mutate func(*Config)) *running {
	t.Helper()
	cfg := DefaultConfig()
	net24 := fmt.Sprintf("127.%d.%d", 100+rand.IntN(100), rand.IntN(256))
	cfg.Hosts = []HostRule{
		{Addresses: []string{net24 + ".0/25"}, Profile: writeProfile(t, "alpha")},
		{Addresses: []string{net24 + ".128/25"}, Profile: writeProfile(t, "bravo")},
	}
	cfg.Privileges.User = ""
	cfg.Metrics.Listen = ""
	if mutate != nil {
		mutate(&cfg)
	}
	ev := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	s, cfg := newBound(t, ctx, cfg, func() int { return 20000 + rand.IntN(30000) },
		func(s *Sensor) { s.SetBus(NewBus(1024, NewJSONSink("test", ev, nil, false))) })
	done := make(chan struct{})
	go func() { s.Run(ctx, nil); close(done) }()
	r := &running{s: s, port: 7 + cfg.Bind.PortOffset, events: ev}
	r.stop = func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("sensor did not stop within 5 s")
		}
	}
	t.Cleanup(r.stop)
	t.Setenv("ICSNARE_TEST_NET", net24)
	return r
}

func (r *running) addr(t *testing.T, last int) string {
	return fmt.Sprintf("%s.%d:%d", os.Getenv("ICSNARE_TEST_NET"), last, r.port)
}

func dialLine(t *testing.T, addr, line string) (string, error) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Write([]byte(line + "\n")); err != nil {
		return "", err
	}
	resp, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(resp), err
}

func TestDispatchOnDestinationAddress(t *testing.T) {
	r := startSensor(t, nil)
	seen := map[string]string{}
	for _, tc := range []struct {
		last     int
		greeting string
	}{{5, "alpha"}, {6, "alpha"}, {126, "alpha"}, {129, "bravo"}, {200, "bravo"}, {254, "bravo"}} {
		resp, err := dialLine(t, r.addr(t, tc.last), "hello")
		if err != nil {
			t.Fatalf(".%d: %v", tc.last, err)
		}
		f := strings.Fields(resp)
		if len(f) != 4 || f[0] != tc.greeting || !strings.HasSuffix(f[1], fmt.Sprintf(".%d", tc.last)) || f[3] != "hello" {
			t.Fatalf(".%d answered %q", tc.last, resp)
		}
		if other, dup := seen[f[2]]; dup {
			t.Errorf("hosts %s and .%d share the identity %s", other, tc.last, f[2])
		}
		seen[f[2]] = f[1]
		again, _ := dialLine(t, r.addr(t, tc.last), "hello")
		if again != resp {
			t.Errorf("identity of .%d changed between connections: %q then %q", tc.last, resp, again)
		}
	}
	// Outside the prefix: the connection is accepted by the wildcard socket and closed at once.
	other := strings.Replace(r.addr(t, 1), os.Getenv("ICSNARE_TEST_NET"), "127.99.99", 1)
	if resp, err := dialLine(t, other, "hello"); err == nil {
		t.Fatalf("address outside the rules answered %q", resp)
	}
}

func TestUDPRepliesFromTheEmulatedAddress(t *testing.T) {
	r := startSensor(t, func(c *Config) {
		c.Hosts = append(c.Hosts, HostRule{Addresses: []string{"::1"}, Profile: c.Hosts[0].Profile})
	})
	for _, dstText := range []string{r.addr(t, 9), r.addr(t, 199), fmt.Sprintf("[::1]:%d", r.port)} {
		dst := netip.MustParseAddrPort(dstText)
		local := netip.MustParseAddr("127.0.0.1")
		if dst.Addr().Is6() {
			local = netip.IPv6Loopback()
		}
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(local, 0)))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := c.WriteToUDPAddrPort([]byte("ping"), dst); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 512)
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("no reply from %s: %v", dst, err)
		}
		if from != dst {
			t.Fatalf("reply came from %s, want %s", from, dst)
		}
		if f := strings.Fields(string(buf[:n])); len(f) != 4 || f[3] != "ping" {
			t.Fatalf("reply %q", buf[:n])
		}
	}
}

func TestPanicClosesOnlyItsConnection(t *testing.T) {
	r := startSensor(t, nil)
	keep, err := net.Dial("tcp", r.addr(t, 3))
	if err != nil {
		t.Fatal(err)
	}
	defer keep.Close()
	if _, err := dialLine(t, r.addr(t, 3), "panic"); err == nil {
		t.Fatal("a panicking handler answered")
	}
	keep.SetDeadline(time.Now().Add(3 * time.Second))
	fmt.Fprintf(keep, "still\n")
	if line, err := bufio.NewReader(keep).ReadString('\n'); err != nil || !strings.Contains(line, "still") {
		t.Fatalf("other connection broken after a panic: %q %v", line, err)
	}
	if got := counterValue(t, r.s, "icsnare_handler_panics_total"); got != 1 {
		t.Fatalf("panics counted = %v, want 1", got)
	}
}

func TestConnectionCaps(t *testing.T) {
	r := startSensor(t, func(c *Config) { c.Limits.MaxConnsPerHost = 3 })
	var held []net.Conn
	for i := 0; i < 3; i++ {
		c, err := net.Dial("tcp", r.addr(t, 10))
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		// A round trip makes sure the sensor has accepted and counted it.
		fmt.Fprintf(c, "x\n")
		c.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := dialLine(t, r.addr(t, 10), "fourth"); err == nil {
		t.Fatal("a fourth connection to a host capped at 3 was served")
	}
	if resp, err := dialLine(t, r.addr(t, 11), "other"); err != nil {
		t.Fatalf("another host refused while the first was at its cap: %v", err)
	} else if !strings.HasSuffix(resp, "other") {
		t.Fatalf("other host answered %q", resp)
	}
	held[0].Close()
	deadline := time.Now().Add(3 * time.Second)
	for {
		if _, err := dialLine(t, r.addr(t, 10), "again"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("slot not released after a connection closed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, c := range held[1:] {
		c.Close()
	}
}

func TestEventsAreFlatJSONLines(t *testing.T) {
	r := startSensor(t, nil)
	if _, err := dialLine(t, r.addr(t, 20), "abc"); err != nil {
		t.Fatal(err)
	}
	r.stop()
	var types []string
	for _, line := range strings.Split(strings.TrimSpace(r.events.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not JSON: %q: %v", line, err)
		}
		for _, k := range []string{"timestamp", "event_type", "session_id", "protocol", "transport", "src_ip", "src_port", "dst_ip", "dst_port", "sensor", "profile"} {
			if _, ok := m[k]; !ok {
				t.Fatalf("event lacks %s: %s", k, line)
			}
		}
		if _, err := time.Parse(time.RFC3339Nano, m["timestamp"].(string)); err != nil {
			t.Fatalf("timestamp: %v", err)
		}
		types = append(types, m["event_type"].(string))
		if m["event_type"] == "echotest.request" && (m["request"] != "abc" || m["length"] != 3.0 || !strings.HasSuffix(m["dst_ip"].(string), ".20")) {
			t.Fatalf("request event wrong: %s", line)
		}
	}
	if strings.Join(types, " ") != "echotest.connect echotest.request echotest.disconnect" {
		t.Fatalf("event types = %v", types)
	}
}

func TestShutdownClosesConnectionsQuickly(t *testing.T) {
	r := startSensor(t, nil)
	c, err := net.Dial("tcp", r.addr(t, 30))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "x\n")
	c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	br.ReadString('\n')
	r.stop()
	if _, err := br.ReadString('\n'); err == nil {
		t.Fatal("connection still open after shutdown")
	}
}

func counterValue(t *testing.T, s *Sensor, name string) float64 {
	t.Helper()
	mfs, err := s.m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}
