package protocols

import (
	"sync"
	"testing"
)

// recorder keeps the events it is given.
type recorder struct {
	mu sync.Mutex
	ev []Event
}

func (r *recorder) Emit(e *Event) {
	r.mu.Lock()
	r.ev = append(r.ev, *e)
	r.mu.Unlock()
}

// TestVolumeControl: past KeepEvents a session emits only notable events (Notable, failed
// requests); the others are summarised by kind with their bytes, and session events
// (start, end) are never summarised.
func TestVolumeControl(t *testing.T) {
	for _, tc := range []struct {
		name    string
		keep    int
		emitted int // of the 11 events between connect and disconnect
	}{
		{"off", 0, 11},
		{"keep3", 3, 5}, // 3 kept, the write, the error
		{"keep100", 100, 11},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			s := &Session{ID: "v", Protocol: "p", Events: rec, KeepEvents: tc.keep}
			hooked := 0
			s.OnSummarised = func(*Session, int, int) { hooked++ }
			s.EmitPhase(PhaseStart, "connect")
			for i := range 10 {
				switch i {
				case 5:
					s.Request("write", false)
					s.Notable()
				case 7:
					s.Request("read", true) // an error
				default:
					s.Request("read", false)
				}
				s.Emit("request", []byte{1, 2, 3}, []byte{4, 5})
			}
			s.Emit("noise", []byte{1}, nil) // no request before it: summarised under its type
			s.EmitPhase(PhaseEnd, "disconnect")
			n := len(rec.ev)
			if rec.ev[0].Phase != PhaseStart || rec.ev[n-1].Phase != PhaseEnd {
				t.Fatal("a session start or end event was summarised")
			}
			if got := n - 2; got != tc.emitted {
				t.Fatalf("emitted %d events, want %d", got, tc.emitted)
			}
			sum := s.Summary()
			if tc.emitted == 11 {
				if sum != nil || hooked != 0 {
					t.Fatalf("summary %+v, hook %d; want none", sum, hooked)
				}
				return
			}
			if sum.Events != 6 || hooked != 6 {
				t.Fatalf("summarised %d, hook %d; want 6", sum.Events, hooked)
			}
			if sum.Kinds["read"] != 5 || sum.Kinds["p.noise"] != 1 || sum.BytesIn != 5*3+1 || sum.BytesOut != 5*2 {
				t.Errorf("summary %+v", sum)
			}
			if sum.First.IsZero() || sum.Last.Before(sum.First) {
				t.Errorf("summary times %v .. %v", sum.First, sum.Last)
			}
			for _, e := range rec.ev[4:] { // past the 3 kept (and connect)
				if e.Phase == "" && e.Type == "p.request" && e.Request == nil {
					t.Errorf("kept event without its payload: %+v", e)
				}
			}
		})
	}
}

// TestVolumeSummaryKindsBounded: a session with ever new kinds counts those past the
// bound under "other".
func TestVolumeSummaryKindsBounded(t *testing.T) {
	s := &Session{ID: "v", Protocol: "p", Events: &recorder{}, KeepEvents: 1}
	for i := range 1000 {
		s.Request(string(rune('a'+i%26))+string(rune('a'+i/26%26)), false)
		s.Emit("request", nil, nil)
	}
	sum := s.Summary()
	if len(sum.Kinds) > maxSummaryKinds || sum.Kinds["other"] == 0 || sum.Events != 999 {
		t.Fatalf("%d kinds, other %d, events %d", len(sum.Kinds), sum.Kinds["other"], sum.Events)
	}
}

// TestVolumeSummaryRuns: runs of one kind are counted apart from the map and folded in
// when the kind changes or the summary is read, with nothing lost or counted twice.
func TestVolumeSummaryRuns(t *testing.T) {
	s := &Session{ID: "v", Protocol: "p", Events: &recorder{}, KeepEvents: 1}
	s.Request("kept", false)
	s.Emit("request", nil, nil)
	for _, step := range []struct {
		kinds []string
		want  map[string]int64
	}{
		{[]string{"a", "a", "b", "a"}, map[string]int64{"a": 3, "b": 1}},
		{[]string{"a"}, map[string]int64{"a": 4, "b": 1}}, // the run read above goes on
		{nil, map[string]int64{"a": 4, "b": 1}},           // reading twice adds nothing
		{[]string{"c", "c", "b"}, map[string]int64{"a": 4, "b": 2, "c": 2}},
	} {
		for _, k := range step.kinds {
			s.Request(k, false)
			s.Emit("request", nil, nil)
		}
		sum := s.Summary()
		if len(sum.Kinds) != len(step.want) {
			t.Fatalf("after %v: kinds %v, want %v", step.kinds, sum.Kinds, step.want)
		}
		var events int64
		for k, n := range step.want {
			events += n
			if sum.Kinds[k] != n {
				t.Fatalf("after %v: kinds %v, want %v", step.kinds, sum.Kinds, step.want)
			}
		}
		if sum.Events != events {
			t.Fatalf("after %v: %d events, want %d", step.kinds, sum.Events, events)
		}
	}
}

// TestVolumeControlKeepsClassifiedActions: past KeepEvents, an event ClassifyAction calls a
// write or a state change is kept even when its protocol did not mark it (a BACnet
// WriteProperty, an SNMP SET, a Kamstrup reboot), and a read is summarised.
func TestVolumeControlKeepsClassifiedActions(t *testing.T) {
	tests := []struct {
		proto, typ string
		fields     []Field
		kept       bool
	}{
		{"bacnet", "bacnet.request", []Field{F("service", "write-property")}, true},
		{"bacnet", "bacnet.request", []Field{F("service", "read-property")}, false},
		{"snmp", "snmp.request", []Field{F("pdu", "set")}, true},
		{"snmp", "snmp.request", []Field{F("pdu", "get")}, false},
		{"kamstrup_management", "kamstrup_management.command", []Field{F("command", "RR")}, true},
		{"iec104", "iec104.command", []Field{F("type_id", uint8(45))}, true},
		{"ftp", "ftp.upload", nil, true},
	}
	for _, tc := range tests {
		rec := &recorder{}
		s := &Session{ID: "v", Protocol: tc.proto, Events: rec, KeepEvents: 1}
		s.Emit("request", nil, nil, F("service", "read-property"), F("pdu", "get")) // the one kept
		s.Emit(tc.typ, nil, nil, tc.fields...)
		if got := len(rec.ev) == 2; got != tc.kept {
			t.Errorf("%s %v: kept %v, want %v", tc.typ, tc.fields, got, tc.kept)
		}
	}
}

// TestRequestSkipAsRequestThenSkip: RequestSkip decides, counts and summarises as Request
// followed by Skip (and Emit for a kept event) do, over a run of reads, failed reads,
// writes the classifier keeps, a Notable mark, with volume control on and off and without
// an emitter.
func TestRequestSkipAsRequestThenSkip(t *testing.T) {
	type req struct {
		kind    string
		failed  bool
		fc      int
		notable bool
	}
	var run []req
	for i := range 40 {
		r := req{kind: "read_holding_registers", fc: 3}
		switch {
		case i%7 == 3:
			r.failed = true
		case i%11 == 5:
			r.kind, r.fc = "write_single_register", 6 // kept by ClassifyAction
		case i%13 == 9:
			r.notable = true
		}
		run = append(run, r)
	}
	for _, tc := range []struct {
		name   string
		keep   int
		events bool
	}{{"volume control", 5, true}, {"keep all", 0, true}, {"no emitter", 5, false}} {
		t.Run(tc.name, func(t *testing.T) {
			play := func(combined bool) (*Session, *recorder, []bool) {
				rec := &recorder{}
				s := &Session{ID: "v", Protocol: "modbus", KeepEvents: tc.keep}
				if tc.events {
					s.Events = rec
				}
				var skips []bool
				for _, r := range run {
					if r.notable {
						s.Notable()
					}
					f := F("function_code", uint8(r.fc))
					var skip bool
					if combined {
						skip = s.RequestSkip(r.kind, r.failed, "request", []byte{1, 2, 3}, []byte{4}, f)
					} else {
						s.Request(r.kind, r.failed)
						skip = s.Skip("request", []byte{1, 2, 3}, []byte{4}, f)
					}
					skips = append(skips, skip)
					if !skip {
						s.Emit("request", []byte{1, 2, 3}, []byte{4}, f, F("address", 7))
					}
				}
				return s, rec, skips
			}
			a, ra, sa := play(false)
			b, rb, sb := play(true)
			for i := range sa {
				if sa[i] != sb[i] {
					t.Fatalf("request %d (%+v): Skip %v, RequestSkip %v", i, run[i], sa[i], sb[i])
				}
			}
			if len(ra.ev) != len(rb.ev) || a.Requests() != b.Requests() || a.Requests() != int64(len(run)) {
				t.Fatalf("events %d and %d, requests %d and %d", len(ra.ev), len(rb.ev), a.Requests(), b.Requests())
			}
			sumA, sumB := a.Summary(), b.Summary()
			if (sumA == nil) != (sumB == nil) {
				t.Fatalf("summaries %+v and %+v", sumA, sumB)
			}
			if sumA != nil && (sumA.Events != sumB.Events || sumA.BytesIn != sumB.BytesIn || len(sumA.Kinds) != len(sumB.Kinds) ||
				sumA.Kinds["read_holding_registers"] != sumB.Kinds["read_holding_registers"]) {
				t.Errorf("summaries %+v and %+v", sumA, sumB)
			}
			if tc.name == "volume control" && (sumA == nil || sumA.Events == 0 || len(ra.ev) <= tc.keep) {
				t.Errorf("the run should keep some events past the first %d and summarise others: %d kept, summary %+v",
					tc.keep, len(ra.ev), sumA)
			}
		})
	}
}
