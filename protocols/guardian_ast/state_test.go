package guardianast

import (
	"bytes"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// memStore is a protocols.HostStore in memory.
type memStore struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (s *memStore) Save(k string, v []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[k] = append([]byte(nil), v...)
	return true
}
func (s *memStore) Saved(k string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[k]
	return v, ok
}
func (s *memStore) SavedKeys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k := range s.m {
		out = append(out, k)
	}
	return out
}

// TestLabelsPersist: a label set with S602 is the host's databus write: a host regenerated
// from the same store (after eviction or a restart) shows it, and its tank values are the
// same curve as before.
func TestLabelsPersist(t *testing.T) {
	p := loadConpot(t)
	svc := configure(t, p)
	store := &memStore{m: map[string][]byte{}}
	addr := netip.MustParseAddr("127.31.200.1")
	start := time.Now().Add(-100 * time.Hour)
	h1 := protocols.NewStoredHost(addr, p, 55, start, 0, store)
	c, _ := ParseCommand([]byte("S60202HACKED"))
	svc.reply(h1, c, nil)
	inv, _ := ParseCommand([]byte("I20100"))
	before := string(svc.reply(h1, inv, nil))

	h2 := protocols.NewStoredHost(addr, p, 55, start, 0, store)
	after := string(svc.reply(h2, inv, nil))
	if !strings.Contains(after, "  2  HACKED ") {
		t.Fatalf("regenerated host lost the label:\n%s", after)
	}
	// same tank lines (the minute may have turned between the two reads: compare volumes)
	if a, b := strings.Fields(before[strings.Index(before, "  1  "):]), strings.Fields(after[strings.Index(after, "  1  "):]); a[2] != b[2] {
		t.Fatalf("tank 1 volume %s before, %s after regeneration", a[2], b[2])
	}
	if v, _ := h2.Databus.GetString("product2"); v != "HACKED" {
		t.Fatalf("databus product2 %q", v)
	}
}

// TestTLSFraming: with <framing>tls350</framing> display replies are SOH … ETX with CR LF
// line ends and the console's date format, set commands are echoed and the error is framed.
func TestTLSFraming(t *testing.T) {
	p := loadConpot(t)
	sec := p.Sections[Name]
	sec.Root.Children = append(sec.Root.Children, &profiles.Node{Name: "framing", Text: "tls350", File: "test", Line: 1})
	svc := configure(t, p)
	addr := testAddr()
	srv := protocoltest.ServeTCP(t, Name, svc, protocoltest.Host(p, addr, 15), netip.AddrPortFrom(addr, Port).String())
	c := dial(t, srv)
	c.send("\x01I20100")
	got := string(c.readUntil("\x03"))
	if !strings.HasPrefix(got, "\x01\r\nI20100\r\n") || strings.Contains(strings.ReplaceAll(got, "\r\n", ""), "\n") {
		t.Fatalf("inventory %q", got)
	}
	date := got[len("\x01\r\nI20100\r\n") : strings.Index(got[10:], "\r\n")+10]
	if _, err := time.Parse("Jan 2, 2006 3:04 PM", date); err != nil || date != strings.ToUpper(date) {
		t.Fatalf("date %q: %v", date, err)
	}
	c.send("\x01S60201ABC\r\n")
	if got := string(c.readUntil("\x03")); got != "\x01\r\nS60201\r\n\r\n\x03" {
		t.Fatalf("set reply %q", got)
	}
	c.send("\x01XYZ\r\n")
	if got := string(c.readUntil("\x03")); got != "\x019999FF1B\x03" {
		t.Fatalf("error reply %q", got)
	}
}

// TestConfig: the knobs and the template checks.
func TestConfig(t *testing.T) {
	for _, x := range []struct {
		xml, err string
	}{
		{`<guardian_ast enabled="True"><framing>conpot</framing><quiet_ms>200</quiet_ms></guardian_ast>`, ""},
		{`<guardian_ast enabled="True"><framing>serial</framing></guardian_ast>`, "framing"},
		{`<guardian_ast enabled="True"><quiet_ms>5</quiet_ms></guardian_ast>`, "quiet_ms"},
		{`<other enabled="True"/>`, "root element"},
	} {
		p := loadConpot(t)
		root, err := profiles.ParseXML("guardian_ast.xml", strings.NewReader(x.xml))
		if err != nil {
			t.Fatal(err)
		}
		sec := *p.Sections[Name]
		sec.Root = root
		_, err = protocol{}.Configure(&sec, nil)
		if (err == nil) != (x.err == "") || err != nil && !strings.Contains(err.Error(), x.err) {
			t.Errorf("%s: %v", x.xml, err)
		}
	}
}

// kinds records the metric kinds a session counts.
type kinds struct {
	mu sync.Mutex
	m  map[string]int
}

func (k *kinds) Request(_, kind string, _ bool) {
	k.mu.Lock()
	k.m[kind]++
	k.mu.Unlock()
}

// TestMetricsKinds: every command is counted under a kind of the fixed set, never under
// text the client chose.
func TestMetricsKinds(t *testing.T) {
	p := loadConpot(t)
	svc := configure(t, p)
	s := testSession(protocoltest.Host(p, netip.MustParseAddr("127.31.200.2"), 16), &protocoltest.Recorder{})
	k := &kinds{m: map[string]int{}}
	s.Metrics = k
	in := "junk\x01I20100\x01i20500\x01S60201X\n\x01QWERTY\n\x01I20200\x01I20300\x01I20400\x01I10100\x01I11100\x01I20600\x01I90200"
	svc.ServeConn(s.Context(), s, &pipeConn{r: bytes.NewReader([]byte(in))})
	want := map[string]int{KindGarbage: 1, KindInventory: 1, KindStatus: 1, KindSetProduct: 1, KindUnknown: 1,
		KindDelivery: 1, KindLeak: 1, KindShift: 1, KindSystemStatus: 1, KindAlarmHistory: 1, KindTankAlarms: 1, KindRevision: 1}
	if len(k.m) != len(want) {
		t.Fatalf("kinds %v", k.m)
	}
	for kind, n := range want {
		if k.m[kind] != n {
			t.Errorf("kind %s counted %d times, want %d", kind, k.m[kind], n)
		}
	}
}

// TestPersona: the embedded tls350 profile configures without warnings, answers in the
// console's framing, and gives every host its own four-line station header.
func TestPersona(t *testing.T) {
	p := protocoltest.Profile(t, "tls350")
	svc := configure(t, p)
	inv, _ := ParseCommand([]byte("I20100"))
	var headers []string
	for i := range 2 {
		h := protocoltest.Host(p, netip.AddrFrom4([4]byte{127, 31, 250, byte(i + 1)}), uint64(1000+i))
		got := string(svc.reply(h, inv, nil))
		if !strings.HasPrefix(got, "\x01\r\nI20100\r\n") || !strings.HasSuffix(got, "\x03") {
			t.Fatalf("framing %q", got)
		}
		lines := strings.Split(got, "\r\n")
		// SOH, code, date, blank, four header lines, blank, title
		if len(lines) < 12 || lines[8] != "" || lines[9] != "IN-TANK INVENTORY" {
			t.Fatalf("layout %q", lines)
		}
		for _, l := range lines[4:8] {
			if l == "" || len(l) > 20 {
				t.Fatalf("header line %q in %q", l, lines[4:8])
			}
		}
		if !strings.Contains(got, "  1  REGULAR UNLEADED ") {
			t.Fatalf("products %q", got)
		}
		headers = append(headers, strings.Join(lines[4:8], "|"))
	}
	if headers[0] == headers[1] {
		t.Fatalf("two hosts share the station header %q", headers[0])
	}
}

// TestConcurrentUse: many connections of one host reading and relabelling at once (run
// with -race).
func TestConcurrentUse(t *testing.T) {
	p := loadConpot(t)
	svc := configure(t, p)
	h := protocoltest.Host(p, netip.MustParseAddr("127.31.200.3"), 18)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 20 {
				cmd := []string{"I20100", "I20200", "i20100", "I20500", "S6020" + string(rune('1'+(i+j)%4)) + "L" + string(rune('A'+i))}[j%5]
				c, err := ParseCommand([]byte(cmd))
				if out := svc.reply(h, c, err); len(out) == 0 && !c.Set {
					t.Errorf("%s: no reply", cmd)
				}
			}
		}()
	}
	wg.Wait()
	for n := 1; n <= 4; n++ {
		if v, _ := h.Databus.GetString("product" + string(rune('0'+n))); len(v) != 2 || v[0] != 'L' {
			t.Errorf("product%d %q", n, v)
		}
	}
}

// TestRevision: I902 reports the console's software version, in both formats, the same for
// a host every time and not the same for every host.
func TestRevision(t *testing.T) {
	p := loadConpot(t)
	svc := configure(t, p)
	disp, _ := ParseCommand([]byte("I90200"))
	comp, _ := ParseCommand([]byte("i90200"))
	seen := map[string]bool{}
	for i := range 20 {
		h := protocoltest.Host(p, netip.AddrFrom4([4]byte{127, 31, 251, byte(i + 1)}), uint64(3000+i))
		got := string(svc.reply(h, disp, nil))
		lines := strings.Split(got, "\n")
		if len(lines) != 6 || lines[1] != "I90200" || !strings.HasPrefix(lines[2], "SOFTWARE# 346330-") || !strings.HasPrefix(lines[3], "CREATED - ") {
			t.Fatalf("I90200 %q", got)
		}
		if _, err := time.Parse("06.01.02.15.04", strings.TrimPrefix(lines[3], "CREATED - ")); err != nil {
			t.Fatal(err)
		}
		code, data, err := VerifyComputer(svc.reply(h, comp, nil))
		if err != nil || code != "i90200" || string(data[10:]) != lines[2]+lines[3] {
			t.Fatalf("i90200 %s %q %v", code, data, err)
		}
		if again := string(svc.reply(h, disp, nil)); again != got {
			t.Fatalf("the version changed: %q %q", got, again)
		}
		seen[lines[2]] = true
	}
	if len(seen) < 3 {
		t.Fatalf("20 hosts run %d software versions", len(seen))
	}
}

// TestStationClock: with <clock>station</clock> (the tls350 profile) the reports show the
// local time of the state in the station header; Conpot's template keeps UTC.
func TestStationClock(t *testing.T) {
	for in, want := range map[string]string{
		"SHELL #1\n12 MAIN ST\nAMARILLO, TX\n555-1212": "America/Chicago",
		"X\nY\nSALEM, OR": "America/Los_Angeles",
		"STATOIL STATION": "UTC",
		"A, B":            "UTC",
	} {
		if got := stationZone(in).String(); got != want {
			t.Errorf("%q: %s, want %s", in, got, want)
		}
	}
	p := protocoltest.Profile(t, "tls350")
	svc := configure(t, p)
	inv, _ := ParseCommand([]byte("I20100"))
	h := protocoltest.Host(p, netip.MustParseAddr("127.31.252.1"), 4242)
	before := time.Now()
	lines := strings.Split(string(svc.reply(h, inv, nil)), "\r\n")
	after := time.Now()
	loc := stationZone(strings.Join(lines[4:8], "\n"))
	if loc == time.UTC {
		t.Fatalf("no zone for the header %q", lines[4:8])
	}
	f := func(tm time.Time) string { return strings.ToUpper(tm.In(loc).Format("Jan 2, 2006 3:04 PM")) }
	if lines[2] != f(before) && lines[2] != f(after) {
		t.Fatalf("date %q, want %q in %s", lines[2], f(before), loc)
	}
}

// TestDeliveryColumns: the delivery rows keep the header's columns in both framings (the
// console's dates are longer than Conpot's).
func TestDeliveryColumns(t *testing.T) {
	for _, f := range []Framing{FramingConpot, FramingTLS} {
		p := loadConpot(t)
		svc := configure(t, p)
		svc.cfg.framing = f
		c, _ := ParseCommand([]byte("I20200"))
		out := strings.ReplaceAll(string(svc.reply(protocoltest.Host(p, netip.MustParseAddr("127.31.252.2"), 77), c, nil)), "\r\n", "\n")
		rows := 0
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "      END: ") || strings.HasPrefix(l, "    START: ") {
				rows++
				if len(l) != 79 || l[41] == ' ' || l[42] != ' ' {
					t.Errorf("framing %d: row %q (%d characters)", f, l, len(l))
				}
			}
		}
		if rows == 0 {
			t.Fatalf("framing %d: no delivery rows in\n%s", f, out)
		}
	}
}
