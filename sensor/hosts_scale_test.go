package sensor

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/icsnare/icsnare/state"
)

func addr4(a, b, c, d int) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(a), byte(b), byte(c), byte(d)})
}

func TestShardLayout(t *testing.T) {
	dev := defaultDev(t)
	for _, c := range []struct{ maxHosts, shards int }{
		{1, 1}, {4, 1}, {4095, 1}, {4096, 2}, {100_000, 32}, {1 << 20, 512}, {1 << 24, 1024},
	} {
		r := newHostRegistry([]rule{{prefix: netip.MustParsePrefix("10.0.0.0/8"), dev: dev}}, 1, c.maxHosts, time.Hour)
		if len(r.shards) != c.shards {
			t.Errorf("max_hosts %d: %d shards, want %d", c.maxHosts, len(r.shards), c.shards)
		}
	}
	// A /16 spreads over the shards evenly enough that none fills at half the total.
	r := newHostRegistry(nil, 1, 1<<20, time.Hour)
	per := make([]int, len(r.shards))
	for i := range 1 << 16 {
		per[r.shardIndex(addr4(10, 1, i>>8, i))]++
	}
	if lo, hi := slices.Min(per), slices.Max(per); hi > 2*(1<<16)/len(per) || lo == 0 {
		t.Errorf("uneven shards for a /16: %d..%d hosts per shard", lo, hi)
	}
}

func TestClockEvictionOrder(t *testing.T) {
	dev := defaultDev(t)
	// One shard of 4: "+x" gets x (creating it), the list is who is left afterwards.
	steps := []struct {
		op   string
		want []int
	}{
		{"+1 +2 +3 +4", []int{1, 2, 3, 4}},
		{"+2", []int{1, 2, 3, 4}},    // seen again: its reference bit is set
		{"+5", []int{2, 3, 4, 5}},    // the hand starts at 1: not seen again, evicted
		{"+6", []int{2, 4, 5, 6}},    // 2 gets its second chance, 3 goes
		{"+7", []int{2, 5, 6, 7}},    // 4
		{"+2 +8", []int{2, 6, 7, 8}}, // 5 (the hand passed 2, seen again, and newcomers sit behind it)
	}
	r := newHostRegistry([]rule{{prefix: netip.MustParsePrefix("198.18.0.0/16"), dev: dev}}, 1, 4, time.Hour)
	for _, s := range steps {
		for _, op := range splitOps(s.op) {
			if _, ok := r.get(addr4(198, 18, 0, op)); !ok {
				t.Fatal("no host")
			}
		}
		var got []int
		for a := range r.shards[0].m {
			got = append(got, int(a.As4()[3]))
		}
		slices.Sort(got)
		if !slices.Equal(got, s.want) {
			t.Fatalf("after %q: hosts %v, want %v", s.op, got, s.want)
		}
	}
	if r.evicted.Load() != 4 || r.count() != 4 {
		t.Fatalf("evicted %d, count %d", r.evicted.Load(), r.count())
	}
}

func splitOps(s string) []int {
	var out []int
	var n int
	for _, f := range append([]byte(s), ' ') {
		switch {
		case f >= '0' && f <= '9':
			n = n*10 + int(f-'0')
		case f == ' ' && n > 0:
			out = append(out, n)
			n = 0
		}
	}
	return out
}

func TestNeverEvictsHostsWithConnections(t *testing.T) {
	dev := defaultDev(t)
	r := newHostRegistry([]rule{{prefix: netip.MustParsePrefix("198.18.0.0/16"), dev: dev}}, 1, 2, time.Nanosecond)
	a, _ := r.get(addr4(198, 18, 0, 1))
	b, _ := r.get(addr4(198, 18, 0, 2))
	a.conns.Add(1)
	b.conns.Add(1)
	r.get(addr4(198, 18, 0, 3)) // nothing evictable: the shard goes over its cap
	time.Sleep(time.Millisecond)
	r.sweep(context.Background()) // idle, but connected
	for _, h := range []*host{a, b} {
		if got, _ := r.get(h.Addr); got != h {
			t.Fatalf("%s with a connection was evicted", h.Addr)
		}
	}
	a.conns.Add(-1)
	r.get(addr4(198, 18, 0, 4))
	r.get(addr4(198, 18, 0, 5))
	if got, _ := r.get(b.Addr); got != b {
		t.Fatal("connected host evicted")
	}
	if got, _ := r.get(a.Addr); got == a {
		t.Fatal("host without connections kept past the cap")
	}
	time.Sleep(time.Millisecond)
	r.sweep(context.Background())
	if r.count() != 1 {
		t.Fatalf("after the idle sweep %d hosts, want the connected one", r.count())
	}
}

func TestNetworkAndBroadcastAreNotHosts(t *testing.T) {
	dev := defaultDev(t)
	r := newHostRegistry([]rule{
		{prefix: netip.MustParsePrefix("198.18.0.0/16"), dev: dev},
		{prefix: netip.MustParsePrefix("198.18.7.0/24"), dev: dev},
		{prefix: netip.MustParsePrefix("198.18.9.255/32"), dev: dev}, // listed one by one
		{prefix: netip.MustParsePrefix("198.19.0.0/30"), dev: dev},
		{prefix: netip.MustParsePrefix("198.19.1.0/31"), dev: dev},
		{prefix: netip.MustParsePrefix("198.19.2.0/32"), dev: dev},
		{prefix: netip.MustParsePrefix("2001:db8::/120"), dev: dev},
	}, 1, 100, time.Hour)
	cases := []struct {
		addr string
		ok   bool
	}{
		{"198.18.0.0", false}, {"198.18.255.255", false}, {"198.18.0.1", true}, {"198.18.255.254", true},
		{"198.18.9.255", true}, {"198.18.9.0", true}, // inside the /16, not its edges
		{"198.18.7.0", false}, {"198.18.7.255", false}, {"198.18.7.1", true}, {"198.18.7.254", true},
		{"198.19.0.0", false}, {"198.19.0.3", false}, {"198.19.0.1", true}, {"198.19.0.2", true},
		{"198.19.1.0", true}, {"198.19.1.1", true}, // a /31 is two hosts (RFC 3021)
		{"198.19.2.0", true},
		{"2001:db8::", true}, {"2001:db8::ff", true}, {"::ffff:198.18.7.255", false},
	}
	for _, c := range cases {
		if _, ok := r.get(netip.MustParseAddr(c.addr)); ok != c.ok {
			t.Errorf("%s: host %v, want %v", c.addr, ok, c.ok)
		}
	}
}

func TestRegistryConcurrentUse(t *testing.T) {
	dev := defaultDev(t)
	r := newHostRegistry([]rule{{prefix: netip.MustParsePrefix("198.18.0.0/16"), dev: dev}}, 1, 64, time.Millisecond)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for range 2000 {
				h, ok := r.get(addr4(198, 18, rng.IntN(4), 1+rng.IntN(254)))
				if !ok {
					t.Error("no host")
					return
				}
				h.conns.Add(1)
				h.conns.Add(-1)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 20 {
			r.sweep(context.Background())
		}
	}()
	wg.Wait()
	if n := r.count(); n > 64 {
		t.Fatalf("%d hosts, cap 64", n)
	}
}

// testState opens a state directory the way New does.
func testState(t *testing.T, dir, onRestart string) (*state.Store, string, bootRecord) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.State = StateConfig{Dir: dir, OnRestart: onRestart}
	st, seed, boot, err := openState(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return st, seed, boot
}

func TestWritesSurviveEvictionAndRestart(t *testing.T) {
	dev := defaultDev(t)
	dir := t.TempDir()
	target := addr4(198, 18, 1, 7)
	newReg := func(st *state.Store, seed string, boot bootRecord) *hostRegistry {
		r := newHostRegistry([]rule{{prefix: netip.MustParsePrefix("198.18.0.0/16"), dev: dev}}, deploymentSeed(seed), 2, time.Hour)
		r.store, r.boot = st, boot
		return r
	}
	st, seed, boot := testState(t, dir, "")
	r := newReg(st, seed, boot)
	h, _ := r.get(target)
	serial, _ := h.Databus.GetString("s7_id")
	start := h.Databus.Env().Start
	h.Databus.Set("sysName", "pwned")
	h.Persist("s7comm.mode", []byte{4, 8})
	for i := range 10 {
		r.get(addr4(198, 18, 2, 1+i))
	}
	h2, _ := r.get(target)
	if h2 == h || r.evicted.Load() == 0 {
		t.Fatal("host not evicted")
	}
	check := func(when string, h *host, wantStart bool) {
		t.Helper()
		if v, _ := h.Databus.GetString("sysName"); v != "pwned" {
			t.Errorf("%s: sysName %q, want the written value", when, v)
		}
		if v, _ := h.Persisted("s7comm.mode"); string(v) != "\x04\x08" {
			t.Errorf("%s: s7comm.mode %q", when, v)
		}
		if s, _ := h.Databus.GetString("s7_id"); s != serial {
			t.Errorf("%s: identity changed: %q vs %q", when, s, serial)
		}
		if wantStart && !h.Databus.Env().Start.Equal(start) {
			t.Errorf("%s: boot time %v, want %v", when, h.Databus.Env().Start, start)
		}
	}
	check("after eviction (not yet on disk)", h2, true)
	st.Close()

	// Restarts: "continue" keeps every host's boot time; "reboot" moves it to just before
	// the restart and counts a boot.
	for _, c := range []struct {
		mode      string
		boots     int64
		sameStart bool
	}{{"continue", 0, true}, {"", 0, true}, {"reboot", 1, false}, {"continue", 1, false}, {"reboot", 2, false}} {
		st, seed2, boot := testState(t, dir, c.mode)
		if seed2 != seed {
			t.Fatalf("seed changed across restarts")
		}
		h, _ := newReg(st, seed2, boot).get(target)
		check("restart "+c.mode, h, c.sameStart)
		if h.Boots != c.boots {
			t.Errorf("restart %s: boots %d, want %d", c.mode, h.Boots, c.boots)
		}
		if !c.sameStart {
			if up := time.Since(h.Databus.Env().Start); up < 0 || up > time.Minute {
				t.Errorf("restart %s: uptime %v, want near 0", c.mode, up)
			}
		}
		st.Close()
	}
	_, other, _ := testState(t, t.TempDir(), "")
	if other == seed {
		t.Fatal("two state directories generated the same seed")
	}
}

func TestConfiguredSeedWinsAndNoSeedFile(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.Seed = "a secret of my own"
	cfg.State.Dir = dir
	st, seed, _, err := openState(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	if seed != cfg.Seed {
		t.Fatalf("seed %q", seed)
	}
	if _, err := state.ReadSeed(dir); err == nil {
		t.Fatal("a seed file was written although the config sets one")
	}
	if _, s1, _, _ := openState(Config{}, slog.New(slog.DiscardHandler)); s1 == "" {
		t.Fatal("no seed without a state directory")
	}
	if fmt.Sprint(deploymentSeed("a")) == fmt.Sprint(deploymentSeed("b")) {
		t.Fatal("seeds collide")
	}
}

// TestFullStoreIsCountedNotFatal: past max_bytes a write is refused, counted in
// icsnare_state_writes_refused_total{reason="store_full"}, and the host keeps serving it.
func TestFullStoreIsCountedNotFatal(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Hosts = []HostRule{{Addresses: []string{"198.18.0.0/24"}, Profile: "default"}}
	cfg.State = StateConfig{Dir: t.TempDir(), MaxBytes: 200}
	s, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer s.store.Close()
	for i := 1; i <= 4; i++ {
		h, _ := s.hosts.get(addr4(198, 18, 0, i))
		h.Databus.Set("sysLocation", fmt.Sprintf("%060d", i))
		s.store.Flush()
		if v, _ := h.Databus.GetString("sysLocation"); v != fmt.Sprintf("%060d", i) {
			t.Fatalf("host %d does not show its write", i)
		}
	}
	mfs, err := s.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "icsnare_state_writes_refused_total" && mf.GetName() != "icsnare_state_writes_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += "/" + l.GetValue()
			}
			got[key] = m.GetCounter().GetValue()
		}
	}
	if got["icsnare_state_writes_total"] < 1 || got["icsnare_state_writes_refused_total/store_full"] < 1 {
		t.Fatalf("state metrics %v", got)
	}
}

// TestAddressFloodEvictsIdleHosts: a sweep of 20,000 new addresses (every eighth also read
// through Modbus) through a registry capped at 1,024 hosts replaces idle hosts instead of
// growing the heap, and the hosts attackers wrote to come back with their writes (a register
// block and a string).
func TestAddressFloodEvictsIdleHosts(t *testing.T) {
	if testing.Short() {
		t.Skip("materialises 20,000 hosts")
	}
	const maxHosts = 1024
	st, seed, boot := testState(t, t.TempDir(), "")
	defer st.Close()
	r := newHostRegistry([]rule{{prefix: netip.MustParsePrefix("198.18.0.0/16"), dev: defaultDev(t)}}, deploymentSeed(seed), maxHosts, time.Hour)
	r.store, r.boot = st, boot
	written := make([]netip.Addr, 16)
	for i := range written {
		written[i] = addr4(198, 18, 0, 1+i)
		h, _ := r.get(written[i])
		err := h.Databus.Update("memoryModbusHoldingRegisters", func(cur any) (any, error) {
			l := append([]any(nil), cur.([]any)...)
			l[5] = int64(4200 + i)
			return l, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		h.Databus.Set("sysName", fmt.Sprintf("owned-%d", i))
	}
	// Fill the registry with hosts a scanner read Modbus from, then measure.
	touch := func(a netip.Addr, modbus bool) {
		h, _ := r.get(a)
		if !modbus {
			return
		}
		if _, err := h.Databus.Get("memoryModbusHoldingRegisters"); err != nil {
			t.Fatal(err)
		}
	}
	for i := range maxHosts {
		touch(addr4(198, 18, 1+i/250, 1+i%250), i%8 == 0)
	}
	full := liveHeap()
	for i := range 20000 {
		touch(addr4(198, 18, 10+i/250, 1+i%250), i%8 == 0)
	}
	after := liveHeap()
	t.Logf("%d hosts kept after 21,040 addresses, %d evicted; heap %.1f MiB full, %.1f MiB after the flood",
		r.count(), r.evicted.Load(), float64(full)/(1<<20), float64(after)/(1<<20))
	if r.count() > maxHosts {
		t.Errorf("%d hosts in memory, more than max_hosts %d", r.count(), maxHosts)
	}
	if after > full && after-full > maxHosts*modbusHostTarget {
		t.Errorf("the flood grew the heap by %d bytes with the host count capped", after-full)
	}
	for i, a := range written {
		h, _ := r.get(a)
		l, err := h.Databus.Get("memoryModbusHoldingRegisters")
		if err != nil {
			t.Fatal(err)
		}
		if got := l.([]any)[5]; got != int64(4200+i) {
			t.Errorf("%v: register 5 = %v after eviction, want the written %d", a, got, 4200+i)
		}
		if s, _ := h.Databus.GetString("sysName"); s != fmt.Sprintf("owned-%d", i) {
			t.Errorf("%v: sysName %q after eviction", a, s)
		}
	}
}
