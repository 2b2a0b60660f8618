package profiles

import (
	"testing"
	"testing/fstest"
	"time"
)

// testOverlay drives "level" with its template value plus the seconds since the host's
// start, and says it drives "missing", which it does not give.
type testOverlay struct{ env EngineEnv }

func (o *testOverlay) Overlays() []string { return []string{"level", "missing", "self"} }

func (o *testOverlay) Overlay(key string, base func(string) (any, error)) (any, bool) {
	if key != "level" {
		return nil, false
	}
	b, err := base("level")
	if err != nil {
		return nil, false
	}
	start := b.(int64)
	return DynamicFunc(func(now time.Time) any { return start + UptimeSeconds(o.env, now) }), true
}

func init() {
	RegisterFunction("icsnare.test.overlay", func(env EngineEnv, _ []any) (any, error) {
		return &testOverlay{env: env}, nil
	})
}

func TestOverlayDrivesKeys(t *testing.T) {
	fsys := fstest.MapFS{"template.xml": {Data: []byte(`<core><template><entity name="unit">x</entity></template><databus><key_value_mappings>
<key name="self"><value type="function">icsnare.test.overlay</value></key>
<key name="level"><value type="value">100</value></key>
<key name="missing"><value type="value">7</value></key>
<key name="other"><value type="value">5</value></key>
</key_value_mappings></databus></core>`)}}
	p, err := Load(fsys, "overlay", "overlay")
	if err != nil {
		t.Fatal(err)
	}
	db := p.Schema.NewDatabus(EngineEnv{Seed: 1, Start: time.Now().Add(-time.Hour)})
	if v, _ := db.GetInt("level"); v < 100+3599 {
		t.Fatalf("level = %d, want the template's 100 plus an hour of seconds", v)
	}
	if v, _ := db.GetInt("missing"); v != 7 {
		t.Fatalf("a key the overlay does not give keeps its template value: %d", v)
	}
	if v, _ := db.GetInt("other"); v != 5 {
		t.Fatalf("other = %d", v)
	}
	db.Set("level", int64(3))
	if v, _ := db.GetInt("level"); v != 3 {
		t.Fatalf("a write lost to the overlay: %d", v)
	}
	// A host whose overlay key was overwritten before its keys were read keeps the
	// template values.
	db2 := p.Schema.NewDatabus(EngineEnv{Seed: 2})
	db2.Set("self", int64(0))
	if v, _ := db2.GetInt("level"); v != 100 {
		t.Fatalf("level without its overlay = %d", v)
	}
}
