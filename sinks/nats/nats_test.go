package nats

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/icsnare/icsnare/events"
	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

func TestToken(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"plant-1", "plant-1"},
		{"", "_"},
		{"a.b", "a_b"},
		{"..", "__"},
		{"x*y>z", "x_y_z"},
		{"sp ace\ttab", "sp_ace_tab"},
		{"../../etc", "______etc"},
		{"ünï", "__n__"},
		{strings.Repeat("a", 100), strings.Repeat("a", 64)},
	} {
		if got := Token(c.in); got != c.want {
			t.Errorf("Token(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestSubject(t *testing.T) {
	for _, c := range []struct{ prefix, sensor, typ, want string }{
		{"icsnare", "plant-1", "modbus.request", "icsnare.plant-1.modbus.request"},
		{"org.ics", "a.b", "s7comm.connect", "org.ics.a_b.s7comm.connect"},
		{"icsnare", "", "", "icsnare._._"},
		{"icsnare", "s", "x..y", "icsnare.s.x._.y"},
		{"icsnare", "s", "a.b.c.d.e.f.g.h.i.j", "icsnare.s.a.b.c.d.e.f.g.h_i_j"},
		{"icsnare", "s", "modbus.>", "icsnare.s.modbus._"},
	} {
		if got := Subject(c.prefix, c.sensor, c.typ); got != c.want {
			t.Errorf("Subject(%q, %q, %q) = %q, want %q", c.prefix, c.sensor, c.typ, got, c.want)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(*Options)
		want string // "" valid
	}{
		{"defaults", func(*Options) {}, ""},
		{"two servers", func(o *Options) { o.Servers = []string{"nats://a:4222", "tls://b:4222"} }, ""},
		{"no servers", func(o *Options) { o.Servers = nil }, "servers"},
		{"http server", func(o *Options) { o.Servers = []string{"http://a"} }, "nats:// or tls://"},
		{"no host", func(o *Options) { o.Servers = []string{"nats://"} }, "no host"},
		{"wildcard prefix", func(o *Options) { o.SubjectPrefix = "ics.>" }, "subject_prefix"},
		{"empty prefix token", func(o *Options) { o.SubjectPrefix = "a..b" }, "subject_prefix"},
		{"stream with dot", func(o *Options) { o.Stream = "A.B" }, "stream"},
		{"stream empty", func(o *Options) { o.Stream = "" }, "stream"},
		{"replicas", func(o *Options) { o.Replicas = 7 }, "replicas"},
		{"in flight", func(o *Options) { o.MaxInFlight = 0 }, "max_in_flight"},
		{"buffer", func(o *Options) { o.Buffer = 1 << 30 }, "buffer"},
		{"ack timeout", func(o *Options) { o.AckTimeout = 0 }, "ack_timeout"},
		{"segment", func(o *Options) { o.SpoolSegmentBytes = 10 }, "spool_segment_bytes"},
		{"spool below segment", func(o *Options) { o.SpoolMaxBytes = o.SpoolSegmentBytes - 1 }, "spool_max_bytes"},
		{"two credentials", func(o *Options) { o.Creds, o.Token = "a.creds", "t" }, "at most one"},
		{"password alone", func(o *Options) { o.Password = "p" }, "password without user"},
		{"cert without key", func(o *Options) { o.TLSCert = "c.pem" }, "tls_cert and tls_key"},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := DefaultOptions()
			c.edit(o)
			err := o.Validate()
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("Validate = %v, want an error about %q", err, c.want)
			}
		})
	}
}

func TestSeqNeverRepeats(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seq")
	now := time.Unix(1_700_000_000, 0)
	s, err := openSeq(path, now)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := s.take()
	if first != uint64(now.UnixMicro()) {
		t.Fatalf("a new sequence starts at %d, want the time in microseconds %d", first, now.UnixMicro())
	}
	var last uint64
	for range seqBlock + 10 { // crosses a reservation
		if last, err = s.take(); err != nil {
			t.Fatal(err)
		}
	}
	// no close: a crash; the next run must go on after everything handed out
	s2, err := openSeq(path, now.Add(-time.Hour)) // a clock that went back changes nothing
	if err != nil {
		t.Fatal(err)
	}
	next, _ := s2.take()
	if next <= last {
		t.Fatalf("after a restart the sequence gave %d, but %d was handed out before", next, last)
	}
	if err := os.WriteFile(path, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := openSeq(path, now); err == nil {
		t.Fatal("a damaged sequence file was accepted")
	}
}

func rec(i int) *record {
	return &record{id: fmt.Sprintf("s-%d", i), subject: "icsnare.s.x", data: []byte(fmt.Sprintf(`{"n":%d}`, i))}
}

// readAll reads the spool from its read cursor, acknowledging the first ack records.
func readAll(t *testing.T, sp *spool, ack int) []string {
	t.Helper()
	var ids []string
	for {
		r, err := sp.next()
		if err != nil {
			t.Fatal(err)
		}
		if r == nil {
			return ids
		}
		if len(ids) < ack {
			sp.ack(r)
		}
		ids = append(ids, r.id)
	}
}

func TestSpoolKeepsOrderAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	sp, _, err := openSpool(dir, 1<<20, minSegmentBytes)
	if err != nil {
		t.Fatal(err)
	}
	var scratch []byte
	for i := range 3000 { // several segments
		if scratch, err = sp.append(rec(i), scratch); err != nil {
			t.Fatal(err)
		}
	}
	if len(sp.segs) < 2 {
		t.Fatalf("%d segments, want several", len(sp.segs))
	}
	got := readAll(t, sp, 1000)
	if len(got) != 3000 || got[0] != "s-0" || got[2999] != "s-2999" {
		t.Fatalf("read %d records, %v … ", len(got), got[:3])
	}
	if sp.count != 2000 {
		t.Fatalf("count %d after 1000 acks, want 2000", sp.count)
	}
	// the memory of a closing sink goes in front
	if err := sp.prepend([]*record{rec(-2), rec(-1)}); err != nil {
		t.Fatal(err)
	}
	if err := sp.close(); err != nil {
		t.Fatal(err)
	}
	sp, lost, err := openSpool(dir, 1<<20, minSegmentBytes)
	if err != nil || lost != 0 {
		t.Fatalf("reopen: lost %d, %v", lost, err)
	}
	if sp.count != 2002 {
		t.Fatalf("reopened spool counts %d, want 2002", sp.count)
	}
	got = readAll(t, sp, 1<<30)
	want := append([]string{"s--2", "s--1"}, func() (ids []string) {
		for i := 1000; i < 3000; i++ {
			ids = append(ids, fmt.Sprintf("s-%d", i))
		}
		return
	}()...)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("after a restart the spool replays %d records %v …, want %d %v …", len(got), got[:4], len(want), want[:4])
	}
	if sp.count != 0 || len(sp.segs) != 0 || sp.bytes != 0 {
		t.Fatalf("all acknowledged, yet count %d, %d segments, %d bytes", sp.count, len(sp.segs), sp.bytes)
	}
	if ents, _ := filepath.Glob(filepath.Join(dir, "*"+segExt)); len(ents) != 0 {
		t.Fatalf("segment files left: %v", ents)
	}
	sp.close()
}

func TestSpoolCutsADamagedTail(t *testing.T) {
	for _, c := range []struct {
		name   string
		damage func([]byte) []byte
		keep   int64
	}{
		{"torn record", func(b []byte) []byte { return b[:len(b)-3] }, 9},
		{"bad checksum", func(b []byte) []byte { b[len(b)-1] ^= 0xff; return b }, 9},
		{"huge length", func(b []byte) []byte { return append(b, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0) }, 10},
		{"garbage", func(b []byte) []byte { return append(b, "junk"...) }, 10},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			sp, _, err := openSpool(dir, 1<<20, minSegmentBytes)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 10 {
				if _, err := sp.append(rec(i), nil); err != nil {
					t.Fatal(err)
				}
			}
			sp.close()
			p := sp.path(firstSegNum)
			b, _ := os.ReadFile(p)
			if err := os.WriteFile(p, c.damage(b), 0o600); err != nil {
				t.Fatal(err)
			}
			sp, lost, err := openSpool(dir, 1<<20, minSegmentBytes)
			if err != nil {
				t.Fatal(err)
			}
			if lost == 0 || sp.count != c.keep {
				t.Fatalf("lost %d, kept %d; want a loss counted and %d kept", lost, sp.count, c.keep)
			}
			if got := readAll(t, sp, 0); int64(len(got)) != c.keep {
				t.Fatalf("read %d records, want %d", len(got), c.keep)
			}
			// appending after the cut gives whole records again
			if _, err := sp.append(rec(99), nil); err != nil {
				t.Fatal(err)
			}
			if r, err := sp.next(); err != nil || r == nil || r.id != "s-99" {
				t.Fatalf("after the cut: %v, %v", r, err)
			}
			sp.close()
		})
	}
}

func TestUnmarshalRecordRejectsMalformed(t *testing.T) {
	for _, b := range [][]byte{nil, {0}, {5, 'a'}, {1, 'a', 0}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1}} {
		if _, err := unmarshalRecord(b); err == nil {
			t.Errorf("unmarshalRecord(%x) accepted", b)
		}
	}
	r, err := unmarshalRecord(rec(7).marshal(nil))
	if err != nil || r.id != "s-7" || r.subject != "icsnare.s.x" || string(r.data) != `{"n":7}` {
		t.Fatalf("round trip: %+v, %v", r, err)
	}
}

func event(i int) *protocols.Event {
	return &protocols.Event{Time: time.Unix(1_700_000_000, int64(i)), Type: "modbus.request", Protocol: "modbus",
		Transport: "tcp", SessionID: strconv.Itoa(i), Fields: []protocols.Field{{Key: "n", Value: i}}}
}

// unusedAddr returns host:port on an address of 127.77.0.0/16 where nothing listens.
func unusedAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", fmt.Sprintf("127.77.%d.%d:0", 1+rand.IntN(250), 1+rand.IntN(250)))
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestSpoolFullDropsAndCounts: with the server away and the spool full, Write drops the
// event, counts it and says so, and returns at once: the sensor never stalls. Close keeps
// what memory held for the next run.
func TestSpoolFullDropsAndCounts(t *testing.T) {
	o := DefaultOptions()
	o.Servers = []string{"nats://" + unusedAddr(t)}
	o.Buffer = 16
	o.SpoolMaxBytes, o.SpoolSegmentBytes = minSegmentBytes, minSegmentBytes
	o.CloseTimeout = 100 * time.Millisecond
	env := events.Env{SensorID: "full", StateDir: t.TempDir()}
	s, err := Open(context.Background(), *o, env)
	if err != nil {
		t.Fatal(err)
	}
	const n = 5000
	failed := 0
	for i := range n {
		if err := s.Write(event(i)); err != nil {
			if !strings.Contains(err.Error(), "spool full") {
				t.Fatalf("Write: %v", err)
			}
			failed++
		}
	}
	st := s.Stats()
	if st.Dropped != int64(failed) || failed == 0 {
		t.Fatalf("dropped %d, Write errors %d: want them equal and more than 0", st.Dropped, failed)
	}
	if st.Buffered+st.Spooled+st.Dropped != n || st.Sent != 0 {
		t.Fatalf("%+v: buffered + spooled + dropped != %d", st, n)
	}
	if st.Buffered != 16 || s.Spooled() != st.Spooled {
		t.Fatalf("%+v: want 16 in memory", st)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(context.Background(), *o, env)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if got := s2.Spooled(); got != st.Buffered+st.Spooled {
		t.Fatalf("the next run finds %d events spooled, want %d", got, st.Buffered+st.Spooled)
	}
	if _, err := Open(context.Background(), *o, env); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("a second sink on the same spool: %v", err)
	}
}

func TestOpenNeedsAStateDirectory(t *testing.T) {
	if _, err := Open(context.Background(), *DefaultOptions(), events.Env{SensorID: "x"}); err == nil {
		t.Fatal("opened without a state directory")
	}
}

// startServer runs nats-server -js on addr (our own 127.77 address, a port the kernel
// picked) and returns a func that stops it.
func startServer(t testing.TB, addr, store string) func() {
	t.Helper()
	bin := protocoltest.NeedTool(t, "nats-server")
	host, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(bin, "-a", host, "-p", port, "-js", "-sd", store)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stop := func() {
		if cmd.Process != nil && cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}
	t.Cleanup(stop)
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return stop
		}
		if time.Now().After(deadline) {
			t.Fatalf("nats-server did not listen on %s", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestReplayInOrderAndDeduplicated: events written while the server is away are spooled,
// then delivered in order once it is up; the stream de-duplicates a replay by Nats-Msg-Id.
func TestReplayInOrderAndDeduplicated(t *testing.T) {
	addr := unusedAddr(t)
	o := DefaultOptions()
	o.Servers = []string{"nats://" + addr}
	o.CreateStream = true
	o.Stream = "REPLAY"
	o.Buffer = 8 // most go to the spool
	o.RetryMax = 200 * time.Millisecond
	s, err := Open(context.Background(), *o, events.Env{SensorID: "replay", StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const n = 500
	for i := range n {
		if err := s.Write(event(i)); err != nil {
			t.Fatal(err)
		}
	}
	if st := s.Stats(); st.Spooled != n-8 {
		t.Fatalf("%+v: want %d spooled while the server is away", st, n-8)
	}
	startServer(t, addr, t.TempDir())
	deadline := time.Now().Add(30 * time.Second)
	for st := s.Stats(); st.Sent < n; st = s.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("not delivered: %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st := s.Stats(); st.Spooled != 0 || st.Buffered != 0 || st.Duplicates != 0 {
		t.Fatalf("after delivery: %+v", st)
	}
	nc, err := nats.Connect("nats://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, "REPLAY", jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var first string
	for i := range n {
		m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		var doc struct {
			N       int    `json:"n"`
			ID      string `json:"event_id"`
			Type    string `json:"event_type"`
			Session string `json:"session_id"`
		}
		if err := json.Unmarshal(m.Data(), &doc); err != nil {
			t.Fatal(err)
		}
		if doc.N != i || doc.ID != m.Headers().Get(jetstream.MsgIDHeader) || m.Subject() != "icsnare.replay.modbus.request" {
			t.Fatalf("message %d: %s on %s with id %q", i, m.Data(), m.Subject(), m.Headers().Get(jetstream.MsgIDHeader))
		}
		if i == 0 {
			first = doc.ID
		}
	}
	// a replay of an event already stored is dropped by the stream
	m := nats.NewMsg("icsnare.replay.modbus.request")
	m.Header.Set(jetstream.MsgIDHeader, first)
	m.Data = []byte(`{}`)
	ack, err := js.PublishMsg(ctx, m)
	if err != nil || !ack.Duplicate {
		t.Fatalf("replaying %s: %+v, %v; want a duplicate", first, ack, err)
	}
	info, err := js.Stream(ctx, "REPLAY")
	if err != nil {
		t.Fatal(err)
	}
	if got := info.CachedInfo().State.Msgs; got != n {
		t.Fatalf("the stream holds %d messages, want %d", got, n)
	}
	if w := info.CachedInfo().Config.Duplicates; w != o.DuplicateWindow {
		t.Fatalf("created stream's duplicate window %s, want %s", w, o.DuplicateWindow)
	}
}

// TestRefusedEventsAreDroppedNotRetried: an event larger than the server's max_payload, or
// than the stream's max_msg_size, is dropped and counted, and the events behind it (from
// memory and from the spool) are delivered in order: a hostile payload cannot wedge the
// queue.
func TestRefusedEventsAreDroppedNotRetried(t *testing.T) {
	addr := unusedAddr(t)
	o := DefaultOptions()
	o.Servers = []string{"nats://" + addr}
	o.Stream = "SIZES"
	o.Buffer = 2 // the rest goes to the spool
	o.RetryMax = 200 * time.Millisecond
	s, err := Open(context.Background(), *o, events.Env{SensorID: "sizes", StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sizes := []int{0, 3 << 20, 0, 4 << 10, 0, 0, 3 << 20, 0} // 3 MiB > max_payload; 4 KiB (8 KiB as hex) > max_msg_size
	var want []int
	for i, n := range sizes {
		e := event(i)
		e.Request = make([]byte, n)
		if err := s.Write(e); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			want = append(want, i)
		}
	}
	startServer(t, addr, t.TempDir())
	nc, err := nats.Connect("nats://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "SIZES", Subjects: []string{"icsnare.>"}, MaxMsgSize: 4096}); err != nil {
		t.Fatal(err)
	}
	for st := s.Stats(); st.Sent+st.Dropped < int64(len(sizes)); st = s.Stats() {
		if ctx.Err() != nil {
			t.Fatalf("stuck: %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st := s.Stats(); st.Sent != int64(len(want)) || st.Dropped != 3 || st.Spooled != 0 {
		t.Fatalf("%+v: want %d sent, 3 dropped, nothing spooled", st, len(want))
	}
	cons, err := js.OrderedConsumer(ctx, "SIZES", jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range want {
		m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			N int `json:"n"`
		}
		json.Unmarshal(m.Data(), &doc)
		if doc.N != i {
			t.Fatalf("stored event %d, want %d (order)", doc.N, i)
		}
	}
}

// BenchmarkPublish measures events written and acknowledged per second through a real
// nats-server (one sensor, default window).
func BenchmarkPublish(b *testing.B) {
	addr := unusedAddr(b)
	stop := startServer(b, addr, b.TempDir())
	defer stop()
	o := DefaultOptions()
	o.Servers, o.CreateStream, o.Stream = []string{"nats://" + addr}, true, "BENCH"
	s, err := Open(context.Background(), *o, events.Env{SensorID: "bench", StateDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	e := event(1)
	e.Request = make([]byte, 12)
	e.Response = make([]byte, 25)
	b.ResetTimer()
	for range b.N {
		if err := s.Write(e); err != nil {
			b.Fatal(err)
		}
	}
	for s.Stats().Sent+s.Stats().Dropped < int64(b.N) {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	st := s.Stats()
	b.ReportMetric(float64(st.Sent)/b.Elapsed().Seconds(), "acked/s")
}

// TestHostileSensorID: a sensor id with line breaks, spaces and wildcards still gives a valid
// subject and a header-safe message id.
func TestHostileSensorID(t *testing.T) {
	o := DefaultOptions()
	o.Servers = []string{"nats://" + unusedAddr(t)}
	s, err := Open(context.Background(), *o, events.Env{SensorID: "a b\r\nX-Evil: 1.*>", StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Write(event(1)); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	r := s.mem[0]
	s.mu.Unlock()
	if strings.ContainsAny(r.id, " \r\n:*>.") || strings.ContainsAny(r.subject, " \r\n*>") ||
		!strings.HasPrefix(r.subject, "icsnare.a_b__X-Evil__1___.") {
		t.Fatalf("id %q, subject %q", r.id, r.subject)
	}
	var doc map[string]any
	if err := json.Unmarshal(r.data, &doc); err != nil || doc[MsgIDField] != r.id {
		t.Fatalf("body %s: %v", r.data, err)
	}
}
