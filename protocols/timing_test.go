package protocols_test

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
)

func timingNode(t *testing.T, attrs string) *profiles.Node {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "template.xml"), []byte(`<core><template><entity name="unit">t</entity></template><databus/></core>`), 0o644)
	os.MkdirAll(filepath.Join(dir, "modbus"), 0o755)
	os.WriteFile(filepath.Join(dir, "modbus", "modbus.xml"), []byte(`<modbus enabled="True"><timing `+attrs+`/></modbus>`), 0o644)
	p, err := profiles.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return p.Sections["modbus"].Root.Child("timing")
}

// TestTimingModel checks the parts of a timing model on fixed instants (no wall clock).
func TestTimingModel(t *testing.T) {
	m, err := protocols.ParseTiming(timingNode(t, `base="1ms-3ms" jitter="0.5ms" cycle="10ms" load="2ms"`))
	if err != nil {
		t.Fatal(err)
	}
	p, err := profiles.Open(profiles.DefaultName)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	bases := map[time.Duration]bool{}
	for i := range 20 {
		h := protocols.NewHost(netip.AddrFrom4([4]byte{198, 18, 39, byte(i + 1)}), p, uint64(i)*7919+1, now)
		var min time.Duration = time.Hour
		for j := range 200 {
			d, done := m.Delay(h, "modbus.timing", now.Add(time.Duration(j)*time.Millisecond))
			done()
			if d < time.Millisecond || d > 3*time.Millisecond+10*time.Millisecond+20*time.Millisecond {
				t.Fatalf("host %d: delay %v outside base+cycle+jitter", i, d)
			}
			min = minDur(min, d)
		}
		bases[min.Round(100*time.Microsecond)] = true
		// load: a second request while the first is answered waits longer by load
		d1, done1 := m.Delay(h, "modbus.timing", now)
		d2, done2 := m.Delay(h, "modbus.timing", now)
		done1()
		done2()
		if d2 < d1+2*time.Millisecond-3*time.Millisecond { // jitter may differ by its draw
			t.Fatalf("host %d: queued request %v not slower than %v", i, d2, d1)
		}
	}
	if len(bases) < 10 {
		t.Fatalf("20 hosts show %d distinct base latencies", len(bases))
	}
	protocols.SetTiming(false)
	defer protocols.SetTiming(true)
	h := protocols.NewHost(netip.MustParseAddr("198.18.39.9"), p, 9, now)
	if d, done := m.Delay(h, "modbus.timing", now); d != 0 {
		t.Fatalf("timing off: delay %v", d)
	} else {
		done()
	}
	// Off, Wait puts nothing on the answer's path: no draw is kept in the host's state.
	if ok, done := m.Wait(t.Context(), h, "modbus.timing"); !ok {
		t.Fatal("timing off: Wait failed")
	} else {
		done()
	}
	if h.State("modbus.timing", func() any { return "none" }) != "none" {
		t.Fatal("timing off: Wait drew the host's timing")
	}
}

func minDur(a, b time.Duration) time.Duration {
	if a < b {
		return a
	}
	return b
}

// TestTimingCycleShared checks that two protocols of one host wait for the same scan cycle.
func TestTimingCycleShared(t *testing.T) {
	a, _ := protocols.ParseTiming(timingNode(t, `cycle="5ms-25ms"`))
	p, _ := profiles.Open(profiles.DefaultName)
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	h := protocols.NewHost(netip.MustParseAddr("198.18.39.5"), p, 5, now)
	for j := range 50 {
		at := now.Add(time.Duration(j) * 1300 * time.Microsecond)
		d1, f1 := a.Delay(h, "modbus.timing", at)
		f1()
		d2, f2 := a.Delay(h, "s7comm.timing", at)
		f2()
		if at.Add(d1) != at.Add(d2) {
			t.Fatalf("modbus answers at %v, s7 at %v: two scan cycles on one CPU", d1, d2)
		}
	}
}

func TestTimingErrors(t *testing.T) {
	for _, bad := range []string{`base="3ms-1ms"`, `base="fast"`, `jitter="-1ms"`, `cycle="2s"`, `load="1h"`} {
		if _, err := protocols.ParseTiming(timingNode(t, bad)); err == nil || !strings.Contains(err.Error(), "timing") {
			t.Errorf("%s: error %v", bad, err)
		}
	}
}
