package sensor

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
)

// deviceProfile is a loaded profile with its configured services.
type deviceProfile struct {
	profile  *profiles.Profile
	services map[protocols.Endpoint]deviceService
}

type deviceService struct {
	protocol string
	svc      protocols.Service
}

// rule maps a prefix to a profile.
type rule struct {
	prefix netip.Prefix
	dev    *deviceProfile
}

// host is one materialised emulated host.
type host struct {
	*protocols.Host
	dev      *deviceProfile
	conns    atomic.Int32
	lastSeen atomic.Int64 // unix nanoseconds
}

// hostRegistry maps destination addresses to hosts. Hosts are created on first contact
// from the sensor seed, so a /8 costs nothing until addresses are touched, and an evicted
// host comes back identical.
type hostRegistry struct {
	rules    []rule // longest prefix first
	seed     uint64
	start    time.Time
	maxHosts int
	idle     time.Duration

	mu    sync.RWMutex
	hosts map[netip.Addr]*host

	created, evicted atomic.Int64
}

func newHostRegistry(rules []rule, seed uint64, maxHosts int, idle time.Duration) *hostRegistry {
	sort.SliceStable(rules, func(i, j int) bool { return rules[i].prefix.Bits() > rules[j].prefix.Bits() })
	return &hostRegistry{rules: rules, seed: seed, start: time.Now(), maxHosts: maxHosts, idle: idle,
		hosts: make(map[netip.Addr]*host)}
}

// match returns the rule covering addr.
func (r *hostRegistry) match(addr netip.Addr) (*deviceProfile, bool) {
	for _, ru := range r.rules {
		if ru.prefix.Contains(addr) {
			return ru.dev, true
		}
	}
	return nil, false
}

// configured reports how many addresses the rules cover (saturating).
func (r *hostRegistry) configured() float64 {
	var n float64
	for _, ru := range r.rules {
		n += float64(uint64(1) << min(63, uint(ru.prefix.Addr().BitLen()-ru.prefix.Bits())))
	}
	return n
}

// get returns the host at addr, creating it on first contact; ok is false when no rule
// covers addr.
func (r *hostRegistry) get(addr netip.Addr) (*host, bool) {
	addr = addr.Unmap()
	now := time.Now().UnixNano()
	r.mu.RLock()
	h, ok := r.hosts[addr]
	r.mu.RUnlock()
	if ok {
		h.lastSeen.Store(now)
		return h, true
	}
	dev, ok := r.match(addr)
	if !ok {
		return nil, false
	}
	seed := hostSeed(r.seed, addr, dev.profile.Name)
	h = &host{Host: protocols.NewHost(addr, dev.profile, seed, r.hostStart(seed)), dev: dev}
	h.lastSeen.Store(now)
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.hosts[addr]; ok {
		return old, true
	}
	if len(r.hosts) >= r.maxHosts {
		r.evictLocked(now)
	}
	r.hosts[addr] = h
	r.created.Add(1)
	return h, true
}

// hostStart gives each host its own boot time: between 3 and 200 days before the sensor
// started, so uptimes differ between hosts and look like plant equipment.
func (r *hostRegistry) hostStart(seed uint64) time.Time {
	days := 3 + seed%197
	secs := (seed >> 12) % 86400
	return r.start.Add(-time.Duration(days)*24*time.Hour - time.Duration(secs)*time.Second)
}

// evictLocked drops idle hosts with no connections; when none is idle it drops the least
// recently seen tenth so the map stays bounded.
func (r *hostRegistry) evictLocked(now int64) {
	r.evictIdleLocked(now)
	if len(r.hosts) < r.maxHosts {
		return
	}
	type aged struct {
		a netip.Addr
		t int64
	}
	all := make([]aged, 0, len(r.hosts))
	for a, h := range r.hosts {
		if h.conns.Load() == 0 {
			all = append(all, aged{a, h.lastSeen.Load()})
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].t < all[j].t })
	for _, x := range all[:max(1, len(all)/10)] {
		delete(r.hosts, x.a)
		r.evicted.Add(1)
	}
}

// sweep evicts hosts idle for longer than the idle time.
func (r *hostRegistry) sweep() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evictIdleLocked(time.Now().UnixNano())
}

// evictIdleLocked drops hosts with no connections that were last seen before the idle time.
func (r *hostRegistry) evictIdleLocked(now int64) {
	cut := now - int64(r.idle)
	for a, h := range r.hosts {
		if h.conns.Load() == 0 && h.lastSeen.Load() < cut {
			delete(r.hosts, a)
			r.evicted.Add(1)
		}
	}
}

func (r *hostRegistry) count() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.hosts)
}

// hostSeed derives a host's seed from the deployment seed, its address and its profile.
func hostSeed(seed uint64, addr netip.Addr, profile string) uint64 {
	h := fnv.New64a()
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], seed)
	h.Write(b[:])
	a := addr.As16()
	h.Write(a[:])
	h.Write([]byte(profile))
	x := h.Sum64()
	// splitmix64 finaliser: neighbouring addresses get unrelated seeds.
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// deploymentSeed turns the configured seed text (or the sensor id) into a number.
func deploymentSeed(seed, sensorID string) uint64 {
	h := fnv.New64a()
	if seed == "" {
		fmt.Fprintf(h, "sensor:%s", sensorID)
	} else {
		h.Write([]byte(seed))
	}
	return h.Sum64()
}
