package profiles

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// Process values of a building (temperatures, pressures, setpoints, occupancy) for
// templates: each host draws its own offset and phases from its seed, and the value is a
// pure function of the time, so two reads close together are close, every protocol of the
// host sees the same value, and no state needs guarding.
//
//	<value type="function" param="[21.5, 0.8, 1.2, 86400, 0.15, 1]">process</value>
//
// is mean 21.5 (each host within ±0.8 of it), a swing of ±1.2 over a day, ±0.15 of
// slower and faster wander, one decimal. Two more parameters, on and off hours, make it 0
// outside that daily schedule (a fan speed or a valve of a unit that is off at night).
//
//	<value type="function" param="[6, 19]">schedule</value>
//
// is 1 from 06:00 to 19:00 UTC, else 0: a fan or an occupancy that follows a building's time
// schedule (on the hour, as such schedules are written, so keys of one host agree); two more
// parameters give the values in and out of the schedule ([6, 19, 1, 2]: a BACnet
// multi-state occupied/unoccupied).
func init() {
	RegisterCompiledFunction("process", func(params []any) (func(EngineEnv) (any, error), error) {
		f, err := processParams(params)
		if err != nil {
			return nil, err
		}
		spec := newProcessSpec(f, len(params) == 8)
		return func(env EngineEnv) (any, error) {
			return &processValue{spec: spec, seed: keySeed(env.Seed, "process")}, nil
		}, nil
	})
	// processlist is a list of process values (a Modbus register block, an S7 data block):
	// param is a list of process params, one per element; values are rounded to integers
	// unless an element asks for decimals.
	RegisterCompiledFunction("processlist", func(params []any) (func(EngineEnv) (any, error), error) {
		if len(params) == 0 || len(params) > 4096 {
			return nil, fmt.Errorf("processlist: param is a list of 1 to 4096 process params")
		}
		specs := make([]processSpec, len(params))
		for i, p := range params {
			l, ok := p.([]any)
			if !ok {
				return nil, fmt.Errorf("processlist: element %d is not a list of process params", i+1)
			}
			f, err := processParams(l)
			if err != nil {
				return nil, fmt.Errorf("processlist: element %d: %w", i+1, err)
			}
			specs[i] = *newProcessSpec(f, len(l) == 8)
		}
		return func(env EngineEnv) (any, error) {
			return &processList{specs: specs, seed: keySeed(env.Seed, "processlist")}, nil
		}, nil
	})
	RegisterFunction("schedule", func(env EngineEnv, params []any) (any, error) {
		if len(params) != 2 && len(params) != 4 {
			return nil, fmt.Errorf("schedule: param is [on hour, off hour] or [on hour, off hour, value on, value off]")
		}
		on, ok1 := number(params[0])
		off, ok2 := number(params[1])
		if !ok1 || !ok2 || on < 0 || on > 24 || off < 0 || off > 24 {
			return nil, fmt.Errorf("schedule: hours must be 0-24")
		}
		valOn, valOff := any(int64(1)), any(int64(0))
		if len(params) == 4 {
			valOn, valOff = params[2], params[3]
		}
		return DynamicFunc(func(now time.Time) any {
			if inSchedule(now, on, off) {
				return valOn
			}
			return valOff
		}), nil
	})
}

// processSpec is a process value's parameters, shared by every host of a profile.
type processSpec struct {
	mean, spread, amp, period, noise, scale, dec float64
	gated                                        bool
	on, offHour                                  float64
}

// processValue is one host's process value: nothing but its seed, from which its offset
// and phases are drawn again on every read (a few nanoseconds), so an untouched value costs
// no storage beyond this.
type processValue struct {
	spec *processSpec
	seed uint64
}

// Value implements Dynamic.
func (p *processValue) Value(now time.Time) any {
	g := seedPCG(p.seed)
	return p.spec.at(now, drawProcess(g, p.spec.spread))
}

// processList is one host's list of process values (processlist).
type processList struct {
	specs []processSpec
	seed  uint64
}

// Value implements Dynamic.
func (l *processList) Value(now time.Time) any {
	g := seedPCG(l.seed)
	out := make([]any, len(l.specs))
	for i := range l.specs {
		p := &l.specs[i]
		v := p.at(now, drawProcess(g, p.spread))
		if p.dec == 0 {
			out[i] = int64(v)
		} else {
			out[i] = v
		}
	}
	return out
}

// IntList gives the value at now as a compact list when every element is a whole number
// (no decimals), as Value would give it.
func (l *processList) IntList(now time.Time) (*IntList, bool) {
	for i := range l.specs {
		if l.specs[i].dec != 0 {
			return nil, false
		}
	}
	g := seedPCG(l.seed)
	out := &IntList{n: int32(len(l.specs)), width: 64, lg: 6, w: make([]uint64, len(l.specs))}
	for i := range l.specs {
		p := &l.specs[i]
		out.w[i] = uint64(int64(p.at(now, drawProcess(g, p.spread))))
	}
	return out, true
}

// seedPCG is the generator EngineEnv.Rand gives for a key's seed (keySeed of the label).
func seedPCG(s uint64) *rand.PCG { return rand.NewPCG(s, s^0xda942042e4dd58b5) }

// processDraws is what a host draws for one process value: its offset from the mean and
// the phases of its daily swing and its wander.
type processDraws struct{ off, p1, p2, p3 float64 }

// drawProcess draws one process value's offset and phases from g, as rand.Rand.Float64
// would (the values hosts showed before they were drawn at every read).
func drawProcess(g *rand.PCG, spread float64) processDraws {
	f := func() float64 { return float64(g.Uint64()<<11>>11) / (1 << 53) }
	var d processDraws
	d.off = (2*f() - 1) * spread
	d.p1, d.p2, d.p3 = 2*math.Pi*f(), 2*math.Pi*f(), 2*math.Pi*f()
	return d
}

// processParams checks [mean, spread, amplitude, period, noise, decimals(, on, off)].
func processParams(params []any) ([8]float64, error) {
	f := [8]float64{0, 0, 0, 86400, 0, 1, -1, -1}
	if len(params) < 1 || len(params) > 8 || len(params) == 7 {
		return f, fmt.Errorf("process: param is [mean, spread, amplitude, period seconds, noise, decimals(, on hour, off hour)]")
	}
	for i, p := range params {
		v, ok := number(p)
		if !ok || math.IsNaN(v) || math.IsInf(v, 0) {
			return f, fmt.Errorf("process: param %d (%v) is not a number", i+1, p)
		}
		f[i] = v
	}
	if f[3] < 1 || f[5] < 0 || f[5] > 6 || f[1] < 0 || f[2] < 0 || f[4] < 0 {
		return f, fmt.Errorf("process: period must be at least 1 s, decimals 0-6, spread, amplitude and noise not negative")
	}
	if len(params) == 8 && (f[6] < 0 || f[6] > 24 || f[7] < 0 || f[7] > 24) {
		return f, fmt.Errorf("process: hours must be 0-24")
	}
	return f, nil
}

func newProcessSpec(f [8]float64, gated bool) *processSpec {
	return &processSpec{mean: f[0], spread: f[1], amp: f[2], period: f[3], noise: f[4], dec: f[5], scale: math.Pow(10, f[5]),
		gated: gated, on: f[6], offHour: f[7]}
}

// at is the value at now of a host with draws d: a pure function of the time.
func (p *processSpec) at(now time.Time, d processDraws) float64 {
	if p.gated && !inSchedule(now, p.on, p.offHour) {
		return 0
	}
	t := float64(now.UnixNano()) / 1e9
	w := 2 * math.Pi * t / p.period
	v := p.mean + d.off + p.amp*math.Sin(w+d.p1) + p.noise*(0.6*math.Sin(w*37.3+d.p2)+0.4*math.Sin(w*131.7+d.p3))
	return math.Round(v*p.scale) / p.scale
}

// inSchedule reports whether now (UTC) is between the on and off hours of a day; an off
// hour before the on hour runs across midnight.
func inSchedule(now time.Time, on, off float64) bool {
	u := now.UTC()
	d := u.Sub(time.Date(u.Year(), u.Month(), u.Day(), 0, 0, 0, 0, time.UTC))
	start, stop := time.Duration(on*float64(time.Hour)), time.Duration(off*float64(time.Hour))
	if start > stop {
		return d >= start || d < stop
	}
	return d >= start && d < stop
}

// number reads a template parameter as a float.
func number(v any) (float64, bool) {
	switch n := v.(type) {
	case int64:
		return float64(n), true
	case float64:
		return n, true
	case int:
		return float64(n), true
	}
	return 0, false
}

// Interface and protocol counters of a device that has been up a while:
//
//	<value type="function" param="[1800, 4294967296, 90]">counter</value>
//
// counts at about 1800 per second of the host's uptime (each host its own rate, 0.5 to 1.5
// times that, with a slow wander), plus 90 for every read (the traffic of the request that
// reads it), wrapping at 2^32 as a Counter32 does. Two hosts never show the same count,
// and the count grows with uptime and with traffic.
func init() {
	RegisterCompiledFunction("counter", func(params []any) (func(EngineEnv) (any, error), error) {
		if len(params) < 1 || len(params) > 3 {
			return nil, fmt.Errorf("counter: param is [rate per second(, modulus(, per read))]")
		}
		f := [3]float64{0, 1 << 32, 0}
		for i, p := range params {
			v, ok := number(p)
			if !ok || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
				return nil, fmt.Errorf("counter: param %d (%v) is not a number of at least 0", i+1, p)
			}
			f[i] = v
		}
		rate, mod, perRead := f[0], f[1], int64(f[2])
		if mod < 2 || mod > 1<<63 || rate > 1e12 || perRead > 1<<32 {
			return nil, fmt.Errorf("counter: modulus 2 to 2^63, rate up to 1e12 per second, per read up to 2^32")
		}
		spec := &counterSpec{rate: rate, mod: uint64(mod), perRead: perRead}
		return func(env EngineEnv) (any, error) {
			return &counterValue{spec: spec, seed: keySeed(env.Seed, "counter"), start: env.Start.UnixNano()}, nil
		}, nil
	})
}

// counterSpec is a counter's parameters, shared by every host of a profile.
type counterSpec struct {
	rate    float64
	mod     uint64
	perRead int64
}

// counterValue is one host's counter: its rate and phase are drawn from the seed on every
// read; only the reads and the highest value shown are kept.
type counterValue struct {
	spec        *counterSpec
	seed        uint64
	start       int64 // the host's boot, Unix nanoseconds
	reads, last atomic.Int64
}

// Value implements Dynamic.
func (c *counterValue) Value(now time.Time) any {
	g := seedPCG(c.seed)
	f := func() float64 { return float64(g.Uint64()<<11>>11) / (1 << 53) }
	rate := c.spec.rate * (0.5 + f())
	phase := 2 * math.Pi * f()
	up := float64(int64(time.Duration(now.UnixNano()-c.start) / time.Second))
	// a wander of ±5 % of the rate over hours, never making the count go back
	v := int64(rate*up+0.05*rate*3600*(math.Sin(up/7200+phase)-math.Sin(phase))) + c.reads.Add(1)*c.spec.perRead
	for {
		l := c.last.Load()
		if v <= l {
			v = l
			break
		}
		if c.last.CompareAndSwap(l, v) {
			break
		}
	}
	return int64(uint64(v) % c.spec.mod)
}

// Moments of a host's history relative to its boot, for a diagnostic buffer or an event log:
//
//	<value type="function" param="[-172800, -3600]">bootoffset</value>
//
// is the seconds since a moment between two days and one hour before the host booted, a
// float exact to the nanosecond (a page showing it with since="Key" shows the same
// milliseconds on every request). Each host draws its own moment; positive values are after
// the boot (a start-up sequence: [1.9, 2.6]).
func init() {
	RegisterFunction("bootoffset", func(env EngineEnv, params []any) (any, error) {
		if len(params) != 2 {
			return nil, fmt.Errorf("bootoffset: param is [earliest, latest] seconds relative to the boot")
		}
		lo, ok1 := number(params[0])
		hi, ok2 := number(params[1])
		if !ok1 || !ok2 || math.IsNaN(lo) || math.IsNaN(hi) || lo > hi || lo < -10*365*86400 || hi > 86400 {
			return nil, fmt.Errorf("bootoffset: want earliest <= latest, within ten years before and a day after the boot")
		}
		at := env.Start.Add(time.Duration((lo + (hi-lo)*env.Rand("bootoffset").Float64()) * float64(time.Second)))
		return DynamicFunc(func(now time.Time) any { return now.Sub(at).Seconds() }), nil
	})
}

// The MAC of a device's port n (a PROFINET CPU's X2 P1, X2 P2): the host's MAC (icsnare.mac,
// profiles.HostMAC from the host seed) plus n, as vendors number a device's MACs.
//
//	<value type="function" param='["siemens", 1]'>icsnare.portmac</value>
func init() {
	RegisterFunction("icsnare.portmac", func(env EngineEnv, params []any) (any, error) {
		if len(params) != 2 {
			return nil, fmt.Errorf("icsnare.portmac: param is [vendor or OUI, port number]")
		}
		n, ok := number(params[1])
		if !ok || n < 1 || n > 15 || n != math.Trunc(n) {
			return nil, fmt.Errorf("icsnare.portmac: port number %v is not 1 to 15", params[1])
		}
		ouis, err := ouisParam(params[:1])
		if err != nil {
			return nil, err
		}
		mac := HostMACIn(env.HostSeed, ouis)
		mac[5] += byte(n)
		return mac.String(), nil
	})
}

// The host's own address and its subnet, for SNMP's ipAddrTable and LLDP's management
// address: icsnare.addr is the address; icsnare.netmask the mask of the host rule's prefix
// (EngineEnv.Bits; a rule of single addresses gives a /24, the usual plant subnet);
// icsnare.addrhex the address as an octet string (LLDP's lldpLocManAddr).
func init() {
	RegisterFunction("icsnare.addr", func(env EngineEnv, _ []any) (any, error) {
		return env.Addr.Unmap().String(), nil
	})
	RegisterFunction("icsnare.netmask", func(env EngineEnv, _ []any) (any, error) {
		return Netmask(env), nil
	})
	RegisterFunction("icsnare.addrhex", func(env EngineEnv, _ []any) (any, error) {
		return fmt.Sprintf("%x", env.Addr.Unmap().AsSlice()), nil
	})
}

// Netmask is the dotted IPv4 netmask of the host's subnet (EngineEnv.Bits, /24 when the rule
// is a single address or unknown).
func Netmask(env EngineEnv) string {
	bits := env.Bits
	if bits <= 0 || bits >= 31 || !env.Addr.Unmap().Is4() {
		bits = 24
	}
	m := ^uint32(0) << (32 - bits)
	return fmt.Sprintf("%d.%d.%d.%d", byte(m>>24), byte(m>>16), byte(m>>8), byte(m))
}
