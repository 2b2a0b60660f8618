package sensor

import (
	"context"
	"encoding/json"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/icsnare/icsnare/events"
	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
)

func sampleEvent() *protocols.Event {
	return &protocols.Event{
		Time: time.Date(2026, 11, 21, 10, 0, 0, 123456789, time.UTC), Type: "modbus.request", SessionID: "ab-1",
		Protocol: "modbus", Transport: "tcp", Src: netip.MustParseAddrPort("203.0.113.9:40000"),
		Dst: netip.MustParseAddrPort("[::ffff:198.51.100.7]:502"), Sensor: "s1", Profile: "default",
		Request: []byte{0, 1, 0xff}, Response: []byte{},
		Fields: []protocols.Field{
			protocols.F("unit_id", uint8(1)), protocols.F("odd", "quote\" back\\ nl\n ctl\x01 bad\xff <tag> \u2028"),
			protocols.F("oids", []string{"1.3.6", "1.3.7"}), protocols.F("ratio", 0.5), protocols.F("flag", true),
			protocols.F("nested", map[string]int{"a": 1}),
		},
	}
}

func TestJSONEventEncoding(t *testing.T) {
	var m map[string]any
	line := AppendJSON(nil, sampleEvent())
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	want := map[string]any{
		"timestamp": "2026-11-21T10:00:00.123456789Z", "event_type": "modbus.request", "session_id": "ab-1",
		"src_ip": "203.0.113.9", "src_port": 40000.0, "dst_ip": "198.51.100.7", "dst_port": 502.0,
		"request": "0001ff", "response": "", "unit_id": 1.0, "ratio": 0.5, "flag": true,
		"odd": "quote\" back\\ nl\n ctl\x01 bad\ufffd <tag> \u2028",
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %#v, want %#v", k, m[k], v)
		}
	}
	if o, _ := m["oids"].([]any); len(o) != 2 {
		t.Errorf("oids = %#v", m["oids"])
	}
	if n, _ := m["nested"].(map[string]any); n["a"] != 1.0 {
		t.Errorf("nested = %#v", m["nested"])
	}
	if strings.ContainsAny(string(line), "\n<>") {
		t.Errorf("line holds raw newline or HTML characters: %s", line)
	}
}

// conpotKeys are the keys of every document Conpot's JSON logger writes, in its order.
var conpotKeys = []string{"timestamp", "sensorid", "id", "src_ip", "src_port", "dst_ip", "dst_port", "public_ip",
	"data_type", "request", "response", "event_type"}

func TestConpotEventEncoding(t *testing.T) {
	e := sampleEvent()
	e.Start = time.Date(2026, 11, 21, 9, 59, 58, 5000, time.UTC)
	line := AppendConpotDocument(nil, e, protocols.ConpotEvent{DataType: "modbus", Request: protocols.ConpotHex(e.Request),
		Response: map[string]string{"oid": "1.3.6.1.2.1.1.5.0", "val": "x"}}, "192.0.2.44")
	dec := json.NewDecoder(strings.NewReader(string(line)))
	var keys []string
	dec.Token()
	for dec.More() {
		k, _ := dec.Token()
		keys = append(keys, k.(string))
		var v any
		dec.Decode(&v)
	}
	if strings.Join(keys, ",") != strings.Join(conpotKeys, ",") {
		t.Errorf("keys %v, want exactly %v", keys, conpotKeys)
	}
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	want := map[string]any{"timestamp": "2026-11-21T09:59:58.000005", "sensorid": "s1", "data_type": "modbus",
		"src_ip": "203.0.113.9", "src_port": 40000.0, "dst_ip": "198.51.100.7", "dst_port": 502.0,
		"public_ip": "192.0.2.44", "request": "b'0001ff'", "event_type": nil, "id": SessionUUID("ab-1")}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %#v, want %#v", k, m[k], v)
		}
	}
	if r, _ := m["response"].(map[string]any); r["oid"] != "1.3.6.1.2.1.1.5.0" || r["val"] != "x" {
		t.Errorf("response = %#v", m["response"])
	}
	// Python's isoformat() leaves out a zero fraction.
	e.Start = time.Date(2026, 11, 21, 9, 59, 58, 999, time.UTC)
	if line := AppendConpotDocument(nil, e, protocols.ConpotEvent{EventType: "NEW_CONNECTION"}, ""); !strings.HasPrefix(string(line), `{"timestamp": "2026-11-21T09:59:58", "`) ||
		!strings.Contains(string(line), `"public_ip": null, "data_type": "", "request": null, "response": null, "event_type": "NEW_CONNECTION"}`) {
		t.Errorf("whole-second start or nulls: %s", line)
	}
}

// TestConpotDocumentBytes: a document is byte for byte what Python's json.dumps writes for
// Conpot's dict (the want string is its output for the same values, id aside).
func TestConpotDocumentBytes(t *testing.T) {
	e := &protocols.Event{Start: time.Date(2026, 11, 21, 9, 59, 58, 5000, time.UTC), Sensor: "s1 é<&>\u2028\x01\x7f", SessionID: "ab-1",
		Src: netip.MustParseAddrPort("203.0.113.9:40000"), Dst: netip.MustParseAddrPort("198.51.100.7:502")}
	d := protocols.ConpotEvent{DataType: "snmp", EventType: "SNMPv2 Get",
		Request: map[string]string{"oid": "1.3.6.1.2.1.1.5.0", "val": ""}, Response: map[string]string{"oid": "1.3.6.1.2.1.1.5.0", "val": "x\"é😀\\/"}}
	want := `{"timestamp": "2026-11-21T09:59:58.000005", "sensorid": "s1 \u00e9<&>\u2028\u0001\u007f", "id": "x", "src_ip": "203.0.113.9", "src_port": 40000, "dst_ip": "198.51.100.7", "dst_port": 502, "public_ip": "192.0.2.44", "data_type": "snmp", "request": {"oid": "1.3.6.1.2.1.1.5.0", "val": ""}, "response": {"oid": "1.3.6.1.2.1.1.5.0", "val": "x\"\u00e9\ud83d\ude00\\/"}, "event_type": "SNMPv2 Get"}`
	want = strings.Replace(want, `"id": "x"`, `"id": "`+SessionUUID("ab-1")+`"`, 1)
	if got := string(AppendConpotDocument(nil, e, d, "192.0.2.44")); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

// TestSessionUUID: the id is the version 5 UUID of the session id in icsnare's name space,
// as Python's uuid.uuid5(uuid.UUID("fa52f727-79da-5bfc-92e5-a1dc68c2f715"), "abcd-1")
// computes it.
func TestSessionUUID(t *testing.T) {
	if got := SessionUUID("abcd-1"); got != "ccad3347-1261-5ae4-9239-cbc85154087c" {
		t.Errorf("SessionUUID = %s", got)
	}
	if SessionUUID("abcd-2") == SessionUUID("abcd-1") {
		t.Error("two sessions share a UUID")
	}
}

// TestConpotSessionDocuments: NEW_CONNECTION and CONNECTION_LOST frame a TCP session, and
// a protocol's own document that ends the session (CONNECTION_TERMINATED) replaces the
// sensor's CONNECTION_LOST.
func TestConpotSessionDocuments(t *testing.T) {
	var out strings.Builder
	sink := NewJSONSinkWith("t", &out, nil, JSONOptions{Conpot: true, GID: -1})
	base := protocols.Event{Protocol: "conpot-test", Transport: protocols.TCP, SessionID: "s-1",
		Src: netip.MustParseAddrPort("192.0.2.1:4000"), Dst: netip.MustParseAddrPort("192.0.2.2:502")}
	ev := func(phase, typ string, req []byte) *protocols.Event {
		e := base
		e.Phase, e.Type, e.Request = phase, typ, req
		return &e
	}
	for _, e := range []*protocols.Event{ev(protocols.PhaseStart, "connect", nil), ev("", "conpot-test.request", []byte{1}),
		ev(protocols.PhaseEnd, "disconnect", nil), ev(protocols.PhaseStart, "connect", nil), ev("", "conpot-test.end", nil),
		ev(protocols.PhaseEnd, "disconnect", nil)} {
		if err := sink.Write(e); err != nil {
			t.Fatal(err)
		}
	}
	sink.Flush()
	var types []string
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil || len(m) != 12 || m["data_type"] != "conpot_test" {
			t.Fatalf("%s: %v", line, err)
		}
		typ, _ := m["event_type"].(string)
		types = append(types, typ)
	}
	want := "NEW_CONNECTION,,CONNECTION_LOST,NEW_CONNECTION,CONNECTION_TERMINATED"
	if strings.Join(types, ",") != want {
		t.Errorf("event types %v, want %s", types, want)
	}
}

// conpotTestProtocol ends its session itself on a ".end" event, as Modbus does on a short
// MBAP header.
type conpotTestProtocol struct{}

func (conpotTestProtocol) Name() string { return "conpot-test" }
func (conpotTestProtocol) Configure(*profiles.Section, any) (protocols.Service, error) {
	return nil, nil
}
func (conpotTestProtocol) ConpotSession() protocols.ConpotSession {
	return protocols.ConpotSession{DataType: "conpot_test", Start: protocols.ConpotNewConnection, End: protocols.ConpotConnectionLost}
}
func (conpotTestProtocol) ConpotEvents(e *protocols.Event) []protocols.ConpotEvent {
	if strings.HasSuffix(e.Type, ".end") {
		return []protocols.ConpotEvent{{EventType: protocols.ConpotConnectionTerminated}}
	}
	return []protocols.ConpotEvent{{Request: protocols.ConpotHex(e.Request)}}
}

func init() { protocols.Register(conpotTestProtocol{}) }

// TestEventsFileModeAndGroup: the file gets events.mode and events.group when created, when
// an existing file is opened and when it is reopened after rotation.
func TestEventsFileModeAndGroup(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "events.json")
	gid := os.Getegid()
	if os.Geteuid() == 0 {
		gid = 2000
	}
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// 0664: the usual umask (022) takes the group's write bit away at creation.
	sink, err := OpenJSONSinkWith(path, JSONOptions{Mode: 0o664, GID: gid})
	if err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o664 || int(st.Sys().(*syscall.Stat_t).Gid) != gid {
			t.Errorf("%s: mode %v gid %d, want 0664 and %d", when, st.Mode().Perm(), st.Sys().(*syscall.Stat_t).Gid, gid)
		}
	}
	check("existing file opened")
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := sink.Reopen(); err != nil {
		t.Fatal(err)
	}
	check("created on reopen")
	if err := sink.Write(sampleEvent()); err != nil {
		t.Fatal(err)
	}
	sink.Close()
	if b, _ := os.ReadFile(path); !strings.Contains(string(b), "modbus.request") {
		t.Errorf("reopened file holds %q", b)
	}
}

// blockingSink stalls until released, like a dead collector.
type blockingSink struct {
	release chan struct{}
	mu      sync.Mutex
	n       int
}

func (b *blockingSink) Name() string { return "blocking" }
func (b *blockingSink) Write(*protocols.Event) error {
	<-b.release
	b.mu.Lock()
	b.n++
	b.mu.Unlock()
	return nil
}
func (b *blockingSink) Flush() error { return nil }
func (b *blockingSink) Close() error { return nil }

func TestSlowSinkNeverBlocksEmitters(t *testing.T) {
	sink := &blockingSink{release: make(chan struct{})}
	bus := NewBus(8, sink)
	ctx, cancel := context.WithCancel(context.Background())
	go bus.Run(ctx, time.Second)
	done := make(chan struct{})
	go func() {
		for i := 0; i < 1000; i++ {
			bus.Emit(sampleEvent())
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Emit blocked behind a stalled sink")
	}
	// At most the queue (8) plus the one event the sink holds got through; the rest dropped.
	if d := bus.Dropped(); d < 1000-9 {
		t.Fatalf("dropped %d of 1000 with a queue of 8", d)
	}
	close(sink.release)
	cancel()
	bus.Wait()
	if got := int64(sink.n) + bus.Dropped(); got != 1000 {
		t.Fatalf("written %d + dropped %d != 1000", sink.n, bus.Dropped())
	}
}

// TestConpotEndedSessionsBounded: sessions ended by a protocol's document whose sensor end
// event never comes (dropped on a full queue) do not grow the sink's memory without bound.
func TestConpotEndedSessionsBounded(t *testing.T) {
	sink := NewJSONSinkWith("t", io.Discard, nil, JSONOptions{Conpot: true, GID: -1})
	e := &protocols.Event{Protocol: "conpot-test", Transport: protocols.TCP, Type: "conpot-test.end"}
	for i := range events.MaxEndedSessions + 10 {
		e.SessionID = strconv.Itoa(i)
		if err := sink.Write(e); err != nil {
			t.Fatal(err)
		}
		if sink.conpot.Remembered() > events.MaxEndedSessions {
			t.Fatalf("%d ended sessions remembered", sink.conpot.Remembered())
		}
	}
	// A session end the sink has seen is forgotten at once.
	e.SessionID = "last"
	sink.Write(e) // its protocol's document ends it
	e.Phase, e.Type = protocols.PhaseEnd, "disconnect"
	n := sink.conpot.Remembered()
	sink.Write(e)
	if sink.conpot.Remembered() != n-1 {
		t.Errorf("ended sessions %d after the end of one of %d", sink.conpot.Remembered(), n)
	}
}

// TestEventsFileModeUnset: without events.mode an existing file keeps its mode and a new
// one is created 0640.
func TestEventsFileModeUnset(t *testing.T) {
	dir := t.TempDir()
	old, fresh := filepath.Join(dir, "old.json"), filepath.Join(dir, "new.json")
	os.WriteFile(old, nil, 0o604)
	os.Chmod(old, 0o604)
	for _, p := range []string{old, fresh} {
		s, err := OpenJSONSinkWith(p, JSONOptions{GID: -1})
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	for p, want := range map[string]os.FileMode{old: 0o604, fresh: 0o640 &^ umask()} {
		if st, _ := os.Stat(p); st.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", p, st.Mode().Perm(), want)
		}
	}
}

// umask reads the process's umask without changing it.
func umask() os.FileMode {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Umask:"); ok {
			m, _ := strconv.ParseUint(strings.TrimSpace(v), 8, 32)
			return os.FileMode(m)
		}
	}
	return 0o022
}
