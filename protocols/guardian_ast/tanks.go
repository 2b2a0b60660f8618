package guardianast

import (
	"math"
	"sync"
	"time"
)

// The tank model: levels fall with sales that follow the time of day and the day of the
// week, a delivery is ordered when a tank reaches its reorder level and arrives some hours
// later, water seeps in slowly and is pumped out now and then, the temperature follows the
// season and jumps a little with each delivery. Every quantity is a pure function of the
// host's seed, its databus values at the host's start (the anchors) and the time, so an
// evicted and regenerated host shows the same history, and no two hosts share a curve.

const (
	day         = 24 * time.Hour
	dailyAmp    = 0.6  // sales swing over the day, fraction of the mean rate
	weeklyAmp   = 0.15 // and over the week
	minRateFrac = 1 - dailyAmp - weeklyAmp
	lowFrac     = 0.10 // low product alarm, fraction of capacity
	floorFrac   = 0.04 // a delivery always arrives before the tank is this empty
	tempTau     = 1.5  // days for a delivery's temperature offset to fade to 1/e
	maxHistory  = 10   // deliveries kept per tank
	maxAdvance  = 1 << 16
)

// Anchors are one tank's databus values at the host's start (Conpot's keys volN, ullageN,
// heightN, h2oN, tempN).
type Anchors struct {
	Vol, Ullage, Height, Water, Temp float64
}

// tank is one tank's model. Its methods are safe for concurrent use.
type tank struct {
	seed     uint64
	u0       float64 // the anchor time, days since the Unix epoch
	capacity float64 // gallons
	vol0     float64
	daily    float64 // mean sales, gallons per day
	peak     float64 // time of day of the sales peak, fraction of a day (UTC)
	weekPh   float64 // phase of the weekly cycle, days
	diameter float64 // inches (231 cubic inches to the gallon)

	h2o0, h2oLow, h2oHigh, h2oRate, firstPump float64
	warnWater, alarmWater                     float64

	temp0, seasonAmp, seasonPeak float64

	mu   sync.Mutex
	cyc  cycle
	next delivery
	hist []delivery // oldest first, at most maxHistory
}

// cycle is the stretch between two deliveries.
type cycle struct {
	k       int     // deliveries before it
	began   float64 // days since the epoch
	vol     float64 // volume when it began
	sold    float64 // cumulative sales when it began
	tempOff float64 // temperature offset when it began
}

// delivery is one fuel drop.
type delivery struct {
	ordered, start, end float64 // days since the epoch: reorder level reached, drop began, ended
	startVol, endVol    float64
	amount              float64
	startSold           float64
	offBefore, offAfter float64 // temperature offsets
	cyc                 cycle   // the cycle it ends
}

// newTank builds tank n's model from its anchors.
func newTank(seed uint64, n int, start time.Time, a Anchors) *tank {
	r := func(label uint64, lo, hi float64) float64 { return lo + (hi-lo)*unit(seed, uint64(n), label) }
	t := &tank{seed: seed ^ uint64(n)*0x9e3779b97f4a7c15, u0: days(start)}
	t.vol0 = math.Max(a.Vol, 0)
	t.capacity = t.vol0 + math.Max(a.Ullage, 0)
	if t.capacity < 1000 {
		t.capacity = math.Max(1000, 2*t.vol0)
	}
	t.daily = t.capacity * r(1, 0.05, 0.16)
	t.peak = r(2, 0.55, 0.85)
	t.weekPh = r(3, 0, 7)
	// A tank about 3.3 diameters long holds the capacity; the template's height anchors the
	// diameter within 15 % of that (Conpot's values are drawn independently of each other).
	nominal := math.Cbrt(4 * 231 * t.capacity / (math.Pi * 3.3))
	t.diameter = nominal
	if lf := levelFrac(t.vol0 / t.capacity); lf > 0 && a.Height > 0 {
		t.diameter = math.Min(math.Max(a.Height/lf, 0.85*nominal), 1.15*nominal)
	}
	t.h2o0 = math.Max(a.Water, 0)
	t.warnWater = r(4, 1.5, 2.5)
	t.alarmWater = t.warnWater + r(5, 0.5, 1.5)
	t.h2oHigh = t.alarmWater + r(6, 0.1, 0.6) // someone pumps the water out soon after the alarm
	t.h2oLow = math.Min(r(7, 0, 0.4), t.h2o0)
	t.h2oRate = r(8, 0.001, 0.008) // inches per day
	t.firstPump = r(9, 0.5, 4)     // days, when the tank starts above h2oHigh
	t.temp0 = a.Temp
	t.seasonAmp = r(10, 2, 6)
	t.seasonPeak = r(11, 200, 240) // day of the year of the warmest ground
	pre := t.prehistory()
	t.hist = []delivery{pre}
	t.cyc = cycle{began: t.u0, vol: t.vol0, tempOff: pre.offAfter * math.Exp(-(t.u0-pre.end)/tempTau)}
	t.next = t.plan(t.cyc)
	return t
}

// days converts a time to days since the Unix epoch.
func days(t time.Time) float64 { return float64(t.UnixNano()) / float64(day) }

// fromDays converts back.
func fromDays(u float64) time.Time { return time.Unix(0, int64(u*float64(day))).UTC() }

// sold returns the gallons sold between the anchor time and u.
func (t *tank) sold(u float64) float64 {
	w := 2 * math.Pi
	f := func(x float64) float64 {
		return x + dailyAmp/w*math.Sin(w*(x-t.peak)) + weeklyAmp*7/w*math.Sin(w*(x-t.weekPh)/7)
	}
	return t.daily * (f(u) - f(t.u0))
}

// when returns the time at which cumulative sales reach s, searching from lo onwards.
func (t *tank) when(lo, s float64) float64 {
	return t.solve(lo, lo+math.Max(s-t.sold(lo), 0)/(t.daily*minRateFrac)+1e-6, s)
}

// solve finds the time in [lo, hi] at which cumulative sales reach s (sold is increasing).
func (t *tank) solve(lo, hi, s float64) float64 {
	for range 60 {
		mid := (lo + hi) / 2
		if t.sold(mid) < s {
			lo = mid
		} else {
			hi = mid
		}
	}
	return hi
}

// prehistory makes up the delivery before the anchor time, so a new host has a delivery
// report and alarm history like any gauge that has been running for a while.
func (t *tank) prehistory() delivery {
	r := func(label uint64, lo, hi float64) float64 { return lo + (hi-lo)*unit(t.seed, 99, label) }
	var d delivery
	endVol := math.Max(t.capacity*r(1, 0.80, 0.92), t.vol0)
	// sales from the end of that delivery to the anchor time brought it down to vol0
	need := endVol - t.vol0
	d.end = t.solve(t.u0-need/(t.daily*minRateFrac)-1e-6, t.u0, -need)
	d.end = math.Min(d.end, t.u0-r(2, 0.05, 0.3))
	d.start = d.end - r(3, 20, 45)/1440
	d.ordered = d.start - r(4, 0.15, 1.2)
	d.endVol = endVol
	d.amount = math.Max(math.Round((endVol-t.capacity*r(5, 0.18, 0.30))/100)*100, 500)
	d.startVol = math.Max(endVol-d.amount+(t.sold(d.end)-t.sold(d.start)), 0)
	d.offAfter = r(6, -1, 1)
	d.cyc = cycle{began: d.start - 3, vol: d.startVol}
	return d
}

// plan computes the delivery that ends cycle c.
func (t *tank) plan(c cycle) delivery {
	k := uint64(c.k) + 100
	r := func(label uint64, lo, hi float64) float64 { return lo + (hi-lo)*unit(t.seed, k, label) }
	reorder := t.capacity * r(1, 0.18, 0.30)
	d := delivery{cyc: c}
	if c.vol <= reorder {
		d.ordered = c.began
	} else {
		d.ordered = t.when(c.began, c.sold+c.vol-reorder)
	}
	d.start = d.ordered + r(2, 0.15, 1.2)
	// never let the tank run dry waiting for the truck
	if floor := t.capacity * floorFrac; c.vol-(t.sold(d.start)-c.sold) < floor {
		d.start = t.when(c.began, c.sold+math.Max(c.vol-floor, 0))
	}
	d.start = math.Max(d.start, c.began+1.0/1440)
	d.end = d.start + r(3, 20, 45)/1440
	d.startSold = t.sold(d.start)
	d.startVol = c.vol - (d.startSold - c.sold)
	fill := t.capacity * r(4, 0.80, 0.92)
	d.amount = math.Max(math.Round((fill-d.startVol)/100)*100, 500)
	d.endVol = d.startVol + d.amount - (t.sold(d.end) - d.startSold)
	d.offBefore = c.tempOff * math.Exp(-(d.start-c.began)/tempTau)
	fuel := r(5, -5, 5) // the delivered fuel's temperature against the tank's
	d.offAfter = (d.startVol*d.offBefore + d.amount*fuel) / (d.startVol + d.amount)
	return d
}

// advance moves the model to time u; t.mu is held.
func (t *tank) advance(u float64) {
	for i := 0; i < maxAdvance && t.next.end <= u; i++ {
		d := t.next
		if len(t.hist) == maxHistory {
			copy(t.hist, t.hist[1:])
			t.hist = t.hist[:maxHistory-1]
		}
		t.hist = append(t.hist, d)
		t.cyc = cycle{k: t.cyc.k + 1, began: d.end, vol: d.endVol, sold: t.sold(d.end), tempOff: d.offAfter}
		t.next = t.plan(t.cyc)
	}
}

// cycleAt returns the cycle containing u and the delivery ending it, for u up to the time
// the model was advanced to; a time older than the kept history gets the oldest cycle
// kept. t.mu is held.
func (t *tank) cycleAt(u float64) (cycle, delivery) {
	if u >= t.cyc.began {
		return t.cyc, t.next
	}
	for i := len(t.hist) - 1; i >= 0; i-- {
		if d := t.hist[i]; u >= d.cyc.began || i == 0 {
			return d.cyc, d
		}
	}
	return t.cyc, t.next
}

// State is a tank's simulated values at one time.
type State struct {
	Vol, Ullage, Height, Water, Temp, WaterVol float64
	Capacity                                   float64
	Delivering                                 bool    // a delivery is in progress
	Ordered                                    float64 // a delivery was ordered (reorder level reached) at this time, 0 for none
}

// at returns the tank's state at time tm.
func (t *tank) at(tm time.Time) State {
	u := math.Max(days(tm), t.u0)
	t.mu.Lock()
	t.advance(u)
	c, d := t.cycleAt(u)
	t.mu.Unlock()
	u = math.Max(u, c.began)
	if u < d.start {
		s := t.state(u, c.vol-(t.sold(u)-c.sold), c.tempOff*math.Exp(-(u-c.began)/tempTau))
		if u >= d.ordered {
			s.Ordered = d.ordered
		}
		return s
	}
	f := (u - d.start) / (d.end - d.start)
	s := t.state(u, d.startVol-(t.sold(u)-d.startSold)+d.amount*f, d.offBefore+(d.offAfter-d.offBefore)*f)
	s.Delivering = true
	return s
}

// state completes a State from the volume and temperature offset at u.
func (t *tank) state(u, vol, off float64) State {
	var s State
	s.Vol = math.Min(math.Max(vol, 0), t.capacity)
	s.Capacity = t.capacity
	s.Ullage = t.capacity - s.Vol
	s.Height = t.diameter * levelFrac(s.Vol/t.capacity)
	s.Water = t.water(u)
	s.WaterVol = t.capacity * volumeFrac(s.Water/t.diameter)
	s.Temp = t.temp(u) + off
	return s
}

// ends returns the states at a delivery's start and end.
func (t *tank) ends(d delivery) (State, State) {
	return t.state(d.start, d.startVol, d.offBefore), t.state(d.end, d.endVol, d.offAfter)
}

// water is the water level at u, inches: a slow rise, pumped out above h2oHigh.
func (t *tank) water(u float64) float64 {
	d := math.Max(u-t.u0, 0)
	span := t.h2oHigh - t.h2oLow
	if t.h2o0 >= t.h2oHigh {
		if d < t.firstPump {
			return t.h2o0 + t.h2oRate*d
		}
		return t.h2oLow + math.Mod(t.h2oRate*(d-t.firstPump), span)
	}
	return t.h2oLow + math.Mod(t.h2o0-t.h2oLow+t.h2oRate*d, span)
}

// waterSince returns when the water level last rose past level before u, or 0.
func (t *tank) waterSince(u, level float64) float64 {
	w := t.water(u)
	if w < level {
		return 0
	}
	return math.Max(u-(w-level)/t.h2oRate, t.u0)
}

// temp is the product temperature at u without delivery offsets, degrees F: the season and
// a small daily swing, anchored at temp0.
func (t *tank) temp(u float64) float64 {
	w := 2 * math.Pi
	season := func(x float64) float64 { return t.seasonAmp * math.Cos(w*(math.Mod(x, 365.25)-t.seasonPeak)/365.25) }
	daily := func(x float64) float64 { return 0.15 * math.Sin(w*(x-t.peak)) }
	return t.temp0 + season(u) - season(t.u0) + daily(u) - daily(t.u0)
}

// deliveries returns the deliveries completed by tm, newest first, at most n.
func (t *tank) deliveries(tm time.Time, n int) []delivery {
	u := math.Max(days(tm), t.u0)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.advance(u)
	var out []delivery
	for i := len(t.hist) - 1; i >= 0 && len(out) < n; i-- {
		out = append(out, t.hist[i])
	}
	return out
}

// volumeFrac is the filled fraction of a horizontal cylinder's volume at level fraction x.
func volumeFrac(x float64) float64 {
	x = math.Min(math.Max(x, 0), 1)
	th := 2 * math.Acos(1-2*x)
	return (th - math.Sin(th)) / (2 * math.Pi)
}

// levelTable holds levelFrac at volume fractions i/levelSteps, for interpolation; built on
// first use (a quarter million trigonometric calls: not at every sensor's start).
var levelTable = sync.OnceValue(func() []float64 {
	t := make([]float64, levelSteps+1)
	for i := range t {
		f := float64(i) / levelSteps
		lo, hi := 0.0, 1.0
		for range 60 {
			mid := (lo + hi) / 2
			if volumeFrac(mid) < f {
				lo = mid
			} else {
				hi = mid
			}
		}
		t[i] = (lo + hi) / 2
	}
	return t
})

const levelSteps = 4096

// levelFrac inverts volumeFrac: interpolated from a table, then one Newton step (the
// derivative of volumeFrac is 8/π·√(x(1−x))); bisection in the first and last steps.
func levelFrac(f float64) float64 {
	if !(f > 0) {
		return 0
	}
	if f >= 1 {
		return 1
	}
	i := int(f * levelSteps)
	if i == 0 || i >= levelSteps-1 { // the steep ends: bisect
		lo, hi := 0.0, 1.0
		for range 50 {
			mid := (lo + hi) / 2
			if volumeFrac(mid) < f {
				lo = mid
			} else {
				hi = mid
			}
		}
		return (lo + hi) / 2
	}
	w := f*levelSteps - float64(i)
	lt := levelTable()
	x := lt[i]*(1-w) + lt[min(i+1, levelSteps)]*w
	if d := 8 / math.Pi * math.Sqrt(x*(1-x)); d > 1e-9 {
		x -= (volumeFrac(x) - f) / d
	}
	return math.Min(math.Max(x, 0), 1)
}

// unit returns a number in [0, 1) derived from the seed and two labels (SplitMix64).
func unit(seed, a, b uint64) float64 {
	x := seed ^ a*0xbf58476d1ce4e5b9 ^ b*0x94d049bb133111eb
	for range 2 {
		x += 0x9e3779b97f4a7c15
		z := x
		z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
		z = (z ^ z>>27) * 0x94d049bb133111eb
		x = z ^ z>>31
	}
	return float64(x>>11) / (1 << 53)
}
