package guardianast

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
)

// station is one host's gauge: its tanks' models. The databus keys of the tank values
// (Conpot's volN, ullageN, heightN, h2oN, tempN) become dynamic values computed from the
// models, so every protocol of the host reads the same moving values; a key someone wrote
// keeps what was written.
type station struct {
	db    *profiles.Databus
	tanks []*tank
}

// tankKeys are the databus keys of tank n's values, in Anchors order.
func tankKeys(n int) [5]string {
	s := strconv.Itoa(n)
	return [5]string{"vol" + s, "ullage" + s, "height" + s, "h2o" + s, "temp" + s}
}

// stationFor returns the host's station, building it on first use.
func (s *service) stationFor(h *protocols.Host) *station {
	return h.State(Name+".station", func() any { return s.newStation(h) }).(*station)
}

// newStation builds the models from the host's databus and installs the dynamic values.
// Host.State may call it twice for one host; both results are equal (pure functions of the
// seed and the anchors) and installing twice is harmless.
func (s *service) newStation(h *protocols.Host) *station {
	st := &station{db: h.Databus}
	env := h.Databus.Env()
	for n := 1; n <= s.cfg.tanks; n++ {
		keys := tankKeys(n)
		var a [5]float64
		for i, k := range keys {
			a[i] = s.anchor(h, n, i, k)
		}
		t := newTank(h.Seed, n, env.Start, Anchors{Vol: a[0], Ullage: a[1], Height: a[2], Water: a[3], Temp: a[4]})
		st.tanks = append(st.tanks, t)
		get := []func(State) any{
			func(v State) any { return int64(math.Round(v.Vol)) },
			func(v State) any { return int64(math.Round(v.Ullage)) },
			func(v State) any { return round2(v.Height) },
			func(v State) any { return round2(v.Water) },
			func(v State) any { return round2(v.Temp) },
		}
		for i, k := range keys {
			f := get[i]
			h.Databus.Init(k, profiles.DynamicFunc(func(now time.Time) any { return f(t.at(now)) }))
		}
	}
	return st
}

// anchorRanges are Conpot's template ranges, used for a key the profile does not define.
var anchorRanges = [5][2]float64{{1000, 9050}, {3000, 9999}, {25, 75.99}, {0, 9.99}, {50, 59.99}}

// anchor returns the start value of one tank key: the databus value, or one drawn from the
// host's seed in Conpot's range when the profile lacks the key or it is not a number.
func (s *service) anchor(h *protocols.Host, n, i int, key string) float64 {
	if v, err := h.Databus.Get(key); err == nil {
		if f, ok := toFloat(v); ok {
			return f
		}
	}
	r := anchorRanges[i]
	return r[0] + (r[1]-r[0])*unit(h.Seed, uint64(n), uint64(1000+i))
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case int64:
		return float64(x), true
	case int:
		return float64(x), true
	case float64:
		return x, !math.IsNaN(x) && !math.IsInf(x, 0)
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		return f, err == nil && !math.IsNaN(f) && !math.IsInf(f, 0)
	}
	return 0, false
}

func round2(f float64) float64 { return math.Round(f*100) / 100 }

// Reading is what the gauge reports for one tank at one time.
type Reading struct {
	Tank    int
	Product string
	State
	TCVol float64 // volume corrected to 60 °F
}

// read returns tank n's reading at now: the databus values (the models, unless someone
// wrote a key), the product label, and the model's other quantities.
func (st *station) read(n int, now time.Time) Reading {
	t := st.tanks[n-1]
	r := Reading{Tank: n, State: t.at(now)}
	keys := tankKeys(n)
	for i, p := range []*float64{&r.Vol, &r.Ullage, &r.Height, &r.Water, &r.Temp} {
		if v, err := st.db.Get(keys[i]); err == nil {
			if f, ok := toFloat(v); ok {
				*p = f
			}
		}
	}
	r.Product = st.product(n)
	r.TCVol = r.Vol * (1 - tcBeta(r.Product)*(r.Temp-60))
	return r
}

// product returns tank n's product label (databus productN).
func (st *station) product(n int) string {
	v, err := st.db.GetString(fmt.Sprintf("product%d", n))
	if err != nil {
		return fmt.Sprintf("PRODUCT %d", n)
	}
	return v
}

// setProduct writes tank n's label; the databus write hook keeps it for the host.
func (st *station) setProduct(n int, label string) {
	st.db.Set(fmt.Sprintf("product%d", n), label)
}

// Alarm is one tank alarm or warning, with the TLS-350 alarm type number.
type Alarm struct {
	Tank  int
	Type  int // 03 high water alarm, 05 low product, 10 high water warning, 11 delivery needed
	Text  string
	Since time.Time
}

// Alarm types.
const (
	alarmHighWater     = 3
	alarmLowProduct    = 5
	warnHighWater      = 10
	warnDeliveryNeeded = 11
)

// alarms returns tank n's active alarms at now, given its reading then.
func (st *station) alarms(n int, now time.Time, r Reading) []Alarm {
	t := st.tanks[n-1]
	u := math.Max(days(now), t.u0)
	var out []Alarm
	since := func(x float64) time.Time {
		if x <= 0 {
			return fromDays(t.u0)
		}
		return fromDays(x)
	}
	switch {
	case r.Water >= t.alarmWater:
		out = append(out, Alarm{n, alarmHighWater, "HIGH WATER ALARM", since(t.waterSince(u, t.alarmWater))})
	case r.Water >= t.warnWater:
		out = append(out, Alarm{n, warnHighWater, "HIGH WATER WARNING", since(t.waterSince(u, t.warnWater))})
	}
	if r.Vol < lowFrac*r.Capacity {
		out = append(out, Alarm{n, alarmLowProduct, "LOW PRODUCT ALARM", since(r.Ordered)})
	}
	if r.Ordered > 0 {
		out = append(out, Alarm{n, warnDeliveryNeeded, "DELIVERY NEEDED", since(r.Ordered)})
	}
	return out
}

// history returns tank n's past alarms: the delivery-needed warnings of its recent
// deliveries (cleared by the drop) and the active ones, newest first.
func (st *station) history(n int, now time.Time, priorityOnly bool) []Alarm {
	var out []Alarm
	for _, a := range st.alarms(n, now, st.read(n, now)) {
		if !priorityOnly || a.Type == alarmHighWater || a.Type == alarmLowProduct {
			out = append(out, a)
		}
	}
	if priorityOnly {
		return out
	}
	for _, d := range st.tanks[n-1].deliveries(now, 3) {
		out = append(out, Alarm{n, warnDeliveryNeeded, "DELIVERY NEEDED", fromDays(d.ordered)})
	}
	return out
}
