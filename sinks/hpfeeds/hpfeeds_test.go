package hpfeeds

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/icsnare/icsnare/events"
	"github.com/icsnare/icsnare/protocols"
	_ "github.com/icsnare/icsnare/protocols/modbus" // Conpot documents of Modbus events
)

var testUsers = map[string]user{
	"sensor-1": {secret: "s3cr3t", publish: []string{"icsnare.*"}},
	"reader":   {secret: "r34d"},
	"limited":  {secret: "l1m", publish: []string{"icsnare.modbus.*"}},
}

func testEvent(i int) *protocols.Event {
	e := &protocols.Event{
		Time:      time.Date(2026, 11, 29, 15, 4, 5, 0, time.UTC).Add(time.Duration(i) * time.Millisecond),
		SessionID: "sess-" + strconv.Itoa(i/3),
		Transport: protocols.TCP,
		Src:       netip.MustParseAddrPort("198.51.100.7:40001"),
		Dst:       netip.MustParseAddrPort("192.0.2.5:502"),
		Sensor:    "sensor-1",
		Profile:   "default",
		Start:     time.Date(2026, 11, 29, 15, 4, 5, 250000000, time.UTC),
	}
	switch i % 3 {
	case 0:
		e.Type, e.Protocol, e.Phase = "modbus.connect", "modbus", protocols.PhaseStart
	case 1:
		e.Type, e.Protocol = "modbus.request", "modbus"
		e.Request, e.Response = []byte{0, 1, 0, 0, 0, 6, 1, 6, 0, 1, 0, 3}, []byte{0, 1, 0, 0, 0, 6, 1, 6, 0, 1, 0, 3}
		e.Fields = []protocols.Field{protocols.F("unit_id", uint8(1)), protocols.F("function_code", uint8(6)),
			protocols.F("note", "ü \"q\" \x00")}
	default:
		e.Type, e.Protocol, e.Phase = "modbus.disconnect", "modbus", protocols.PhaseEnd
	}
	return e
}

type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func openSink(t *testing.T, addr string, mod func(*Options)) (*Sink, *logBuf) {
	t.Helper()
	o := DefaultOptions()
	o.Address, o.Ident, o.Secret = addr, "sensor-1", "s3cr3t"
	if mod != nil {
		mod(o)
	}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	lb := &logBuf{}
	s, err := Open(o, events.Env{SensorID: "sensor-1", Logger: slog.New(slog.NewTextHandler(lb, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("sink log:\n%s", lb.String())
		}
	})
	return s, lb
}

// TestPublishIcsnare: every event arrives on its channels, the payload byte for byte the
// icsnare JSON of the event, from the sink's ident; a subscriber of the broker gets them too.
func TestPublishIcsnare(t *testing.T) {
	b := startBroker(t, "", testUsers)
	sub := subscribe(t, b.addr(), "reader", "r34d", "icsnare.events")
	b.waitSubscribed("icsnare.events")
	s, _ := openSink(t, b.addr(), func(o *Options) { o.Channels = []string{"icsnare.events", "icsnare.{type}"} })
	const n = 9
	for i := range n {
		if err := s.Write(testEvent(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	got := b.wait(2 * n)
	for i := range n {
		e := testEvent(i)
		want := events.AppendJSON(nil, e)
		for k, ch := range []string{"icsnare.events", "icsnare." + e.Type} {
			p := got[2*i+k]
			if p.Ident != "sensor-1" || p.Channel != ch || !bytes.Equal(p.Payload, want) {
				t.Errorf("publication %d: %s on %s: %s\nwant sensor-1 on %s: %s", 2*i+k, p.Ident, p.Channel, p.Payload, ch, want)
			}
			var m map[string]any
			if err := json.Unmarshal(p.Payload, &m); err != nil || m["event_type"] != e.Type || m["session_id"] != e.SessionID {
				t.Errorf("publication %d does not parse back: %v %v", 2*i+k, err, m)
			}
		}
	}
	for i, p := range sub.wait(t, n) {
		if want := events.AppendJSON(nil, testEvent(i)); p.Channel != "icsnare.events" || !bytes.Equal(p.Payload, want) {
			t.Errorf("subscriber got %s %s, want %s", p.Channel, p.Payload, want)
		}
	}
	if st := s.Stats(); st.Sent != 2*n || st.Dials != 1 || st.Dropped != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestPublishConpot: the conpot format publishes Conpot's hpfeeds record of each Conpot
// document (NEW_CONNECTION, the request, CONNECTION_LOST) on conpot.events.
func TestPublishConpot(t *testing.T) {
	b := startBroker(t, "", map[string]user{"sensor-1": {secret: "s3cr3t", publish: []string{"conpot.events"}}})
	s, _ := openSink(t, b.addr(), func(o *Options) {
		o.Format, o.Channels, o.PublicIP = FormatConpot, []string{"conpot.events"}, "203.0.113.9"
	})
	for i := range 3 {
		if err := s.Write(testEvent(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	got := b.wait(3)
	uuid := string(events.AppendSessionUUID(nil, "sess-0"))
	head := `{"id": "` + uuid + `", "remote": ["198.51.100.7", 40001], "src_ip": "198.51.100.7", "src_port": 40001, ` +
		`"local": ["192.0.2.5", 502], "dst_ip": "192.0.2.5", "dst_port": 502, "data_type": "modbus", ` +
		`"timestamp": "2026-11-29T15:04:05.250000", "public_ip": "203.0.113.9", "data": `
	want := []string{
		head + `{"type": "NEW_CONNECTION"}}`,
		head + `{"request": "b'000100000006010600010003'", "response": "b'0600010003'"}}`,
		head + `{"type": "CONNECTION_LOST"}}`,
	}
	for i, p := range got {
		if p.Channel != "conpot.events" || string(p.Payload) != want[i] {
			t.Errorf("publication %d on %s:\n got %s\nwant %s", i, p.Channel, p.Payload, want[i])
		}
		var m map[string]any
		if err := json.Unmarshal(p.Payload, &m); err != nil {
			t.Errorf("publication %d: %v", i, err)
		}
	}
}

// TestAuthFailure: a wrong secret or an unknown ident gets the broker's OP_ERROR, which the
// sink reports (a log line naming broker, ident and the broker's words, and LastError);
// the events wait in the backlog and Close reports them lost.
func TestAuthFailure(t *testing.T) {
	b := startBroker(t, "", testUsers)
	for _, tc := range []struct{ name, ident, secret string }{
		{"wrong secret", "sensor-1", "guess"},
		{"unknown ident", "nobody", "s3cr3t"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, lb := openSink(t, b.addr(), func(o *Options) {
				o.Ident, o.Secret, o.CloseTimeout = tc.ident, tc.secret, 500*time.Millisecond
				o.DialTimeout, o.AuthWait = 10*time.Second, 5*time.Second // the refusal may be slow on a loaded machine
			})
			for i := range 3 {
				if err := s.Write(testEvent(i)); err != nil {
					t.Fatal(err)
				}
			}
			st := s.Stats()
			want := `hpfeeds broker "icsnare-test-broker" refused ident "` + tc.ident + `": Authentication failed for ` + tc.ident + ` (check ident and secret)`
			if st.Sent != 0 || st.Backlog != 3 || st.DialFails != 1 || !strings.Contains(st.LastError, want) {
				t.Fatalf("stats %+v, want 3 in the backlog and LastError %q", st, want)
			}
			if log := lb.String(); !strings.Contains(log, "hpfeeds authentication failed") || !strings.Contains(log, "Authentication failed for "+tc.ident) {
				t.Fatalf("log does not report the refusal:\n%s", log)
			}
			if err := s.Close(); err == nil || !strings.Contains(err.Error(), "3 undelivered") || !strings.Contains(err.Error(), "Authentication failed") {
				t.Fatalf("Close = %v, want 3 lost events and the reason", err)
			}
		})
	}
	if got := b.publications(); len(got) != 0 {
		t.Fatalf("the broker accepted %d publications", len(got))
	}
}

// TestAccessFail: a channel the ident may not publish to gets an OP_ERROR from the broker,
// which closes the connection: the sink reads the error before its next publish, counts and
// logs it, and publishes the next events on a new connection instead of into the closing one.
func TestAccessFail(t *testing.T) {
	b := startBroker(t, "", testUsers)
	s, lb := openSink(t, b.addr(), func(o *Options) {
		o.Ident, o.Secret, o.Channels = "limited", "l1m", []string{"icsnare.{type}"}
		o.ReconnectMin, o.ReconnectMax = time.Millisecond, time.Millisecond
	})
	forbidden := testEvent(1)
	forbidden.Type = "forbidden.request"
	if err := s.Write(forbidden); err != nil {
		t.Fatal(err)
	}
	// The broker's answer arrives when it arrives; Flush looks at the connection (as a
	// publish does first).
	for deadline := time.Now().Add(10 * time.Second); s.Stats().BrokerErrors == 0 && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		s.Flush()
	}
	st := s.Stats()
	want := "Authkey not allowed to pub here. ident=limited, chan=icsnare.forbidden.request"
	if st.BrokerErrors != 1 || st.BrokerError != want {
		t.Fatalf("stats %+v, want the broker's refusal %q counted", st, want)
	}
	if log := lb.String(); !strings.Contains(log, "refused a publish") {
		t.Fatalf("log:\n%s", log)
	}
	for i := range 3 {
		if err := s.Write(testEvent(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	got := b.wait(3)
	for i, p := range got {
		if want := events.AppendJSON(nil, testEvent(i)); !bytes.Equal(p.Payload, want) {
			t.Errorf("publication %d: %s", i, p.Payload)
		}
	}
	if st := s.Stats(); st.Dials != 2 || st.Sent != 4 {
		t.Errorf("stats %+v, want the later events on a second connection", st)
	}
}

// TestReconnect stops the broker in the middle of a run and starts it again: the events
// published meanwhile wait in the backlog and arrive after the reconnection, all of them,
// once each, in order.
func TestReconnect(t *testing.T) {
	b := startBroker(t, "", testUsers)
	s, _ := openSink(t, b.addr(), func(o *Options) { o.ReconnectMin, o.ReconnectMax = time.Millisecond, time.Millisecond })
	for i := range 10 {
		if err := s.Write(testEvent(i)); err != nil {
			t.Fatal(err)
		}
	}
	b.wait(10)
	b.stop()
	// The broker's FIN reaches the sink's socket when the kernel has processed it: wait
	// (bounded) until the sink has seen it, as it would on its next publish or Flush.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(s.Stats().LastError, "the peer closed the connection"); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the sink did not notice the broker's close: %+v", s.Stats())
		}
		s.Flush()
	}
	for i := 10; i < 20; i++ {
		if err := s.Write(testEvent(i)); err != nil {
			t.Fatal(err)
		}
	}
	if st := s.Stats(); st.Backlog != 10 || st.Sent != 10 {
		t.Fatalf("with the broker down: stats %+v, want 10 sent, 10 waiting", st)
	}
	b2 := startBroker(t, b.addr(), testUsers)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	got := append(b.publications(), b2.wait(10)...)
	if len(got) != 20 {
		t.Fatalf("%d publications, want 20", len(got))
	}
	for i, p := range got {
		if want := events.AppendJSON(nil, testEvent(i)); !bytes.Equal(p.Payload, want) {
			t.Errorf("publication %d: %s, want %s", i, p.Payload, want)
		}
	}
}

// TestBacklogBounded: with no broker, the backlog keeps the newest messages within its
// bound and reports every one it drops.
func TestBacklogBounded(t *testing.T) {
	s, _ := openSink(t, brokerAddr+":9", func(o *Options) {
		o.BacklogMessages, o.ReconnectMin, o.ReconnectMax, o.CloseTimeout = 4, time.Hour, time.Hour, 200*time.Millisecond
	})
	fails := 0
	for i := range 10 {
		if err := s.Write(testEvent(i)); err != nil {
			fails++
		}
	}
	if st := s.Stats(); fails != 6 || st.Dropped != 6 || s.Spooled() != 4 {
		t.Fatalf("%d failed writes, stats %+v: want 6 dropped and 4 kept", fails, st)
	}
	if err := s.Close(); err == nil {
		t.Fatal("Close lost 4 events without an error")
	}
}

// subscriber is a second hpfeeds client of the test broker.
type subscriber struct {
	c    net.Conn
	mu   sync.Mutex
	got  []publication
	done chan struct{}
}

func subscribe(t *testing.T, addr, ident, secret, channel string) *subscriber {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	op, p, _, err := ReadMessage(c, nil, MaxMessage)
	if err != nil || op != OpInfo {
		t.Fatalf("OP_INFO: %d %v", op, err)
	}
	_, nonce, err := ParseInfo(p)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := AppendAuth(nil, ident, nonce, secret)
	sp, _ := appendString(nil, ident)
	msg, _ = AppendMessage(msg, OpSubscribe, append(sp, channel...))
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	s := &subscriber{c: c, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		var buf []byte
		for {
			op, p, nb, err := ReadMessage(c, buf, MaxMessage)
			buf = nb
			if err != nil {
				return
			}
			if op == OpPublish {
				i, ch, data, err := ParsePublish(p)
				if err == nil {
					s.mu.Lock()
					s.got = append(s.got, publication{i, ch, append([]byte(nil), data...)})
					s.mu.Unlock()
				}
			}
		}
	}()
	t.Cleanup(func() { c.Close(); <-s.done })
	return s
}

func (s *subscriber) wait(t *testing.T, n int) []publication {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		s.mu.Lock()
		got := append([]publication(nil), s.got...)
		s.mu.Unlock()
		if len(got) >= n {
			return got
		}
	}
	t.Fatalf("the subscriber received fewer than %d publications", n)
	return nil
}
