package kamstrupmeter

import (
	"math"
	"net/netip"
	"testing"
	"time"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
)

// templateBase reads the template's values, as the databus hands them to an overlay.
func templateBase(t *testing.T) func(string) (any, error) {
	p := loadTemplate(t)
	db := p.Schema.NewDatabus(profiles.EngineEnv{Seed: 1})
	return func(k string) (any, error) { return db.Get(k) }
}

func newSim(t *testing.T, seed uint64, start time.Time) *Simulator {
	t.Helper()
	v, err := newSimulator(profiles.EngineEnv{Seed: seed, Start: start}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := v.(*Simulator)
	s.init(templateBase(t))
	return s
}

// TestEnergyFollowsPower: with an injected clock, the energy counter read twice ten
// seconds apart grows by the integral of the power the registers show in between.
func TestEnergyFollowsPower(t *testing.T) {
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	s := newSim(t, 42, start)
	base := templateBase(t)
	e13, _ := s.Overlay(keyEnergyInHiRes, base)
	e1, _ := s.Overlay(keyEnergyIn, base)
	var p [3]profiles.Dynamic
	for i := range p {
		v, ok := s.Overlay(keyPower[i], base)
		if !ok {
			t.Fatal("no power overlay")
		}
		p[i] = v.(profiles.Dynamic)
	}
	// At the host's start the counter shows the template's value.
	if v := e13.(profiles.Dynamic).Value(start); v.(int64) != 71832712 {
		t.Errorf("energy at start %v, want the template's 71832712", v)
	}
	for _, t0 := range []time.Time{start.Add(time.Hour), start.Add(17*time.Hour + 3*time.Minute), start.Add(400 * 24 * time.Hour)} {
		t1 := t0.Add(10 * time.Second)
		a := e13.(profiles.Dynamic).Value(t0).(int64)
		b := e13.(profiles.Dynamic).Value(t1).(int64)
		// What the power registers (W) imply: sum of 1 s samples (trapezoid), in 0.1 Wh.
		var ws float64
		for k := range 10 {
			for i := range p {
				lo := float64(p[i].Value(t0.Add(time.Duration(k) * time.Second)).(int64))
				hi := float64(p[i].Value(t0.Add(time.Duration(k+1) * time.Second)).(int64))
				ws += (lo + hi) / 2
			}
		}
		want := ws / 360
		if got := float64(b - a); math.Abs(got-want) > 0.02*want+2 {
			t.Errorf("at %v: energy grew %v (0.1 Wh), the power implies %.1f", t0, got, want)
		}
		if b <= a {
			t.Errorf("energy did not grow: %d then %d", a, b)
		}
		if low := e1.(profiles.Dynamic).Value(t1).(int64); low != b/1000 {
			t.Errorf("register 1 = %d, register 13 = %d", low, b)
		}
	}
}

// TestSimulatorBelievable: voltages stay near the nominal ones, currents follow power and
// voltage, values move over time, and two hosts do not look cloned.
func TestSimulatorBelievable(t *testing.T) {
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	a, b := newSim(t, 1, start), newSim(t, 2, start)
	moved := false
	first := a.Power(1, start)
	for k := range 24 * 60 {
		now := start.Add(time.Duration(k) * time.Minute)
		for i := range 3 {
			v := a.Voltage(i, now)
			if v < 215 || v > 240 {
				t.Fatalf("phase %d voltage %.1f V", i+1, v)
			}
			if p := a.Power(i, now); p <= 0 || p > 2*[]float64{1000, 5499, 895}[i] {
				t.Fatalf("phase %d power %.1f W", i+1, p)
			}
			if c := a.Current(i, now); math.Abs(c*v*a.ph[i].pf-a.Power(i, now)) > 1e-6 {
				t.Fatalf("current %.3f A incoherent", c)
			}
		}
		if math.Abs(a.Power(1, now)-first) > 50 {
			moved = true
		}
	}
	if !moved {
		t.Error("power never moved in a day")
	}
	now := start.Add(5 * time.Hour)
	if a.Power(0, now) == b.Power(0, now) || a.EnergyHiRes(now) == b.EnergyHiRes(now) {
		t.Error("two hosts show the same power and energy")
	}
	// The energy counter never runs backwards, even when the clock does.
	e := a.EnergyHiRes(now)
	if back := a.EnergyHiRes(now.Add(-time.Hour)); back < e {
		t.Errorf("energy went back from %d to %d", e, back)
	}
}

// TestSimulatorThroughDatabus: the live registers are databus values of the host, so any
// protocol reading them sees them; a write wins over the simulation.
func TestSimulatorThroughDatabus(t *testing.T) {
	p := loadTemplate(t)
	h := protocols.NewHost(netip.MustParseAddr("127.32.0.9"), p, 99, time.Now().Add(-time.Hour))
	v, err := h.Databus.GetInt("register_13")
	if err != nil || v <= 71832712 {
		t.Fatalf("register_13 after an hour = %d, %v; want above the template's 71832712", v, err)
	}
	if w, err := h.Databus.GetInt("register_1080"); err != nil || w == 1000 && v == 0 {
		t.Fatalf("register_1080 = %d, %v", w, err)
	}
	if tp, err := h.Databus.GetInt("power_simulator"); err != nil || tp <= 0 {
		t.Fatalf("power_simulator = %d, %v", tp, err)
	}
	h.Databus.Set("register_1054", int64(100))
	if got, _ := h.Databus.GetInt("register_1054"); got != 100 {
		t.Fatalf("written voltage reads %d", got)
	}
	// Template values the simulator does not drive are untouched.
	if got, _ := h.Databus.GetInt("register_1001"); got != 15085488 {
		t.Fatalf("register_1001 = %d", got)
	}
}

// TestMeterClock: the meter's clock, date and hour counter run (the template froze them at
// 20:35:13 on 14-07-27 with 283 hours).
func TestMeterClock(t *testing.T) {
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	s := newSim(t, 3, start)
	base := templateBase(t)
	at := time.Date(2026, 11, 29, 9, 5, 7, 0, time.UTC)
	for key, want := range map[string]int64{keyClock: 90507, keyDate: 261129, keyHourCounter: 283 + int64(at.Sub(start)/time.Hour)} {
		v, ok := s.Overlay(key, base)
		if !ok {
			t.Fatalf("%s not driven", key)
		}
		if got := v.(profiles.Dynamic).Value(at); got != want {
			t.Errorf("%s = %v, want %d", key, got, want)
		}
	}
}

// TestSimulatorConcurrent: every protocol of a host may read the live registers at once.
func TestSimulatorConcurrent(t *testing.T) {
	p := loadTemplate(t)
	h := protocols.NewHost(netip.MustParseAddr("127.32.0.10"), p, 5, time.Now().Add(-time.Minute))
	done := make(chan int64, 8)
	for range 8 {
		go func() {
			var last int64
			for range 200 {
				for _, k := range []string{"register_13", "register_1", "register_1080", "register_1076", "register_1054", "power_simulator"} {
					v, err := h.Databus.GetInt(k)
					if err != nil {
						t.Error(err)
					}
					if k == "register_13" {
						if v < last {
							t.Errorf("energy went back from %d to %d", last, v)
						}
						last = v
					}
				}
			}
			done <- last
		}()
	}
	for range 8 {
		<-done
	}
}
