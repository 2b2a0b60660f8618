package sensor

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols"
)

func topEvent(src, dst, proto, phase string) *protocols.Event {
	return &protocols.Event{Protocol: proto, Phase: phase,
		Src: netip.MustParseAddrPort(src + ":40000"), Dst: netip.MustParseAddrPort(dst + ":502")}
}

func TestTopRanks(t *testing.T) {
	now := time.Date(2026, 11, 29, 15, 0, 30, 0, time.UTC)
	top := NewTop(5)
	top.now = func() time.Time { return now }
	for i := range 6 {
		top.Write(topEvent("192.0.2.1", "10.0.0.1", "modbus", map[bool]string{true: protocols.PhaseStart}[i == 0]))
	}
	for i := range 3 {
		top.Write(topEvent("192.0.2.2", "10.0.0.2", "s7comm", map[bool]string{true: protocols.PhaseStart}[i == 0]))
	}
	top.Write(&protocols.Event{Type: "xdp.host_dark"}) // not a session's: not counted
	rep := top.Report(5, 10)
	want := []TopCount{{"10.0.0.1", 1, 5}, {"10.0.0.2", 1, 2}}
	if fmt.Sprint(rep.Hosts) != fmt.Sprint(want) {
		t.Errorf("hosts = %v, want %v", rep.Hosts, want)
	}
	if len(rep.Sources) != 2 || rep.Sources[0].Key != "192.0.2.1" || rep.Protocols[0].Key != "modbus" {
		t.Errorf("sources %v, protocols %v", rep.Sources, rep.Protocols)
	}
	// Three minutes later a one-minute report is empty, a five-minute one is not.
	now = now.Add(3 * time.Minute)
	if r := top.Report(1, 10); len(r.Hosts) != 0 {
		t.Errorf("last minute: %v, want none", r.Hosts)
	}
	if r := top.Report(5, 1); len(r.Hosts) != 1 || r.Hosts[0].Key != "10.0.0.1" {
		t.Errorf("last 5 minutes, top 1: %v", r.Hosts)
	}
	// Six minutes on, the ring slot of the first minute is reused.
	now = now.Add(2 * time.Minute)
	top.Write(topEvent("192.0.2.9", "10.0.0.9", "snmp", ""))
	if r := top.Report(5, 10); len(r.Hosts) != 1 || r.Hosts[0].Key != "10.0.0.9" {
		t.Errorf("after the window: %v", r.Hosts)
	}
}

// TestTopBounded: a flood of distinct sources keeps each minute's map within topKeys and
// the heavy source on top.
func TestTopBounded(t *testing.T) {
	top := NewTop(1)
	for range 1000 {
		top.Write(topEvent("198.51.100.7", "10.0.0.1", "modbus", ""))
	}
	for i := range 50000 {
		a := netip.AddrFrom4([4]byte{203, byte(i >> 16), byte(i >> 8), byte(i)})
		top.Write(topEvent(a.String(), "10.0.0.1", "modbus", ""))
	}
	for _, m := range top.minutes {
		if len(m.sources) > topKeys {
			t.Fatalf("%d sources kept, bound %d", len(m.sources), topKeys)
		}
	}
	if r := top.Report(1, 1); r.Sources[0].Key != "198.51.100.7" || r.Sources[0].Events != 1000 {
		t.Fatalf("top source %v, want 198.51.100.7 with 1000", r.Sources)
	}
}

func TestTopHTTP(t *testing.T) {
	top := NewTop(5)
	top.Write(topEvent("192.0.2.1", "10.0.0.1", "modbus", ""))
	tests := []struct {
		remote, query string
		code          int
		want          string
	}{
		{"127.0.0.1:5000", "?n=1", 200, `"hosts":[{"key":"10.0.0.1","sessions":0,"events":1}]`},
		{"[::1]:5000", "", 200, `"protocols":[{"key":"modbus"`},
		{"192.0.2.50:5000", "", 403, "loopback clients only"},
		{"127.0.0.1:5000", "?n=0", 400, "n: want 1 to 1000"},
		{"127.0.0.1:5000", "?minutes=x", 400, "minutes: want a positive integer"},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(http.MethodGet, "/debug/top"+tt.query, nil)
		r.RemoteAddr = tt.remote
		w := httptest.NewRecorder()
		top.ServeHTTP(w, r)
		if w.Code != tt.code || !strings.Contains(w.Body.String(), tt.want) {
			t.Errorf("%s %s: %d %s, want %d with %s", tt.remote, tt.query, w.Code, w.Body.String(), tt.code, tt.want)
		}
	}
}
