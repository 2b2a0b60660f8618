package stix

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols"
)

var fuzzTypes = []string{"modbus.request", "s7comm.stop", "s7comm.request", "snmp.request", "bacnet.request",
	"iec104.command", "ipmi.request", "ftp.upload", "http.request", "connect", "disconnect"}

// eventsFrom turns fuzz input into events, 8 bytes each: session, phase, type, a field
// value, source address bytes, time step, address family.
func eventsFrom(b []byte) []*protocols.Event {
	var out []*protocols.Event
	at := t0
	for ; len(b) >= 8; b = b[8:] {
		at = at.Add(time.Duration(b[6]) * 100 * time.Millisecond)
		e := &protocols.Event{Time: at, Start: t0, Type: fuzzTypes[int(b[2])%len(fuzzTypes)],
			SessionID: string(rune('a' + b[0]%8)), Transport: []string{"tcp", "udp", ""}[b[0]%3]}
		e.Protocol, _, _ = strings.Cut(e.Type, ".")
		switch b[1] % 3 {
		case 1:
			e.Phase = protocols.PhaseStart
		case 2:
			e.Phase = protocols.PhaseEnd
			e.Fields = append(e.Fields, protocols.F("requests", int(b[3])), protocols.F("bytes_in", int64(b[4])),
				protocols.F("bytes_out", int64(b[5])))
		}
		e.Fields = append(e.Fields, protocols.F("function_code", b[3]), protocols.F("type_id", b[3]),
			protocols.F("pdu", []string{"get", "set"}[b[3]%2]), protocols.F("function", []string{"pi_service", "read_var"}[b[3]%2]))
		switch b[7] % 3 {
		case 0:
			e.Src = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 76, b[4], b[5]}), uint16(b[3]))
			e.Dst = netip.MustParseAddrPort("127.76.0.10:502")
		case 1:
			e.Src = netip.AddrPortFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: b[4]}), uint16(b[5]))
			e.Dst = netip.MustParseAddrPort("[2001:db8::10]:102")
		}
		out = append(out, e)
	}
	return out
}

// FuzzExporter feeds event sequences to a small exporter and checks its bounds and that
// every bundle is JSON whose references resolve inside it, with STIX's counts and times
// in order.
func FuzzExporter(f *testing.F) {
	f.Add([]byte("a\x01\x00\x06\x01\x02\x01\x00a\x00\x00\x06\x01\x02\x01\x00a\x02\x00\x06\x01\x02\x01\x00"))
	f.Add([]byte("b\x00\x05\x10\x01\x02\xff\x01c\x00\x03\x00\x09\x09\x00\x02"))
	f.Fuzz(func(t *testing.T, b []byte) {
		o := DefaultOptions()
		o.MaxSessions, o.MaxBundleObjects, o.MaxIndicators = 3, 12, 2
		o.SessionTimeout, o.BundleInterval = Duration{2 * time.Second}, Duration{5 * time.Second}
		if len(b) > 0 && b[0]&0x80 != 0 {
			o.Aggregate = AggregatePort
		}
		x := NewExporter(o, testIdentity())
		var bs []*Bundle
		for i, e := range eventsFrom(b) {
			bs = append(bs, x.Add(e, e.Time)...)
			if x.OpenSessions() > o.MaxSessions {
				t.Fatalf("%d sessions open", x.OpenSessions())
			}
			if i%4 == 3 {
				bs = append(bs, x.Tick(e.Time)...)
			}
		}
		bs = append(bs, x.Close(t0.Add(time.Hour))...)
		for _, bd := range bs {
			if len(bd.Objects) > o.MaxBundleObjects+1 {
				t.Fatalf("bundle of %d objects", len(bd.Objects))
			}
			raw, _ := bd.MarshalJSON()
			var doc struct{ Objects []map[string]any }
			if err := json.Unmarshal(raw, &doc); err != nil {
				t.Fatalf("bundle is not JSON: %v\n%s", err, raw)
			}
			ids := map[string]bool{}
			for _, o := range doc.Objects {
				ids[o["id"].(string)] = true
			}
			for _, o := range doc.Objects {
				for k, v := range o {
					var refs []any
					switch {
					case strings.HasSuffix(k, "_ref"):
						refs = []any{v}
					case strings.HasSuffix(k, "_refs"):
						refs = v.([]any)
					}
					for _, r := range refs {
						if !ids[r.(string)] {
							t.Fatalf("%s: %s %v not in the bundle", o["id"], k, r)
						}
					}
				}
				if n, ok := o["number_observed"].(float64); ok && (n < 1 || n > maxCount) {
					t.Fatalf("number_observed %v", n)
				}
				for _, pair := range [][2]string{{"first_observed", "last_observed"}, {"first_seen", "last_seen"}, {"start", "end"}, {"valid_from", "valid_until"}} {
					a, _ := o[pair[0]].(string)
					c, _ := o[pair[1]].(string)
					if a != "" && c != "" && a > c {
						t.Fatalf("%s: %s %s after %s %s", o["id"], pair[0], a, pair[1], c)
					}
				}
			}
		}
	})
}
