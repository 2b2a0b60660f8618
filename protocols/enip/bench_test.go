package enip

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"github.com/icsnare/icsnare/internal/racedetector"
	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// BenchmarkListIdentityUDP answers nmap's ListIdentity datagram.
func BenchmarkListIdentityUDP(b *testing.B) {
	svc, p := configure(b, "default")
	h := protocoltest.Host(p, netip.MustParseAddr("198.18.70.30"), 1)
	s := testSession(h, nil, protocols.UDP)
	req := unhex(b, "63000000000000000000000000000000c1debed100000000")
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		svc.ServePacket(s.Context(), s, req, func(r []byte) { n += len(r) })
	}
	if n == 0 {
		b.Fatal("no reply")
	}
}

// BenchmarkReadTag handles a SendRRData Read Tag frame as the connection loop does.
func BenchmarkReadTag(b *testing.B) {
	svc, p := configure(b, "logix")
	h := protocoltest.Host(p, netip.MustParseAddr("198.18.70.31"), 1)
	c := &conn{}
	c.x = exec{svc: svc, sess: testSession(h, nil, protocols.TCP), db: h.Databus, dev: svc.hostDevice(h), conn: c}
	c.session = 0x1234
	req := frame(cmdSendRRData, c.session, "", rrData(cipReq(svcReadTag, symbolic("Counts", 10), []byte{4, 0})))
	b.ReportAllocs()
	for b.Loop() {
		c.out = c.out[:0]
		c.handle(req)
	}
	if len(c.out) != headerLen+6+2+4+4+4+2+16 {
		b.Fatalf("reply of %d bytes", len(c.out))
	}
}

// releaseEvents hands events straight back to the pool, as the sensor's bus does.
type releaseEvents struct{}

func (releaseEvents) Emit(e *protocols.Event) { protocols.ReleaseEvent(e) }

// TestRequestPathsNoAllocs: under the default volume control, past the events it keeps, a
// ListIdentity over UDP and a Read Tag (the first on a tag with a lower-case name, as
// clients send it) allocate nothing.
func TestRequestPathsNoAllocs(t *testing.T) {
	if racedetector.Enabled {
		t.Skip("allocation counts of pooled paths mean nothing under the race detector (make test runs this test again without it)")
	}
	svc, p := configure(t, "default")
	h := protocoltest.Host(p, netip.MustParseAddr("198.18.70.32"), 1)
	s := testSession(h, releaseEvents{}, protocols.UDP)
	s.KeepEvents = 100
	req := unhex(t, "63000000000000000000000000000000c1debed100000000")
	n := 0
	reply := func(r []byte) { n += len(r) }
	list := func() { svc.ServePacket(s.Context(), s, req, reply) }

	lsvc, lp := configure(t, "logix")
	lh := protocoltest.Host(lp, netip.MustParseAddr("198.18.70.33"), 1)
	c := &conn{}
	ls := testSession(lh, releaseEvents{}, protocols.TCP)
	ls.KeepEvents = 100
	c.x = exec{svc: lsvc, sess: ls, db: lh.Databus, dev: lsvc.hostDevice(lh), conn: c}
	c.session = 0x1234
	read := frame(cmdSendRRData, c.session, "", rrData(cipReq(svcReadTag, symbolic("counts", 10), []byte{4, 0})))
	readTag := func() { c.out = c.out[:0]; c.handle(read) }
	for _, tc := range []struct {
		name string
		run  func()
	}{{"ListIdentity", list}, {"Read Tag", readTag}} {
		for range 101 {
			tc.run()
		}
		// sync.Pool may drop a buffer at a GC; allow a fraction of an allocation.
		if got := testing.AllocsPerRun(200, tc.run); got >= 0.5 {
			t.Errorf("%s: %v allocations per request, want 0", tc.name, got)
		}
	}
	if n == 0 || len(c.out) != headerLen+6+2+4+4+4+2+16 {
		t.Fatalf("answers: %d bytes of ListIdentity, a Read Tag reply of %d bytes", n, len(c.out))
	}
}

// TestKeptEventOwnsItsFields: a kept event's CIP fields are its own, not the connection's
// reused scratch: the next request on the connection leaves them as they were.
func TestKeptEventOwnsItsFields(t *testing.T) {
	svc, p := configure(t, "logix")
	h := protocoltest.Host(p, netip.MustParseAddr("198.18.70.34"), 1)
	rec := &protocoltest.Recorder{}
	c := &conn{}
	c.x = exec{svc: svc, sess: testSession(h, rec, protocols.TCP), db: h.Databus, dev: svc.hostDevice(h), conn: c}
	c.session = 0x1234
	for _, req := range [][]byte{
		cipReq(svcReadTag, symbolic("counts"), []byte{1, 0}),
		cipReq(svcWriteTag, symbolic("speed"), []byte{0xC3, 0, 1, 0, 0x22, 0x11}),
		cipReq(svcReadTag, symbolic("PUMP_RUN"), []byte{1, 0}),
	} {
		c.out = c.out[:0]
		c.handle(frame(cmdSendRRData, c.session, "", rrData(req)))
	}
	evs := rec.Events()
	if len(evs) != 3 {
		t.Fatalf("%d events, want 3", len(evs))
	}
	field := func(e *protocols.Event, key string) []string {
		for _, f := range e.Fields {
			if f.Key == key {
				v, _ := f.Value.([]string)
				return v
			}
		}
		return nil
	}
	for i, want := range [][2]string{{"counts", "read_tag"}, {"speed", "write_tag"}, {"PUMP_RUN", "read_tag"}} {
		tags, svcs := field(evs[i], "tags"), field(evs[i], "cip_services")
		if len(tags) != 1 || tags[0] != want[0] || len(svcs) != 1 || svcs[0] != want[1] {
			t.Errorf("event %d: tags %v, services %v; want [%s] and [%s]", i, tags, svcs, want[0], want[1])
		}
	}
}

// TestTagNamed: tag names match case-insensitively, ASCII on the stack, others the
// general way; a name longer than any tag's matches none.
func TestTagNamed(t *testing.T) {
	svc, _ := configure(t, "logix")
	for _, tc := range []struct {
		sym, want string
	}{
		{"Counts", "Counts"}, {"counts", "Counts"}, {"COUNTS", "Counts"}, {"pump_run", "Pump_Run"},
		{"Count", ""}, {"", ""}, {strings.Repeat("a", 300), ""}, {"çounts", ""},
	} {
		got := ""
		if tg := svc.cfg.tagNamed([]byte(tc.sym)); tg != nil {
			got = tg.name
		}
		if got != tc.want {
			t.Errorf("tagNamed(%q) = %q, want %q", tc.sym, got, tc.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { svc.cfg.tagNamed([]byte("level")) }); n != 0 {
		t.Errorf("an ASCII lookup allocates %v times", n)
	}
}

// TestInsertReply: the reply header goes in front of data already appended, as
// appendReply would have written it with the data after it.
func TestInsertReply(t *testing.T) {
	for _, ext := range [][]uint16{nil, {0x2105}, {1, 2}} {
		data := []byte{0xC4, 0x00, 1, 2, 3, 4}
		dst := append([]byte{9, 9}, data...)
		got := insertReply(dst, 2, svcReadTag, gsSuccess, ext)
		want := appendReply([]byte{9, 9}, svcReadTag, gsSuccess, ext, data)
		if !bytes.Equal(got, want) {
			t.Errorf("ext %v: % x, want % x", ext, got, want)
		}
	}
}
