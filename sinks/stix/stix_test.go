package stix

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/icsnare/icsnare/events"
	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/protocoltest"
	"github.com/icsnare/icsnare/sinks/stix/stixtest"
)

var t0 = time.Date(2026, 11, 29, 14, 0, 0, 0, time.UTC)

func ev(typ, phase, sid, src, dst string, at time.Duration, fields ...protocols.Field) *protocols.Event {
	proto, _, _ := strings.Cut(typ, ".")
	if phase != "" {
		proto = strings.Split(sid, "/")[0]
	}
	return &protocols.Event{Time: t0.Add(at), Type: typ, SessionID: sid, Protocol: proto, Transport: "tcp",
		Src: netip.MustParseAddrPort(src), Dst: netip.MustParseAddrPort(dst), Sensor: "s1", Start: t0, Phase: phase,
		Fields: fields}
}

func connect(sid, src, dst string, at time.Duration) *protocols.Event {
	return ev("connect", protocols.PhaseStart, sid, src, dst, at)
}

func disconnect(sid, src, dst string, at time.Duration, requests int) *protocols.Event {
	return ev("disconnect", protocols.PhaseEnd, sid, src, dst, at, protocols.F("requests", requests),
		protocols.F("bytes_in", int64(12*requests)), protocols.F("bytes_out", int64(10*requests)))
}

func TestClassify(t *testing.T) {
	F := protocols.F
	for _, tc := range []struct {
		typ    string
		fields []protocols.Field
		want   Action
		ok     bool
	}{
		{"modbus.request", []protocols.Field{F("function_code", uint8(3))}, Action{}, false},
		{"modbus.request", []protocols.Field{F("function_code", uint8(6))}, Action{Kind: KindWrite, Label: "modbus write_single_register"}, true},
		{"modbus.request", []protocols.Field{F("function_code", uint8(16)), F("exception", uint8(2))}, Action{Kind: KindWrite, Label: "modbus write_multiple_registers"}, true},
		{"modbus.request", []protocols.Field{F("function_code", uint8(23))}, Action{Kind: KindWrite, Label: "modbus read_write_registers"}, true},
		{"modbus.request", nil, Action{}, false},
		{"modbus.request", []protocols.Field{F("function_code", "6")}, Action{}, false},
		{"s7comm.stop", nil, Action{Kind: KindState, Label: "s7comm plc_stop"}, true},
		{"s7comm.write", nil, Action{Kind: KindWrite, Label: "s7comm write_var"}, true},
		{"s7comm.request", []protocols.Field{F("function", "read_var")}, Action{}, false},
		{"s7comm.request", []protocols.Field{F("function", "pi_service")}, Action{Kind: KindState, Label: "s7comm pi_service"}, true},
		{"snmp.request", []protocols.Field{F("pdu", "get")}, Action{}, false},
		{"snmp.request", []protocols.Field{F("pdu", "set")}, Action{Kind: KindWrite, Label: "snmp set"}, true},
		{"bacnet.request", []protocols.Field{F("service", "read-property")}, Action{}, false},
		{"bacnet.request", []protocols.Field{F("service", "write-property")}, Action{Kind: KindWrite, Label: "bacnet write-property"}, true},
		{"bacnet.request", []protocols.Field{F("service", "reinitialize-device")}, Action{Kind: KindState, Label: "bacnet reinitialize-device"}, true},
		{"enip.write", nil, Action{Kind: KindWrite, Label: "enip write_tag"}, true},
		{"enip.request", nil, Action{}, false},
		{"iec104.command", []protocols.Field{F("type_id", uint8(45))}, Action{Kind: KindWrite, Label: "iec104 single_command"}, true},
		{"iec104.command", []protocols.Field{F("type_id", uint8(105))}, Action{Kind: KindState, Label: "iec104 reset_process"}, true},
		{"iec104.asdu", []protocols.Field{F("type_id", uint8(100))}, Action{}, false},
		{"ipmi.request", []protocols.Field{F("kind", "chassis_control")}, Action{Kind: KindState, Label: "ipmi chassis_control"}, true},
		{"ipmi.request", []protocols.Field{F("kind", "get_device_id")}, Action{}, false},
		{"kamstrup_management.command", []protocols.Field{F("command", "SC")}, Action{Kind: KindWrite, Label: "kamstrup_management set"}, true},
		{"kamstrup_management.command", []protocols.Field{F("command", "RR")}, Action{Kind: KindState, Label: "kamstrup_management reboot"}, true},
		{"kamstrup_management.command", []protocols.Field{F("command", "GC")}, Action{}, false},
		{"guardian_ast.command", []protocols.Field{F("kind", "set_product")}, Action{Kind: KindWrite, Label: "guardian_ast set_product"}, true},
		{"guardian_ast.command", []protocols.Field{F("kind", "inventory")}, Action{}, false},
		{"ftp.upload", nil, Action{Kind: KindWrite, Label: "ftp upload"}, true},
		{"tftp.upload", nil, Action{Kind: KindWrite, Label: "tftp upload"}, true},
		{"http.request", nil, Action{}, false},
	} {
		got, ok := Classify(&protocols.Event{Type: tc.typ, Fields: tc.fields})
		if got != tc.want || ok != tc.ok {
			t.Errorf("Classify(%s %v) = %v, %v; want %v, %v", tc.typ, tc.fields, got, ok, tc.want, tc.ok)
		}
	}
}

// TestSCOIDs checks the deterministic SCO ids against Python's uuid5 over the JSON
// canonical form of the ID contributing properties, an implementation of the STIX 2.1
// §2.9 rule independent of ours.
func TestSCOIDs(t *testing.T) {
	py := protocoltest.NeedTool(t, "python3")
	nt := NetworkTraffic{SrcRef: AddrID(netip.MustParseAddr("127.76.1.2")), DstRef: AddrID(netip.MustParseAddr("2001:db8::1")),
		DstPort: 502, Protocols: []string{"ipv6", "tcp", "mbap"}, Start: "2026-11-29T14:00:00.000Z", End: "2026-11-29T14:00:01.500Z"}
	nt.setID()
	script := `import json, uuid, sys
ns = uuid.UUID("00abedb4-aa42-466c-9c01-fed23315a9b7")
def sco(t, p): return t + "--" + str(uuid.uuid5(ns, json.dumps(p, sort_keys=True, separators=(",", ":"), ensure_ascii=False)))
a = sco("ipv4-addr", {"value": "127.76.1.2"})
b = sco("ipv6-addr", {"value": "2001:db8::1"})
print(a); print(b)
print(sco("network-traffic", {"src_ref": a, "dst_ref": b, "dst_port": 502, "protocols": ["ipv6", "tcp", "mbap"],
  "start": "2026-11-29T14:00:00.000Z", "end": "2026-11-29T14:00:01.500Z"}))`
	out, err := exec.Command(py, "-c", script).Output()
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Fields(string(out))
	got := []string{nt.SrcRef, nt.DstRef, nt.ID}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("id %d = %s, python says %s", i, got[i], want[i])
		}
	}
	for _, n := range []NetworkTraffic{nt, {SrcRef: nt.SrcRef, DstRef: nt.DstRef, DstPort: 0, SrcPort: new(int), Protocols: []string{"ipv4"}},
		{SrcRef: nt.SrcRef, DstPort: 502, Protocols: []string{"ipv4", "tcp"}, Start: nt.Start}} {
		if a, b := string(n.canonicalIDProps()), string(canonicalJSON(n.idProps())); a != b {
			t.Errorf("network-traffic canonical form %s, JSON encoder %s", a, b)
		}
	}
	for _, a := range []string{"127.76.1.2", "2001:db8::1", "::"} {
		addr := netip.MustParseAddr(a)
		if got, want := AddrID(addr), scoID(addrType(addr), map[string]any{"value": a}); got != want {
			t.Errorf("AddrID(%s) = %s, generic %s", a, got, want)
		}
	}
	if a, b := AddrID(netip.MustParseAddr("::ffff:127.76.1.2")), nt.SrcRef; a != b {
		t.Errorf("an IPv4-mapped address has id %s, not its IPv4 id %s", a, b)
	}
	if id := IdentityID("s1"); id != "identity--"+uuid.NewSHA1(icsnareNamespace, []byte("sensor:s1")).String() || id == IdentityID("s2") {
		t.Errorf("identity id %s is not UUIDv5 of the sensor id", id)
	}
}

type decoded struct {
	raw  []byte
	objs []map[string]any
}

func (d decoded) ofType(typ string) []map[string]any {
	var out []map[string]any
	for _, o := range d.objs {
		if o["type"] == typ {
			out = append(out, o)
		}
	}
	return out
}

func decode(t *testing.T, v *stixtest.Validator, b *Bundle) decoded {
	t.Helper()
	raw, err := b.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Bundle(raw); err != nil {
		t.Fatalf("bundle does not validate: %v\n%s", err, raw)
	}
	var doc struct {
		Objects []map[string]any `json:"objects"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, o := range doc.Objects {
		ids[o["id"].(string)] = true
	}
	// every reference resolves within the bundle
	for _, o := range doc.Objects {
		for k, val := range o {
			switch {
			case strings.HasSuffix(k, "_ref"):
				if !ids[val.(string)] {
					t.Errorf("%s %s: %s %s is not in the bundle", o["type"], o["id"], k, val)
				}
			case strings.HasSuffix(k, "_refs"):
				for _, r := range val.([]any) {
					if !ids[r.(string)] {
						t.Errorf("%s %s: %s %s is not in the bundle", o["type"], o["id"], k, r)
					}
				}
			}
		}
	}
	return decoded{raw, doc.Objects}
}

func testOptions() Options {
	o := DefaultOptions()
	o.BundleInterval = Duration{time.Minute}
	o.SessionTimeout = Duration{30 * time.Second}
	return o
}

func testIdentity() Identity {
	ts := Timestamp(t0)
	return Identity{Type: "identity", SpecVersion: SpecVersion, ID: IdentityID("s1"), Created: ts, Modified: ts,
		Name: "icsnare sensor s1", IdentityClass: "system"}
}

func TestExporterBundles(t *testing.T) {
	v := stixtest.New(t)
	const host, host6 = "127.76.0.10:502", "[2001:db8::10]:102"
	F := protocols.F
	type want struct {
		bundles, observed, indicators, sightings int
		pattern                                  string
		sightingCount                            float64
		numberObserved                           float64
		hosts                                    float64 // x_icsnare_hosts, 0: absent
	}
	for _, tc := range []struct {
		name   string
		opts   func(*Options)
		events []*protocols.Event
		tick   time.Duration // Tick at t0+tick before Close (0: none)
		want   want
	}{
		{name: "a reader: observed-data only",
			events: []*protocols.Event{connect("modbus/1", "127.76.1.1:40000", host, 0),
				ev("modbus.request", "", "modbus/1", "127.76.1.1:40000", host, time.Second, F("function_code", uint8(3))),
				disconnect("modbus/1", "127.76.1.1:40000", host, 2*time.Second, 1)},
			want: want{bundles: 1, observed: 1, numberObserved: 1}},
		{name: "a Modbus writer: indicator and sighting",
			events: []*protocols.Event{connect("modbus/1", "127.76.1.2:40000", host, 0),
				ev("modbus.request", "", "modbus/1", "127.76.1.2:40000", host, time.Second, F("function_code", uint8(6))),
				ev("modbus.request", "", "modbus/1", "127.76.1.2:40000", host, 2*time.Second, F("function_code", uint8(16))),
				disconnect("modbus/1", "127.76.1.2:40000", host, 3*time.Second, 2)},
			want: want{bundles: 1, observed: 1, indicators: 1, sightings: 1, pattern: "[ipv4-addr:value = '127.76.1.2']",
				sightingCount: 2, numberObserved: 1}},
		{name: "an S7 stop over IPv6",
			events: []*protocols.Event{connect("s7comm/1", "[2001:db8::99]:50000", host6, 0),
				ev("s7comm.stop", "", "s7comm/1", "[2001:db8::99]:50000", host6, time.Second, F("function", "plc_stop")),
				disconnect("s7comm/1", "[2001:db8::99]:50000", host6, 2*time.Second, 1)},
			want: want{bundles: 1, observed: 1, indicators: 1, sightings: 1, pattern: "[ipv6-addr:value = '2001:db8::99']",
				sightingCount: 1, numberObserved: 1}},
		{name: "three sessions of one source aggregate",
			events: []*protocols.Event{
				connect("modbus/1", "127.76.1.3:40001", host, 0), disconnect("modbus/1", "127.76.1.3:40001", host, time.Second, 0),
				connect("modbus/2", "127.76.1.3:40002", host, 2*time.Second),
				ev("modbus.request", "", "modbus/2", "127.76.1.3:40002", host, 3*time.Second, F("function_code", uint8(5))),
				disconnect("modbus/2", "127.76.1.3:40002", host, 4*time.Second, 1),
				connect("modbus/3", "127.76.1.3:40003", host, 5*time.Second), disconnect("modbus/3", "127.76.1.3:40003", host, 6*time.Second, 0)},
			want: want{bundles: 1, observed: 1, indicators: 1, sightings: 1, pattern: "[ipv4-addr:value = '127.76.1.3']",
				sightingCount: 1, numberObserved: 3}},
		{name: "observe_all off keeps writers only",
			opts: func(o *Options) { o.ObserveAll = false },
			events: []*protocols.Event{connect("modbus/1", "127.76.1.1:40000", host, 0),
				disconnect("modbus/1", "127.76.1.1:40000", host, time.Second, 0),
				connect("snmp/1", "127.76.1.4:40000", "127.76.0.10:161", 0),
				ev("snmp.request", "", "snmp/1", "127.76.1.4:40000", "127.76.0.10:161", time.Second, F("pdu", "set")),
				disconnect("snmp/1", "127.76.1.4:40000", "127.76.0.10:161", time.Second, 1)},
			want: want{bundles: 1, observed: 1, indicators: 1, sightings: 1, pattern: "[ipv4-addr:value = '127.76.1.4']",
				sightingCount: 1, numberObserved: 1}},
		{name: "a UDP flow without end event expires",
			events: []*protocols.Event{
				ev("bacnet.request", "", "bacnet/1", "127.76.1.5:47808", "127.76.0.10:47808", 0, F("service", "write-property"))},
			tick: 40 * time.Second,
			want: want{bundles: 1, observed: 1, indicators: 1, sightings: 1, pattern: "[ipv4-addr:value = '127.76.1.5']",
				sightingCount: 1, numberObserved: 1}},
		{name: "a full window is cut early",
			opts: func(o *Options) { o.MaxBundleObjects = 1 + 2*objectsPerFlow },
			events: []*protocols.Event{
				connect("modbus/1", "127.76.1.6:1", host, 0), disconnect("modbus/1", "127.76.1.6:1", host, time.Second, 0),
				connect("modbus/2", "127.76.1.7:1", host, 0), disconnect("modbus/2", "127.76.1.7:1", host, time.Second, 0),
				connect("modbus/3", "127.76.1.8:1", host, 0), disconnect("modbus/3", "127.76.1.8:1", host, time.Second, 0)},
			want: want{bundles: 2, observed: 3, numberObserved: 1}},
		{name: "aggregate port: a scan of three hosts is one observed-data",
			opts: func(o *Options) { o.Aggregate = AggregatePort },
			events: []*protocols.Event{
				connect("modbus/1", "127.76.1.9:1", "127.76.0.11:502", 0), disconnect("modbus/1", "127.76.1.9:1", "127.76.0.11:502", time.Second, 0),
				connect("modbus/2", "127.76.1.9:2", "127.76.0.12:502", 0), disconnect("modbus/2", "127.76.1.9:2", "127.76.0.12:502", time.Second, 0),
				connect("modbus/3", "127.76.1.9:3", "127.76.0.12:502", 0),
				ev("modbus.request", "", "modbus/3", "127.76.1.9:3", "127.76.0.12:502", time.Second, F("function_code", uint8(15))),
				disconnect("modbus/3", "127.76.1.9:3", "127.76.0.12:502", time.Second, 1)},
			want: want{bundles: 1, observed: 1, indicators: 1, sightings: 1, pattern: "[ipv4-addr:value = '127.76.1.9']",
				sightingCount: 1, numberObserved: 3, hosts: 2}},
		{name: "nothing seen: no bundle",
			want: want{bundles: 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := testOptions()
			if tc.opts != nil {
				tc.opts(&o)
			}
			x := NewExporter(o, testIdentity())
			var bs []*Bundle
			for _, e := range tc.events {
				bs = append(bs, x.Add(e, e.Time)...)
			}
			if tc.tick > 0 {
				bs = append(bs, x.Tick(t0.Add(tc.tick))...)
				if x.OpenSessions() != 0 {
					t.Errorf("%d sessions open after the timeout", x.OpenSessions())
				}
			}
			bs = append(bs, x.Close(t0.Add(time.Hour))...)
			if len(bs) != tc.want.bundles {
				t.Fatalf("%d bundles, want %d", len(bs), tc.want.bundles)
			}
			var all decoded
			for _, b := range bs {
				d := decode(t, v, b)
				if ids := d.ofType("identity"); len(ids) != 1 || ids[0]["id"] != IdentityID("s1") {
					t.Errorf("bundle identities: %v", ids)
				}
				all.objs = append(all.objs, d.objs...)
			}
			od, ind, sig := all.ofType("observed-data"), all.ofType("indicator"), all.ofType("sighting")
			if len(od) != tc.want.observed || len(ind) != tc.want.indicators || len(sig) != tc.want.sightings {
				t.Fatalf("observed-data %d, indicators %d, sightings %d; want %d, %d, %d", len(od), len(ind), len(sig),
					tc.want.observed, tc.want.indicators, tc.want.sightings)
			}
			for _, nt := range all.ofType("network-traffic") {
				if h, _ := nt["x_icsnare_hosts"].(float64); h != tc.want.hosts || (h > 0) == (nt["dst_ref"] != nil) {
					t.Errorf("network-traffic hosts %v, dst_ref %v; want hosts %v", nt["x_icsnare_hosts"], nt["dst_ref"], tc.want.hosts)
				}
			}
			for _, o := range od {
				if o["number_observed"] != tc.want.numberObserved {
					t.Errorf("number_observed %v, want %v", o["number_observed"], tc.want.numberObserved)
				}
				if o["created_by_ref"] != IdentityID("s1") {
					t.Errorf("observed-data created by %v", o["created_by_ref"])
				}
			}
			if tc.want.indicators > 0 {
				if ind[0]["pattern"] != tc.want.pattern || ind[0]["pattern_type"] != "stix" || ind[0]["valid_from"] == nil {
					t.Errorf("indicator %v", ind[0])
				}
				if sig[0]["sighting_of_ref"] != ind[0]["id"] || sig[0]["count"] != tc.want.sightingCount {
					t.Errorf("sighting %v of indicator %v", sig[0], ind[0]["id"])
				}
				if refs := sig[0]["observed_data_refs"].([]any); len(refs) != 1 || refs[0] != od[len(od)-1]["id"] {
					t.Errorf("sighting refers to observed-data %v, the bundle has %v", refs, od[len(od)-1]["id"])
				}
			}
		})
	}
}

// TestExporterBounds checks that a flood of sessions keeps at most MaxSessions open (the
// oldest exported early), and that a source's indicator is one object across bundles.
func TestExporterBounds(t *testing.T) {
	v := stixtest.New(t)
	o := testOptions()
	o.MaxSessions = 3
	x := NewExporter(o, testIdentity())
	var bs []*Bundle
	for i := range 10 {
		src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 76, 2, byte(i)}), 1000).String()
		bs = append(bs, x.Add(connect("modbus/"+src, src, "127.76.0.10:502", time.Duration(i)*time.Millisecond), t0)...)
		if x.OpenSessions() > 3 {
			t.Fatalf("%d sessions open", x.OpenSessions())
		}
	}
	if x.Evicted != 7 {
		t.Errorf("evicted %d, want 7", x.Evicted)
	}
	bs = append(bs, x.Close(t0)...)
	if len(bs) != 1 || len(decode(t, v, bs[0]).ofType("observed-data")) != 10 {
		t.Fatalf("bundles %d", len(bs))
	}

	// aggregate = "port": the hosts of one object are counted up to their bound
	o = testOptions()
	o.Aggregate = AggregatePort
	x = NewExporter(o, testIdentity())
	for i := range maxHostsCounted + 10 {
		dst := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 77, byte(i >> 8), byte(i)}), 502).String()
		sid := "modbus/" + dst
		x.Add(connect(sid, "127.76.2.1:1000", dst, 0), t0)
		x.Add(disconnect(sid, "127.76.2.1:1000", dst, 0, 0), t0)
	}
	nts := decode(t, v, x.Close(t0)[0]).ofType("network-traffic")
	if len(nts) != 1 || nts[0]["x_icsnare_hosts"] != float64(maxHostsCounted) || nts[0]["x_icsnare_hosts_at_least"] != true ||
		nts[0]["x_icsnare_sessions"] != float64(maxHostsCounted+10) {
		t.Errorf("network-traffic of a scan: %v", nts)
	}

	// a returning writer: the same indicator (id, created, content) in both bundles
	x = NewExporter(testOptions(), testIdentity())
	var inds []string
	for round := range 2 {
		at := time.Duration(round) * time.Hour
		sid := "modbus/" + string(rune('a'+round))
		x.Add(connect(sid, "127.76.3.1:1", "127.76.0.10:502", at), t0.Add(at))
		x.Add(ev("modbus.request", "", sid, "127.76.3.1:1", "127.76.0.10:502", at, protocols.F("function_code", uint8(6))), t0.Add(at))
		x.Add(disconnect(sid, "127.76.3.1:1", "127.76.0.10:502", at, 1), t0.Add(at))
		b := x.Tick(t0.Add(at + 2*time.Minute))
		if len(b) != 1 {
			t.Fatalf("round %d: %d bundles", round, len(b))
		}
		d := decode(t, v, b[0])
		raw, _ := json.Marshal(d.ofType("indicator")[0])
		inds = append(inds, string(raw))
	}
	if inds[0] != inds[1] {
		t.Errorf("the indicator changed between bundles:\n%s\n%s", inds[0], inds[1])
	}

	// once its indicator expired, a returning writer gets a new one
	o = testOptions()
	o.IndicatorValidity = Duration{30 * time.Minute}
	x = NewExporter(o, testIdentity())
	var ids []any
	for round := range 2 {
		at := time.Duration(round) * time.Hour
		sid := "modbus/" + string(rune('a'+round))
		x.Add(ev("modbus.request", "", sid, "127.76.3.1:1", "127.76.0.10:502", at, protocols.F("function_code", uint8(6))), t0.Add(at))
		b := x.Close(t0.Add(at + time.Minute))
		ind := decode(t, v, b[0]).ofType("indicator")[0]
		ids = append(ids, ind["id"])
	}
	if ids[0] == ids[1] {
		t.Errorf("an expired indicator %v was sighted again", ids[0])
	}
}

func TestHostileEvents(t *testing.T) {
	v := stixtest.New(t)
	x := NewExporter(testOptions(), testIdentity())
	var bs []*Bundle
	add := func(e *protocols.Event) { bs = append(bs, x.Add(e, t0)...) }
	// no addresses, odd fields, end before start, many action labels, invalid UTF-8
	add(&protocols.Event{Type: "modbus.request", SessionID: "x", Protocol: "modbus", Time: t0,
		Fields: []protocols.Field{protocols.F("function_code", uint64(1<<63))}})
	add(&protocols.Event{Type: "flood.minute", Time: t0, Src: netip.MustParseAddrPort("127.76.4.9:1"),
		Dst: netip.MustParseAddrPort("127.76.0.10:502")}) // no session: left out
	add(&protocols.Event{Type: "disconnect", Phase: protocols.PhaseEnd, SessionID: "y", Time: t0,
		Src: netip.MustParseAddrPort("127.76.4.1:1"), Dst: netip.MustParseAddrPort("127.76.0.10:21"), Protocol: "ftp\xff",
		Fields: []protocols.Field{protocols.F("requests", "many"), protocols.F("bytes_in", -5)}})
	for i := range 100 {
		add(&protocols.Event{Type: "iec104.command", SessionID: "z", Protocol: "iec104", Transport: "tcp", Time: t0,
			Src: netip.MustParseAddrPort("127.76.4.2:1"), Dst: netip.MustParseAddrPort("127.76.0.10:2404"),
			Fields: []protocols.Field{protocols.F("type_id", i)}})
	}
	if x.OpenSessions() != 2 {
		t.Errorf("%d sessions open, want 2 (x and z)", x.OpenSessions())
	}
	bs = append(bs, x.Close(t0)...)
	for _, b := range bs {
		d := decode(t, v, b)
		if strings.Contains(string(d.raw), "127.76.4.9") {
			t.Error("an event of no session became an observation")
		}
		for _, s := range d.ofType("sighting") {
			if s["count"] != float64(100) {
				t.Errorf("sighting count %v", s["count"])
			}
		}
	}
}

func TestDirRotation(t *testing.T) {
	for _, tc := range []struct {
		name     string
		maxFiles int
		maxBytes int64
		writes   int
		keep     int
	}{
		{"by count", 3, 1 << 20, 7, 3},
		{"by size", 100, 250, 7, 2},
		{"the newest stays however large", 100, 10, 3, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			w := &dirWriter{dir: dir, maxFiles: tc.maxFiles, maxBytes: tc.maxBytes}
			os.WriteFile(filepath.Join(dir, "unrelated.txt"), []byte("x"), 0o600)
			var last string
			for i := range tc.writes {
				name, err := w.write([]byte(strings.Repeat("x", 100)), t0.Add(time.Duration(i)*time.Second))
				if err != nil {
					t.Fatal(err)
				}
				last = name
			}
			m, _ := filepath.Glob(filepath.Join(dir, bundlePrefix+"*"+bundleSuffix))
			if len(m) != tc.keep || filepath.Base(m[len(m)-1]) != last {
				t.Errorf("kept %v, want %d ending with %s", m, tc.keep, last)
			}
			if _, err := os.Stat(filepath.Join(dir, "unrelated.txt")); err != nil {
				t.Error("rotation removed a file not its own")
			}
		})
	}
}

func TestOptionsValidate(t *testing.T) {
	file := filepath.Join(t.TempDir(), "f")
	os.WriteFile(file, nil, 0o600)
	for _, tc := range []struct {
		name string
		mod  func(*Options)
		err  string
	}{
		{"defaults", func(*Options) {}, ""},
		{"a directory", func(o *Options) { o.Dir = t.TempDir() }, ""},
		{"no directory", func(o *Options) { o.Dir = "/nonexistent/stix" }, "dir:"},
		{"a file", func(o *Options) { o.Dir = file }, "not a directory"},
		{"zero sessions", func(o *Options) { o.MaxSessions = 0 }, "max_sessions"},
		{"tiny bundles", func(o *Options) { o.MaxBundleObjects = 3 }, "max_bundle_objects"},
		{"negative validity", func(o *Options) { o.IndicatorValidity.Duration = -1 }, "indicator_validity"},
		{"unknown aggregation", func(o *Options) { o.Aggregate = "subnet" }, "aggregate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := DefaultOptions()
			tc.mod(&o)
			err := o.Validate()
			if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("Validate() = %v, want %q", err, tc.err)
			}
		})
	}
}

// TestSinkFiles drives the sink as the bus does and reads the bundle files back; the
// identity keeps its creation time across a restart through the state directory.
func TestSinkFiles(t *testing.T) {
	v := stixtest.New(t)
	dir, state := t.TempDir(), t.TempDir()
	o := testOptions()
	o.Dir = dir
	env := events.Env{SensorID: "s1", StateDir: state}
	var created []string
	for run := range 2 {
		s, err := NewSink(o, env)
		if err != nil {
			t.Fatal(err)
		}
		src := "127.76.5.1:1000"
		for _, e := range []*protocols.Event{connect("modbus/1", src, "127.76.0.10:502", 0),
			ev("modbus.request", "", "modbus/1", src, "127.76.0.10:502", time.Second, protocols.F("function_code", uint8(6))),
			disconnect("modbus/1", src, "127.76.0.10:502", 2*time.Second, 1)} {
			if err := s.Write(e); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if st := s.Stats(); st.Bundles != 1 || st.Lost != 0 {
			t.Errorf("run %d: stats %+v", run, st)
		}
		files, _ := filepath.Glob(filepath.Join(dir, "bundle-*.json"))
		if len(files) != run+1 {
			t.Fatalf("run %d: files %v", run, files)
		}
		raw, err := os.ReadFile(files[len(files)-1])
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Bundle(raw); err != nil {
			t.Fatal(err)
		}
		var doc struct{ Objects []map[string]any }
		json.Unmarshal(raw, &doc)
		for _, o := range doc.Objects {
			if o["type"] == "identity" {
				created = append(created, o["created"].(string))
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	if len(created) != 2 || created[0] != created[1] {
		t.Errorf("identity created %v across restarts", created)
	}
}

// failingOutput refuses every bundle.
type failingOutput struct{ n int }

func (f *failingOutput) Offer(*Bundle) error { f.n++; return os.ErrDeadlineExceeded }

func TestSinkCountsLosses(t *testing.T) {
	s, err := NewSink(testOptions(), events.Env{SensorID: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	out := &failingOutput{}
	s.AddOutput(out)
	s.Write(connect("modbus/1", "127.76.6.1:1", "127.76.0.10:502", 0))
	if err := s.Close(); err == nil {
		t.Error("Close did not report the refused bundle")
	}
	if st := s.Stats(); st.Lost != 1 || st.Bundles != 0 || out.n != 1 {
		t.Errorf("stats %+v, offers %d", st, out.n)
	}
}

// TestSinkResumesAfterWriteError removes the bundle directory under the sink: the bundle
// is lost, counted and reported; once the directory is back, bundles are written again.
func TestSinkResumesAfterWriteError(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "stix")
	os.Mkdir(dir, 0o755)
	os.WriteFile(filepath.Join(dir, ".bundle-123.tmp"), []byte("{"), 0o600) // a crash's leftover
	o := testOptions()
	o.Dir = dir
	s, err := NewSink(o, events.Env{SensorID: "s1", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := os.Stat(filepath.Join(dir, ".bundle-123.tmp")); err == nil {
		t.Error("a stale temporary file stayed")
	}
	session := func(n int) {
		sid := fmt.Sprintf("modbus/%d", n)
		s.Write(connect(sid, "127.76.7.1:1", "127.76.0.10:502", 0))
		s.Write(disconnect(sid, "127.76.7.1:1", "127.76.0.10:502", time.Second, 0))
	}
	os.RemoveAll(dir)
	session(1)
	if err := s.Cut(); err == nil {
		t.Fatal("a bundle into a missing directory was not reported")
	}
	if st := s.Stats(); st.Lost != 1 || st.Bundles != 0 {
		t.Fatalf("stats %+v", st)
	}
	os.Mkdir(dir, 0o755)
	session(2)
	if err := s.Cut(); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "bundle-*.json"))
	if st := s.Stats(); st.Lost != 1 || st.Bundles != 1 || len(files) != 1 {
		t.Fatalf("stats %+v, files %v", st, files)
	}
}
