package profiles

import (
	"fmt"
	"io/fs"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// lintHosts builds the databus of two hosts of one /24, as the sensor would: each its own
// seed and its own boot time.
func lintHosts(p *Profile, now time.Time) [2]*Databus {
	var out [2]*Databus
	for i, a := range []string{"198.18.39.21", "198.18.39.122"} {
		addr := netip.MustParseAddr(a)
		seed := keySeed(0x5eed, a)
		start := now.Add(-time.Duration(3600+seed%(90*86400)) * time.Second)
		out[i] = p.Schema.NewDatabus(EngineEnv{Seed: seed, Addr: addr, Start: start})
	}
	return out
}

// TestPersonaLint fails when a databus value of an embedded persona is the same on two
// hosts of a network and the persona does not mark it constant="true": such a literal is a
// one-probe signature of the honeypot (issue 20: interface counters, set-points, users).
func TestPersonaLint(t *testing.T) {
	now := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	for _, name := range Embedded() {
		t.Run(name, func(t *testing.T) {
			p, err := Open(name)
			if err != nil {
				t.Fatal(err)
			}
			hs := lintHosts(p, now)
			for _, k := range p.Schema.Keys() {
				spec, _ := p.Schema.Spec(k)
				var v [2]string
				for i, db := range hs {
					x, err := db.getAt(k, now)
					if err != nil {
						t.Fatalf("%s: %v", k, err)
					}
					v[i] = fmt.Sprint(x)
				}
				if v[0] == v[1] && !spec.Constant {
					t.Errorf("%s:%d: key %s is %q on both hosts; draw it from the seed or mark it constant=\"true\"",
						spec.File, spec.Line, k, clip(v[0]))
				}
			}
		})
	}
}

func clip(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}

// TestSeedGroups checks that keys sharing a seed draw alike, so the default persona's
// firmware and hardware revision agree between the SZL, SNMP and the web pages.
func TestSeedGroups(t *testing.T) {
	p, err := Open(DefaultName)
	if err != nil {
		t.Fatal(err)
	}
	fws := map[string]bool{}
	for s := uint64(1); s <= 40; s++ {
		db := p.Schema.NewDatabus(EngineEnv{Seed: s * 7919})
		fw, _ := db.GetString("FirmwareVersion")
		hw, _ := db.GetString("HardwareVersion")
		descr, _ := db.GetString("sysDescr")
		if !strings.HasSuffix(descr, ", HW: "+hw+", FW: "+fw) {
			t.Fatalf("seed %d: sysDescr %q disagrees with HW %q FW %q", s, descr, hw, fw)
		}
		mac, _ := db.GetString("MacAddress")
		p1, _ := db.GetString("MacAddressP1")
		if mac[:15] != p1[:15] || mac == p1 {
			t.Fatalf("seed %d: port MAC %s is not the interface MAC %s + 1", s, p1, mac)
		}
		site, _ := db.GetString("Site")
		sys, _ := db.GetString("SystemName")
		if !strings.HasPrefix(sys, site) {
			t.Fatalf("seed %d: station %q is not at site %q", s, sys, site)
		}
		fws[fw] = true
	}
	if len(fws) < 3 {
		t.Fatalf("40 hosts run %d firmware versions", len(fws))
	}
}

// TestCounter checks the counter function: it grows with uptime and reads, hosts differ,
// and it wraps at its modulus.
func TestCounter(t *testing.T) {
	now := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	mk := func(seed uint64, up time.Duration, params ...any) Dynamic {
		v, err := lookupFunc(t, "counter")(EngineEnv{Seed: seed, Start: now.Add(-up)}, params)
		if err != nil {
			t.Fatal(err)
		}
		return v.(Dynamic)
	}
	a := mk(1, 10*24*time.Hour, int64(2600), float64(1<<32), int64(100))
	x0 := a.Value(now).(int64)
	x1 := a.Value(now).(int64)
	x2 := a.Value(now.Add(time.Minute)).(int64)
	if x1-x0 != 100 || x2 <= x1 {
		t.Fatalf("reads %d %d %d: not growing with reads and time", x0, x1, x2)
	}
	if b := mk(2, 10*24*time.Hour, int64(2600)).Value(now).(int64); b == x0 {
		t.Fatalf("two hosts count alike: %d", b)
	}
	if w := mk(1, 1000*24*time.Hour, int64(1e6), int64(1000)).Value(now).(int64); w < 0 || w >= 1000 {
		t.Fatalf("not wrapped: %d", w)
	}
	if _, err := lookupFunc(t, "counter")(EngineEnv{}, []any{int64(-1)}); err == nil {
		t.Fatal("negative rate accepted")
	}
}

// TestProcessList checks a register block of live process values.
func TestProcessList(t *testing.T) {
	now := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	ctor := lookupFunc(t, "processlist")
	v, err := ctor(EngineEnv{Seed: 3}, []any{[]any{int64(380), int64(40), int64(25), int64(600), int64(3), int64(0)}, []any{int64(5), int64(0)}})
	if err != nil {
		t.Fatal(err)
	}
	d := v.(Dynamic)
	a, b := d.Value(now).([]any), d.Value(now.Add(150*time.Second)).([]any)
	if a[0] == b[0] {
		t.Fatalf("value frozen over 150 s of a 600 s cycle: %v", a[0])
	}
	if n := a[0].(int64); n < 380-40-25-3 || n > 380+40+25+3 {
		t.Fatalf("out of range: %d", n)
	}
	if a[1] != 5.0 { // decimals default to 1: a float
		t.Fatalf("constant element %v", a[1])
	}
	for _, bad := range [][]any{nil, {int64(1)}, {[]any{"x"}}} {
		if _, err := ctor(EngineEnv{}, bad); err == nil {
			t.Errorf("param %v accepted", bad)
		}
	}
}

func lookupFunc(t *testing.T, name string) FunctionCtor {
	t.Helper()
	f, ok := lookupFunction(name)
	if !ok {
		t.Fatalf("no function %s", name)
	}
	return f
}

// getAt reads key as of now (dynamic values evaluated at that instant).
func (d *Databus) getAt(key string, now time.Time) (any, error) {
	v, err := d.raw(nameKey(key))
	if err != nil {
		return nil, err
	}
	if dyn, ok := v.(Dynamic); ok {
		return dyn.Value(now), nil
	}
	return v, nil
}

// snmpLiteral is a numeric literal an SNMP symbol serves as is.
var snmpLiteral = regexp.MustCompile(`<symbol name="([^"]+)"[^>]*>\s*<value>(\d+)</value>`)

// TestPersonaSNMPLiterals fails when an embedded persona's snmp.xml serves a distinctive
// number (a counter's start, a serial) as a literal: every host would show it alike
// (issue 20: the ifInOctets 48217733 tell). Such values come from the databus, drawn per
// host (the counter function); round numbers (speeds, timeouts) are the device's own.
func TestPersonaSNMPLiterals(t *testing.T) {
	for _, name := range Embedded() {
		b, err := fs.ReadFile(templates, "templates/"+name+"/snmp/snmp.xml")
		if err != nil {
			continue // no SNMP
		}
		for _, m := range snmpLiteral.FindAllStringSubmatch(string(b), -1) {
			n, _ := strconv.ParseUint(m[2], 10, 64)
			if n >= 10000 && n%1000 != 0 {
				t.Errorf("%s: snmp.xml serves %s = %s, alike on every host; draw it from the databus", name, m[1], m[2])
			}
		}
	}
}
