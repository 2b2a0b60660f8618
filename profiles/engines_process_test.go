package profiles

import (
	"math"
	"testing"
	"time"
)

func TestProcessFunction(t *testing.T) {
	ctor, ok := lookupFunction("process")
	if !ok {
		t.Fatal("process is not registered")
	}
	mk := func(seed uint64) DynamicFunc {
		v, err := ctor(EngineEnv{Seed: seed}, []any{21.5, 0.8, 1.2, int64(86400), 0.15, int64(1)})
		if err != nil {
			t.Fatal(err)
		}
		return v.(DynamicFunc)
	}
	a, b := mk(1), mk(2)
	t0 := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	differ := false
	lo, hi := math.Inf(1), math.Inf(-1)
	for i := range 24 * 60 {
		now := t0.Add(time.Duration(i) * time.Minute)
		va, vb := a(now).(float64), b(now).(float64)
		if va != vb {
			differ = true
		}
		if va < 21.5-0.8-1.2-0.15-0.05 || va > 21.5+0.8+1.2+0.15+0.05 {
			t.Fatalf("value %v out of its range at %v", va, now)
		}
		if next := a(now.Add(10 * time.Second)).(float64); math.Abs(next-va) > 0.2 {
			t.Fatalf("jumped from %v to %v in 10 s", va, next)
		}
		if va != math.Round(va*10)/10 {
			t.Fatalf("%v has more than one decimal", va)
		}
		lo, hi = min(lo, va), max(hi, va)
	}
	if !differ {
		t.Fatal("two hosts read the same values all day")
	}
	if hi-lo < 1.5 {
		t.Fatalf("a day's swing is %v..%v", lo, hi)
	}
	if a(t0) != mk(1)(t0) {
		t.Fatal("the same host seed gives another value")
	}
	gated, err := ctor(EngineEnv{Seed: 1}, []any{72.0, 0.0, 0.0, 3600.0, 0.0, 1.0, int64(5), int64(22)})
	if err != nil {
		t.Fatal(err)
	}
	if on, off := gated.(DynamicFunc)(t0), gated.(DynamicFunc)(t0.Add(-10*time.Hour)); on != 72.0 || off != 0.0 {
		t.Fatalf("gated by 05-22: %v at noon, %v at 02:00", on, off)
	}
	for _, bad := range [][]any{{}, {"x"}, {1.0, -1.0}, {1.0, 0.0, 1.0, 0.0}, {1.0, 0.0, 0.0, 60.0, 0.0, 9.0},
		{1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0}, {1.0, 0.0, 0.0, 60.0, 0.0, 1.0, 5.0, 25.0}, {1.0, 0.0, 0.0, 60.0, 0.0, 1.0, 5.0, 6.0, 7.0}} {
		if _, err := ctor(EngineEnv{}, bad); err == nil {
			t.Errorf("params %v accepted", bad)
		}
	}
}

func TestScheduleFunction(t *testing.T) {
	ctor, ok := lookupFunction("schedule")
	if !ok {
		t.Fatal("schedule is not registered")
	}
	for _, tc := range []struct {
		on, off int64
		hour    int
		want    int64
	}{
		{6, 19, 12, 1}, {6, 19, 3, 0}, {6, 19, 20, 0}, {22, 5, 23, 1}, {22, 5, 2, 1}, {22, 5, 12, 0},
	} {
		v, err := ctor(EngineEnv{Seed: 7}, []any{tc.on, tc.off})
		if err != nil {
			t.Fatal(err)
		}
		now := time.Date(2026, 11, 29, tc.hour, 30, 0, 0, time.UTC)
		if got := v.(DynamicFunc)(now); got != tc.want {
			t.Errorf("schedule %d-%d at %02d:30 = %v, want %d", tc.on, tc.off, tc.hour, got, tc.want)
		}
	}
	v, err := ctor(EngineEnv{Seed: 7}, []any{int64(6), int64(19), int64(1), int64(2)})
	if err != nil {
		t.Fatal(err)
	}
	if day, night := v.(DynamicFunc)(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)), v.(DynamicFunc)(time.Date(2026, 1, 1, 2, 0, 0, 0, time.UTC)); day != int64(1) || night != int64(2) {
		t.Errorf("occupancy schedule: day %v, night %v", day, night)
	}
	for _, bad := range [][]any{{int64(6)}, {int64(-1), int64(5)}, {"a", int64(5)}, {int64(1), int64(2), int64(3)}} {
		if _, err := ctor(EngineEnv{}, bad); err == nil {
			t.Errorf("params %v accepted", bad)
		}
	}
}
