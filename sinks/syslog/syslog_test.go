package syslog

import (
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/events"
	"github.com/icsnare/icsnare/protocols"
)

// testEvent returns event i of a run: a Modbus write (notice), an S7 STOP (warning) or an
// HTTP read (info), with values that need escaping in structured data.
func testEvent(i int) *protocols.Event {
	e := &protocols.Event{
		Time:      time.Date(2026, 11, 29, 15, 4, 5, 123456789, time.UTC).Add(time.Duration(i) * time.Millisecond),
		SessionID: "s" + strconv.Itoa(i),
		Transport: protocols.TCP,
		Src:       netip.MustParseAddrPort("198.51.100.7:40001"),
		Dst:       netip.MustParseAddrPort("[2001:db8::5]:502"),
		Sensor:    "sensor-1",
		Profile:   "default",
		Start:     time.Date(2026, 11, 29, 15, 4, 5, 0, time.UTC),
	}
	switch i % 3 {
	case 0:
		e.Type, e.Protocol = "modbus.request", "modbus"
		e.Request, e.Response = []byte{0, 1, 0, 0, 0, 6, 1, 6, 0, 1, 0, 3}, []byte{0, 1, 0, 0, 0, 6, 1, 6, 0, 1, 0, 3}
		e.Fields = []protocols.Field{protocols.F("unit_id", uint8(1)), protocols.F("function_code", uint8(6)), protocols.F("address", uint16(1))}
	case 1:
		e.Type, e.Protocol = "s7comm.stop", "s7comm"
		e.Request = []byte{3, 0, 0, 0x21}
		e.Fields = []protocols.Field{protocols.F("mode", "STOP"), protocols.F("items", []string{"a]b", `c"d`})}
	default:
		e.Type, e.Protocol, e.Text = "http.request", "http", true
		e.Request = []byte("GET /?q=\"x\"]\\ HTTP/1.1\r\nHost: ü\r\n\r\n")
		e.Fields = []protocols.Field{
			protocols.F("path", `/a "quoted" \ value ] ü	tab`),
			protocols.F("a key with = and spaces and more than thirty-two characters", true),
			protocols.F("ratio", 0.5),
			protocols.F("raw", []byte{0xde, 0xad}),
			protocols.F("invalid", "\xff\xfe"),
		}
	}
	return e
}

// wantParams lists the SD-PARAMs e must arrive with, names and values written out here
// rather than computed by the encoder.
func wantParams(e *protocols.Event, i int) []Param {
	p := []Param{{"event_type", e.Type}, {"session_id", "s" + strconv.Itoa(i)}, {"protocol", e.Protocol}, {"transport", "tcp"},
		{"src_ip", "198.51.100.7"}, {"src_port", "40001"}, {"dst_ip", "2001:db8::5"}, {"dst_port", "502"},
		{"sensor", "sensor-1"}, {"profile", "default"}}
	switch i % 3 {
	case 0:
		p = append(p, Param{"request", "000100000006010600010003"}, Param{"response", "000100000006010600010003"},
			Param{"unit_id", "1"}, Param{"function_code", "6"}, Param{"address", "1"})
	case 1:
		p = append(p, Param{"request", "03000021"}, Param{"mode", "STOP"}, Param{"items", `["a]b","c\"d"]`})
	default:
		p = append(p, Param{"request", "GET /?q=\"x\"]\\ HTTP/1.1\r\nHost: ü\r\n\r\n"},
			Param{"path", `/a "quoted" \ value ] ü	tab`},
			Param{"a_key_with___and_spaces_and_more", "true"},
			Param{"ratio", "0.5"}, Param{"raw", "dead"}, Param{"invalid", "\ufffd\ufffd"})
	}
	return p
}

// wantSeverity is each test event's severity under the default rules.
func wantSeverity(i int) int {
	return []int{5, 4, 6}[i%3] // notice (a Modbus write), warning (S7 STOP), info (an HTTP read)
}

func openSink(t *testing.T, mod func(*Options)) *Sink {
	t.Helper()
	o := DefaultOptions()
	mod(o)
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	s, err := Open(o, events.Env{SensorID: "sensor-1", Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// checkReceived compares what rsyslog received with the events sent, field by field:
// rsyslog's own parse of the header, and the structured data parsed back from both
// rsyslog's STRUCTURED-DATA property and the raw message.
func checkReceived(t *testing.T, got []received, first, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("received %d messages, want %d", len(got), n)
	}
	for k, r := range got {
		i := first + k
		e := testEvent(i)
		if r.Ver != "1" || r.App != "icsnare" || r.Host != "sensor-1" || r.MsgID != e.Type {
			t.Errorf("message %d: rsyslog parsed version %q app %q host %q msgid %q", i, r.Ver, r.App, r.Host, r.MsgID)
		}
		if want := strconv.Itoa(16*8 + wantSeverity(i)); r.Pri != want {
			t.Errorf("message %d (%s): PRI %s, want %s (local0, severity %d)", i, e.Type, r.Pri, want, wantSeverity(i))
		}
		m, err := ParseMessage(r.Raw)
		if err != nil {
			t.Fatalf("message %d: %v: %q", i, err, r.Raw)
		}
		sd, rest, err := ParseStructuredData(r.SD)
		if err != nil || rest != "" {
			t.Fatalf("message %d: rsyslog's STRUCTURED-DATA %q: %v (rest %q)", i, r.SD, err, rest)
		}
		for _, els := range [][]Element{m.SD, sd} {
			if len(els) != 1 || els[0].ID != "icsnare@32473" {
				t.Fatalf("message %d: SD elements %+v", i, els)
			}
			want := wantParams(e, i)
			if len(els[0].Params) != len(want) {
				t.Errorf("message %d: %d params, want %d:\n got %q\nwant %q", i, len(els[0].Params), len(want), els[0].Params, want)
				continue
			}
			for j, p := range els[0].Params {
				if p != want[j] {
					t.Errorf("message %d param %d: %q=%q, want %q=%q", i, j, p.Name, p.Value, want[j].Name, want[j].Value)
				}
			}
		}
		if want := e.Type + " 198.51.100.7:40001 -> [2001:db8::5]:502"; r.Msg != want || m.Msg != want {
			t.Errorf("message %d: MSG %q (raw %q), want %q", i, r.Msg, m.Msg, want)
		}
		if ts, err := time.Parse(time.RFC3339Nano, m.Timestamp); err != nil || !ts.Equal(e.Time.Truncate(time.Microsecond)) {
			t.Errorf("message %d: TIMESTAMP %q, want %v", i, m.Timestamp, e.Time)
		}
	}
}

func TestRsyslog(t *testing.T) {
	p := newPKI(t)
	rs := startRsyslog(t, p, 0, 0)
	const n = 30
	for _, tc := range []struct {
		name string
		mod  func(*Options)
	}{
		{"udp", func(o *Options) { o.Transport, o.Address = "udp", rs.udp; o.MaxMessage = 8192 }},
		{"tcp", func(o *Options) { o.Transport, o.Address = "tcp", rs.tcp }},
		{"tls", func(o *Options) {
			o.Transport, o.Address = "tls", rs.tls
			o.CAFile, o.CertFile, o.KeyFile, o.ServerName = p.caFile, p.cliCert, p.cliKey, tlsName
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openSink(t, tc.mod)
			for i := range n {
				if err := s.Write(testEvent(i)); err != nil {
					t.Fatalf("event %d: %v", i, err)
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if st := s.Stats(); st.Sent != n || st.Dropped != 0 || st.Dials != 1 {
				t.Errorf("stats %+v, want %d sent on one connection", st, n)
			}
			got := rs.wait(tc.name, n)
			checkReceived(t, got, 0, n)
			t.Logf("rsyslog received over %s: %q", tc.name, got[0].Raw)
		})
	}
	t.Run("tls refused", func(t *testing.T) { testTLSRefused(t, p, rs) })
	t.Run("udp large", func(t *testing.T) {
		// RFC 5426's 2048 bytes: a large event arrives cut, in one datagram, saying what
		// was cut.
		s := openSink(t, func(o *Options) { o.Transport, o.Address = "udp", rs.udp })
		before := len(rs.read("udp"))
		e := testEvent(2)
		e.Request = []byte(strings.Repeat("A", 10000))
		if err := s.Write(e); err != nil {
			t.Fatal(err)
		}
		s.Close()
		got := rs.wait("udp", before+1)[before]
		m, err := ParseMessage(got.Raw)
		if err != nil || len(got.Raw) > 2048 {
			t.Fatalf("%d bytes: %v", len(got.Raw), err)
		}
		params := m.SD[0].Params
		if last := params[len(params)-1]; last != (Param{"truncated", "request"}) {
			t.Fatalf("last param %q, want truncated=request", last)
		}
		for _, p := range params {
			if p.Name == "request" && (len(p.Value) < 512 || strings.Trim(p.Value, "A") != "") {
				t.Fatalf("request cut to %d bytes: %q", len(p.Value), p.Value)
			}
		}
	})
}

// testTLSRefused: a collector whose certificate the sensor cannot verify (another CA,
// another name) gets nothing, and a collector that refuses the sensor's client certificate
// (none, or one of another CA) is noticed before the first message: the events wait in the
// backlog and the error says why.
func testTLSRefused(t *testing.T, p *pki, rs *rsyslog) {
	before := len(rs.read("tls"))
	for _, tc := range []struct {
		name, want string
		mod        func(*Options)
	}{
		{"other CA", "certificate signed by unknown authority", func(o *Options) { o.CAFile, o.ServerName = p.otherCA, tlsName }},
		{"wrong name", "certificate is valid for syslog.test, not plc.example", func(o *Options) { o.CAFile, o.ServerName = p.caFile, "plc.example" }},
		{"name from the address", "doesn't contain any IP SANs", func(o *Options) { o.CAFile = p.caFile }},
		{"no client certificate", "the collector closed the connection after the TLS handshake", func(o *Options) {
			o.CAFile, o.ServerName, o.CertFile, o.KeyFile = p.caFile, tlsName, "", ""
		}},
		{"client certificate of another CA", "the collector closed the connection after the TLS handshake", func(o *Options) {
			o.CAFile, o.ServerName, o.CertFile, o.KeyFile = p.caFile, tlsName, p.otherCert, p.otherKey
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openSink(t, func(o *Options) {
				o.Transport, o.Address, o.CertFile, o.KeyFile = "tls", rs.tls, p.cliCert, p.cliKey
				o.CloseTimeout = time.Second
				o.DialTimeout, o.TLSWait = 10*time.Second, 5*time.Second // rsyslog's refusal may be slow on a loaded machine
				tc.mod(o)
			})
			if err := s.Write(testEvent(0)); err != nil {
				t.Fatal(err)
			}
			st := s.Stats()
			if st.Sent != 0 || st.Backlog != 1 || st.DialFails != 1 || !strings.Contains(st.LastError, tc.want) {
				t.Fatalf("stats %+v, want the event in the backlog and an error containing %q", st, tc.want)
			}
			if err := s.Close(); err == nil || !strings.Contains(err.Error(), "1 undelivered") {
				t.Fatalf("Close = %v, want the lost event reported", err)
			}
		})
	}
	if got := rs.read("tls"); len(got) != before {
		t.Fatalf("the collector received %d messages", len(got)-before)
	}
}

// TestRsyslogReconnect stops the collector in the middle of a run and starts it again on
// the same ports: the events sent meanwhile wait in the backlog and arrive, every one once
// and in order, after the reconnection.
func TestRsyslogReconnect(t *testing.T) {
	p := newPKI(t)
	rs := startRsyslog(t, p, 0, 0)
	transports := []string{"tcp", "tls"}
	sinks := map[string]*Sink{}
	for _, transport := range transports {
		sinks[transport] = openSink(t, func(o *Options) {
			o.Transport, o.Address = "tcp", rs.tcp
			if transport == "tls" {
				o.Transport, o.Address = "tls", rs.tls
				o.CAFile, o.CertFile, o.KeyFile, o.ServerName = p.caFile, p.cliCert, p.cliKey, tlsName
			}
			o.ReconnectMin, o.ReconnectMax = time.Millisecond, time.Millisecond
		})
	}
	write := func(from, to int) {
		t.Helper()
		for _, transport := range transports {
			for i := from; i < to; i++ {
				if err := sinks[transport].Write(testEvent(i)); err != nil {
					t.Fatalf("%s: %v", transport, err)
				}
			}
		}
	}
	write(0, 10)
	for _, transport := range transports {
		rs.wait(transport, 10)
	}
	rs.stop()
	// The collector's FIN reaches the sensor's sockets when the kernel has processed it
	// (on a loaded machine, a little after rsyslogd exited): wait (bounded) until each sink
	// has seen it, as it would on its next write or Flush.
	for _, transport := range transports {
		waitClosed(t, sinks[transport].Flush, func() string { return sinks[transport].Stats().LastError })
	}
	write(10, 20)
	for _, transport := range transports {
		if st := sinks[transport].Stats(); st.Backlog != 10 || st.Sent != 10 {
			t.Fatalf("%s, with the collector down: stats %+v, want 10 sent and 10 in the backlog", transport, st)
		}
	}
	rs2 := startRsyslog(t, p, rs.tcpPort, rs.tlsPort)
	write(20, 25)
	for _, transport := range transports {
		s := sinks[transport]
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if st := s.Stats(); st.Sent != 25 || st.Dropped != 0 || st.Backlog != 0 || st.Dials != 2 {
			t.Fatalf("%s: stats %+v, want all 25 sent over two connections", transport, st)
		}
		t.Run(transport, func(t *testing.T) {
			checkReceived(t, rs.read(transport), 0, 10)
			checkReceived(t, rs2.wait(transport, 15), 10, 15)
		})
	}
}

// TestBacklogBounded: with no collector, the backlog keeps the newest events within its
// bound and every dropped one is reported.
func TestBacklogBounded(t *testing.T) {
	s := openSink(t, func(o *Options) {
		o.Transport, o.Address = "tcp", rsyslogAddr+":9" // discard: nothing listens there
		o.BacklogMessages = 5
		o.ReconnectMin, o.ReconnectMax = time.Hour, time.Hour
		o.CloseTimeout = time.Second
	})
	var dropped int
	for i := range 12 {
		if err := s.Write(testEvent(i)); err != nil {
			if !strings.Contains(err.Error(), "backlog full") {
				t.Fatalf("event %d: %v", i, err)
			}
			dropped++
		}
	}
	st := s.Stats()
	if dropped != 7 || st.Dropped != 7 || st.Backlog != 5 || s.Spooled() != 5 || st.DialFails != 1 {
		t.Fatalf("%d write errors, stats %+v: want 7 dropped, 5 kept, one dial (the back-off holds the rest)", dropped, st)
	}
	if err := s.Close(); err == nil || !strings.Contains(err.Error(), "5 undelivered") {
		t.Fatalf("Close = %v", err)
	}
	if st := s.Stats(); st.Dropped != 12 {
		t.Fatalf("after Close: %d dropped, want 12", st.Dropped)
	}
}

// waitClosed calls flush until lastError says the peer closed the connection (bounded).
func waitClosed(t *testing.T, flush func() error, lastError func() string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		flush()
		if strings.Contains(lastError(), "the peer closed the connection") {
			return
		}
	}
	t.Fatalf("the sink did not notice the close: last error %q", lastError())
}
