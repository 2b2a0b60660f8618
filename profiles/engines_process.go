package profiles

import (
	"fmt"
	"math"
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
	RegisterFunction("process", func(env EngineEnv, params []any) (any, error) {
		if len(params) < 1 || len(params) > 8 || len(params) == 7 {
			return nil, fmt.Errorf("process: param is [mean, spread, amplitude, period seconds, noise, decimals(, on hour, off hour)]")
		}
		f := [8]float64{0, 0, 0, 86400, 0, 1, -1, -1}
		for i, p := range params {
			v, ok := number(p)
			if !ok || math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("process: param %d (%v) is not a number", i+1, p)
			}
			f[i] = v
		}
		mean, spread, amp, period, noise, dec := f[0], f[1], f[2], f[3], f[4], f[5]
		if period < 1 || dec < 0 || dec > 6 || spread < 0 || amp < 0 || noise < 0 {
			return nil, fmt.Errorf("process: period must be at least 1 s, decimals 0-6, spread, amplitude and noise not negative")
		}
		gated := len(params) == 8
		if gated && (f[6] < 0 || f[6] > 24 || f[7] < 0 || f[7] > 24) {
			return nil, fmt.Errorf("process: hours must be 0-24")
		}
		r := env.Rand("process")
		off := (2*r.Float64() - 1) * spread
		p1, p2, p3 := 2*math.Pi*r.Float64(), 2*math.Pi*r.Float64(), 2*math.Pi*r.Float64()
		scale := math.Pow(10, dec)
		return DynamicFunc(func(now time.Time) any {
			if gated && !inSchedule(now, f[6], f[7]) {
				return 0.0
			}
			t := float64(now.UnixNano()) / 1e9
			w := 2 * math.Pi * t / period
			v := mean + off + amp*math.Sin(w+p1) + noise*(0.6*math.Sin(w*37.3+p2)+0.4*math.Sin(w*131.7+p3))
			return math.Round(v*scale) / scale
		}), nil
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
