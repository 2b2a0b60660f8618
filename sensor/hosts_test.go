package sensor

import (
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/icsnare/icsnare/profiles"
)

func defaultDev(t testing.TB) *deviceProfile {
	p, err := profiles.Open(profiles.DefaultName)
	if err != nil {
		t.Fatal(err)
	}
	return &deviceProfile{profile: p}
}

func TestHostsLongestPrefixAndRegeneration(t *testing.T) {
	a, b := defaultDev(t), defaultDev(t)
	r := newHostRegistry([]rule{
		{prefix: netip.MustParsePrefix("198.18.0.0/16"), dev: a},
		{prefix: netip.MustParsePrefix("198.18.7.0/24"), dev: b},
	}, 42, 4, time.Hour)
	cases := []struct {
		addr string
		dev  *deviceProfile
		ok   bool
	}{
		{"198.18.1.1", a, true}, {"198.18.7.9", b, true}, {"198.19.0.1", nil, false}, {"::ffff:198.18.7.9", b, true},
	}
	for _, c := range cases {
		h, ok := r.get(netip.MustParseAddr(c.addr))
		if ok != c.ok || (ok && h.dev != c.dev) {
			t.Errorf("%s: ok=%v dev match=%v", c.addr, ok, ok && h.dev == c.dev)
		}
	}
	h1, _ := r.get(netip.MustParseAddr("198.18.1.1"))
	serial, _ := h1.Databus.GetString("s7_id")
	// Fill past the cap so the first host is evicted, then ask for it again.
	for i := 2; i < 20; i++ {
		r.get(netip.AddrFrom4([4]byte{198, 18, 2, byte(i)}))
	}
	if r.count() > 4 {
		t.Fatalf("registry holds %d hosts, cap 4", r.count())
	}
	h2, _ := r.get(netip.MustParseAddr("198.18.1.1"))
	if h1 == h2 {
		t.Fatal("host was not evicted")
	}
	if s2, _ := h2.Databus.GetString("s7_id"); s2 != serial || h2.Seed != h1.Seed {
		t.Fatalf("regenerated host differs: %q vs %q", s2, serial)
	}
	other, _ := r.get(netip.MustParseAddr("198.18.1.2"))
	if other.Seed == h1.Seed {
		t.Fatal("neighbouring hosts share a seed")
	}
}

// TestMemoryPerHost materialises every host of a /16 and reports the heap each costs,
// with the Modbus register blocks read once (what a first Modbus contact does).
func TestMemoryPerHost(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates 65,536 hosts")
	}
	dev := defaultDev(t)
	r := newHostRegistry([]rule{{prefix: netip.MustParsePrefix("198.18.0.0/16"), dev: dev}}, 1, 1<<20, time.Hour)
	before := liveHeap()
	for i := 0; i < 1<<16; i++ {
		r.get(netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}))
	}
	idle := liveHeap()
	keys := []string{"memoryModbusCoils", "memoryModbusDiscreteInputs", "memoryModbusInputRegisters", "memoryModbusHoldingRegisters"}
	const touchedHosts = 4096            // evaluating the register expressions dominates the test's time
	for i := 1; i <= touchedHosts; i++ { // .0.0 is the /16's network address, not a host
		h, _ := r.get(netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}))
		for _, k := range keys {
			if _, err := h.Databus.Get(k); err != nil {
				t.Fatal(err)
			}
		}
	}
	touched := liveHeap()
	perIdle := float64(idle-before) / (1 << 16)
	perTouched := perIdle + float64(touched-idle)/touchedHosts
	t.Logf("65,536 hosts: %.0f bytes per materialised idle host (heap %.1f MiB); %.0f bytes per host after a Modbus contact",
		perIdle, float64(idle-before)/(1<<20), perTouched)
	if perIdle > idleHostTarget || perTouched > modbusHostTarget {
		t.Fatalf("hosts cost more than expected: %.0f idle, %.0f touched", perIdle, perTouched)
	}
	runtime.KeepAlive(r)
}
