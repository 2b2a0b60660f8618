package guardianast

import (
	"math"
	"net/netip"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// TestModelAnchors: at the host's start the model shows the databus values it was built
// from (volume, ullage, water, temperature; the height too when the template's values fit a
// tank of 48-144 inches).
func TestModelAnchors(t *testing.T) {
	start := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	a := Anchors{Vol: 6000, Ullage: 4000, Height: 60, Water: 1.2, Temp: 55.5}
	tk := newTank(77, 1, start, a)
	s := tk.at(start)
	for _, x := range []struct {
		name      string
		got, want float64
	}{{"vol", s.Vol, a.Vol}, {"ullage", s.Ullage, a.Ullage}, {"height", s.Height, a.Height}, {"water", s.Water, a.Water}, {"temp", s.Temp, a.Temp}} {
		if math.Abs(x.got-x.want) > 0.01 {
			t.Errorf("%s at start %.3f, want %.3f", x.name, x.got, x.want)
		}
	}
}

// TestModelMoves: over two weeks the volume falls with sales between deliveries and jumps
// with each delivery, volume and ullage add up to the capacity, the height follows the
// volume, water stays within its sawtooth and temperatures stay plausible.
func TestModelMoves(t *testing.T) {
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	tk := newTank(5, 2, start, Anchors{Vol: 7000, Ullage: 5000, Height: 55, Water: 0.8, Temp: 57})
	prev := tk.at(start)
	var jumps, falls int
	for m := 10; m <= 14*24*60; m += 10 {
		s := tk.at(start.Add(time.Duration(m) * time.Minute))
		if math.Abs(s.Vol+s.Ullage-s.Capacity) > 1e-6 || s.Vol < 0 || s.Vol > s.Capacity {
			t.Fatalf("minute %d: volume %.1f ullage %.1f capacity %.1f", m, s.Vol, s.Ullage, s.Capacity)
		}
		switch {
		case s.Vol > prev.Vol+1:
			jumps++
			if !s.Delivering && !prev.Delivering && s.Vol-prev.Vol < 500 {
				t.Fatalf("minute %d: volume rose %.1f outside a delivery", m, s.Vol-prev.Vol)
			}
		case s.Vol < prev.Vol:
			falls++
		}
		if (s.Vol > prev.Vol) != (s.Height > prev.Height) && s.Vol != prev.Vol {
			t.Fatalf("minute %d: height %.2f→%.2f against volume %.1f→%.1f", m, prev.Height, s.Height, prev.Vol, s.Vol)
		}
		if s.Water < 0 || s.Water > 6 || s.Temp < 40 || s.Temp > 75 {
			t.Fatalf("minute %d: water %.2f temp %.2f", m, s.Water, s.Temp)
		}
		prev = s
	}
	if jumps == 0 || falls < 1000 {
		t.Fatalf("two weeks: %d ten-minute rises (deliveries), %d falls", jumps, falls)
	}
	if d := tk.deliveries(start.Add(14*24*time.Hour), maxHistory); len(d) < 2 {
		t.Fatalf("%d deliveries in two weeks", len(d))
	}
}

// TestModelDeterministic: the same seed and anchors give the same values whatever the order
// of the reads (an evicted host regenerates identically); other seeds differ.
func TestModelDeterministic(t *testing.T) {
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	a := Anchors{Vol: 5000, Ullage: 6000, Height: 40, Water: 0.3, Temp: 52}
	late := start.Add(40 * 24 * time.Hour)
	x := newTank(1, 1, start, a)
	x.at(late) // read far ahead first
	y := newTank(1, 1, start, a)
	for _, d := range []time.Duration{time.Hour, 5 * 24 * time.Hour, 39 * 24 * time.Hour} {
		if sx, sy := x.at(start.Add(d)), y.at(start.Add(d)); sx != sy {
			t.Fatalf("after %v: %+v vs %+v", d, sx, sy)
		}
	}
	if z := newTank(2, 1, start, a); z.at(late).Vol == x.at(late).Vol {
		t.Fatal("two seeds gave the same volume")
	}
}

// TestHostsDiffer: two hosts of Conpot's template show different values everywhere, and
// tank 4 shows its own ullage, not tank 3's (Conpot's fingerprint).
func TestHostsDiffer(t *testing.T) {
	p := loadConpot(t)
	svc := configure(t, p)
	now := time.Now()
	var seen [2][]Reading
	for i, seed := range []uint64{101, 202} {
		h := protocoltest.Host(p, netip.AddrFrom4([4]byte{127, 31, 9, byte(i + 1)}), seed)
		st := svc.stationFor(h)
		for n := 1; n <= 4; n++ {
			seen[i] = append(seen[i], st.read(n, now))
		}
		if seen[i][3].Ullage == seen[i][2].Ullage {
			t.Errorf("host %d: tank 4 ullage equals tank 3's (%v)", i, seen[i][3].Ullage)
		}
		// the databus shows the same moving values to every protocol of the host
		if v, err := h.Databus.GetInt("vol2"); err != nil || math.Abs(float64(v)-seen[i][1].Vol) > 50 {
			t.Errorf("host %d: databus vol2 %v (%v), reading %.0f", i, v, err, seen[i][1].Vol)
		}
	}
	for n := range 4 {
		a, b := seen[0][n], seen[1][n]
		if a.Vol == b.Vol || a.Ullage == b.Ullage || a.Height == b.Height || a.Temp == b.Temp {
			t.Errorf("tank %d: hosts share a value: %+v %+v", n+1, a, b)
		}
	}
}

// TestLevelFrac: the interpolated inverse of the cylinder's volume fraction is accurate to
// better than 0.01 inch on a 144-inch tank.
func TestLevelFrac(t *testing.T) {
	for i := 0; i <= 10000; i++ {
		x := float64(i) / 10000
		if got := levelFrac(volumeFrac(x)); math.Abs(got-x)*144 > 0.01 {
			t.Fatalf("level %.4f: got %.6f", x, got)
		}
	}
}
