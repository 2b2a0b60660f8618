package kamstrupmeter

import (
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/icsnare/icsnare/profiles"
)

// SimulatorClass is the Conpot class path of the usage simulator (databus key
// power_simulator in the kamstrup_382 template); SimulatorClassOld is the path older
// templates name.
const (
	SimulatorClass    = "conpot.emulators.kamstrup.usage_simulator.UsageSimulator"
	SimulatorClassOld = "conpot.protocols.kamstrup.usage_simulator.UsageSimulator"
)

func init() {
	profiles.RegisterFunction(SimulatorClass, newSimulator)
	profiles.RegisterFunction(SimulatorClassOld, newSimulator)
}

// Registers the simulator drives, by their databus keys. The scales are the 382's
// (the sign/exponent byte of each register): energy hi-res in 0.1 Wh, energy in 100 Wh,
// voltages in V, currents in 10 mA, powers in W.
const (
	keyEnergyIn      = "register_1"  // 10^-1 kWh
	keyEnergyInHiRes = "register_13" // 10^-4 kWh
	keyPowerIn       = "register_1023"
	keyClock         = "register_1002" // hh:mm:ss as the decimal number hhmmss (unit 47)
	keyDate          = "register_1003" // yy:mm:dd as yymmdd (unit 48)
	keyHourCounter   = "register_1004" // operating hours (unit 46)
)

var (
	keyVoltage = [3]string{"register_1054", "register_1055", "register_1056"}
	keyCurrent = [3]string{"register_1076", "register_1077", "register_1078"}
	keyPower   = [3]string{"register_1080", "register_1081", "register_1082"}
)

// wave is one sinusoid of a phase's load, relative to its nominal power.
type wave struct{ amp, omega, phi float64 }

// phase is one of the meter's three phases.
type phase struct {
	nominalW float64 // mean active power
	volts    float64 // nominal voltage
	pf       float64 // power factor
	load     [3]wave // daily cycle, an appliance-scale swing, a short flicker
	vwave    [2]wave // voltage drift
}

// Simulator is the per-host UsageSimulator: the three phases' power follows a daily cycle
// and shorter swings drawn from the host's seed, the energy counters integrate that power
// exactly from the host's start, and voltages and currents follow. Every value is a
// function of the seed and the time, so it is the same whichever protocol reads it and
// however often. Registers written over keep the written value.
type Simulator struct {
	env  profiles.EngineEnv
	once sync.Once
	ph   [3]phase
	// energy base at env.Start, in 10^-4 kWh (register_13's scale)
	base int64
	// hours on the operating hour counter at env.Start
	hours int64
	last  atomic.Int64 // the highest energy reading given, so it never runs backwards
}

func newSimulator(env profiles.EngineEnv, _ []any) (any, error) {
	return &Simulator{env: env}, nil
}

// Overlays implements profiles.Overlay.
func (s *Simulator) Overlays() []string {
	out := []string{keyEnergyIn, keyEnergyInHiRes, keyPowerIn, keyClock, keyDate, keyHourCounter}
	out = append(out, keyVoltage[:]...)
	out = append(out, keyCurrent[:]...)
	return append(out, keyPower[:]...)
}

// Value implements profiles.Dynamic: what reading power_simulator itself gives, the
// total active power in W.
func (s *Simulator) Value(now time.Time) any {
	s.init(nil)
	return int64(math.Round(s.TotalPower(now)))
}

// Overlay implements profiles.Overlay.
func (s *Simulator) Overlay(key string, base func(string) (any, error)) (any, bool) {
	s.init(base)
	switch key {
	case keyEnergyInHiRes:
		return profiles.DynamicFunc(func(now time.Time) any { return s.EnergyHiRes(now) }), true
	case keyEnergyIn:
		return profiles.DynamicFunc(func(now time.Time) any { return s.EnergyHiRes(now) / 1000 }), true
	case keyPowerIn:
		return profiles.DynamicFunc(func(now time.Time) any { return int64(math.Round(s.TotalPower(now))) }), true
	case keyClock:
		return profiles.DynamicFunc(func(now time.Time) any {
			t := now.UTC()
			return int64(t.Hour()*10000 + t.Minute()*100 + t.Second())
		}), true
	case keyDate:
		return profiles.DynamicFunc(func(now time.Time) any {
			t := now.UTC()
			return int64(t.Year()%100*10000 + int(t.Month())*100 + t.Day())
		}), true
	case keyHourCounter:
		return profiles.DynamicFunc(func(now time.Time) any {
			return s.hours + max(0, int64(now.Sub(s.env.Start)/time.Hour))
		}), true
	}
	for i := range 3 {
		switch key {
		case keyVoltage[i]:
			return profiles.DynamicFunc(func(now time.Time) any { return int64(math.Round(s.Voltage(i, now))) }), true
		case keyCurrent[i]:
			return profiles.DynamicFunc(func(now time.Time) any { return int64(math.Round(100 * s.Current(i, now))) }), true
		case keyPower[i]:
			return profiles.DynamicFunc(func(now time.Time) any { return int64(math.Round(s.Power(i, now))) }), true
		}
	}
	return nil, false
}

// number reads a template value as a float; ok is false when it is missing or not numeric.
func number(base func(string) (any, error), key string) (float64, bool) {
	if base == nil {
		return 0, false
	}
	v, err := base(key)
	if err != nil {
		return 0, false
	}
	switch x := v.(type) {
	case int64:
		return float64(x), true
	case float64:
		return x, true
	case string:
		f, err := strconv.ParseFloat(x, 64)
		return f, err == nil
	}
	return 0, false
}

// init draws the phases from the seed around the template's values (Conpot starts from
// them too): its powers, voltages and currents set the nominal levels and power factors,
// and register_13 the energy counter at the host's start.
func (s *Simulator) init(base func(string) (any, error)) {
	s.once.Do(func() {
		r := s.env.Rand("kamstrup.usage")
		if e, ok := number(base, keyEnergyInHiRes); ok && e >= 0 && e < 1<<62 {
			s.base = int64(e)
		}
		if h, ok := number(base, keyHourCounter); ok && h >= 0 && h < 1<<40 {
			s.hours = int64(h)
		}
		for i := range s.ph {
			p := &s.ph[i]
			p.nominalW = 300 + r.Float64()*2700
			if w, ok := number(base, keyPower[i]); ok && w > 0 && w < 65536 {
				p.nominalW = w
			}
			p.volts = 230
			if v, ok := number(base, keyVoltage[i]); ok && v >= 90 && v <= 300 {
				p.volts = v
			}
			p.pf = 0.85 + r.Float64()*0.13
			if c, ok := number(base, keyCurrent[i]); ok && c > 0 {
				if pf := p.nominalW / (p.volts * c / 100); pf >= 0.6 && pf <= 1 {
					p.pf = pf
				}
			}
			p.load = [3]wave{
				{amp: 0.25 + 0.1*r.Float64(), omega: 2 * math.Pi / 86400, phi: 2 * math.Pi * r.Float64()},
				{amp: 0.05 + 0.05*r.Float64(), omega: 2 * math.Pi / (2400 + 2400*r.Float64()), phi: 2 * math.Pi * r.Float64()},
				{amp: 0.02 + 0.03*r.Float64(), omega: 2 * math.Pi / (180 + 240*r.Float64()), phi: 2 * math.Pi * r.Float64()},
			}
			p.vwave = [2]wave{
				{amp: 1.5 + r.Float64(), omega: 2 * math.Pi / (3600 + 3600*r.Float64()), phi: 2 * math.Pi * r.Float64()},
				{amp: 0.5 + 0.5*r.Float64(), omega: 2 * math.Pi / (60 + 120*r.Float64()), phi: 2 * math.Pi * r.Float64()},
			}
		}
	})
}

func seconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// Power returns phase i's active power in W at now.
func (s *Simulator) Power(i int, now time.Time) float64 {
	s.init(nil)
	p := &s.ph[i]
	t, f := seconds(now), 1.0
	for _, w := range p.load {
		f += w.amp * math.Sin(w.omega*t+w.phi)
	}
	return p.nominalW * f
}

// TotalPower returns the three phases' active power in W at now.
func (s *Simulator) TotalPower(now time.Time) float64 {
	return s.Power(0, now) + s.Power(1, now) + s.Power(2, now)
}

// Voltage returns phase i's voltage in V at now.
func (s *Simulator) Voltage(i int, now time.Time) float64 {
	s.init(nil)
	p := &s.ph[i]
	t, v := seconds(now), p.volts
	for _, w := range p.vwave {
		v += w.amp * math.Sin(w.omega*t+w.phi)
	}
	return v
}

// Current returns phase i's current in A at now.
func (s *Simulator) Current(i int, now time.Time) float64 {
	return s.Power(i, now) / (s.Voltage(i, now) * s.ph[i].pf)
}

// EnergyWs returns the energy all phases took from the host's start to now, in W·s: the
// exact integral of the power.
func (s *Simulator) EnergyWs(now time.Time) float64 {
	s.init(nil)
	if !now.After(s.env.Start) {
		return 0
	}
	a, b := seconds(s.env.Start), seconds(now)
	var e float64
	for i := range s.ph {
		p := &s.ph[i]
		sum := b - a
		for _, w := range p.load {
			sum += w.amp / w.omega * (math.Cos(w.omega*a+w.phi) - math.Cos(w.omega*b+w.phi))
		}
		e += p.nominalW * sum
	}
	return e
}

// EnergyHiRes returns the energy-in counter in 10^-4 kWh (0.1 Wh, register 13's scale).
// It never runs backwards, even when the clock does.
func (s *Simulator) EnergyHiRes(now time.Time) int64 {
	v := s.base + int64(s.EnergyWs(now)/360)
	for {
		l := s.last.Load()
		if v <= l {
			return l
		}
		if s.last.CompareAndSwap(l, v) {
			return v
		}
	}
}
