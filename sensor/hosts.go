package sensor

import (
	"context"
	"encoding/binary"
	"hash/fnv"
	"math/bits"
	"net/netip"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/state"
)

// deviceProfile is a loaded profile with its configured services.
type deviceProfile struct {
	profile  *profiles.Profile
	services map[protocols.Endpoint]deviceService
}

type deviceService struct {
	protocol string
	svc      protocols.Service
	ep       protocols.Endpoint // the endpoint as svc declared it, before overrides and offset
}

// rule maps a prefix to a profile, or to a weighted mix of profiles of which a fraction of
// the addresses are live (HostRule.Profiles, HostRule.Density).
type rule struct {
	prefix netip.Prefix
	dev    *deviceProfile // the single profile; nil with mix
	mix    []*deviceProfile
	cum    []uint64 // cumulative weights of mix, scaled so that the last is 1<<32
	// live: an address is a host when its draw (32 bits) is below this; 0: every address.
	live uint64
}

// newRule builds the rule of one prefix of hr; devs holds the loaded profiles by name.
func newRule(prefix netip.Prefix, hr HostRule, devs map[string]*deviceProfile) rule {
	ru := rule{prefix: prefix}
	if hr.Density > 0 && hr.Density < 1 {
		ru.live = max(1, uint64(hr.Density*(1<<32)))
	}
	if len(hr.Profiles) == 0 {
		ru.dev = devs[hr.Profile]
		return ru
	}
	var total float64
	for _, w := range hr.Profiles {
		total += w
	}
	var acc float64
	for _, name := range hr.ProfileNames() {
		acc += hr.Profiles[name]
		ru.mix = append(ru.mix, devs[name])
		ru.cum = append(ru.cum, uint64(acc/total*(1<<32)))
	}
	ru.cum[len(ru.cum)-1] = 1 << 32
	return ru
}

// pick returns the profile of addr under ru, or false when addr is not a live host: both
// drawn from the deployment seed and the address, so every sensor with the same seed
// shows the same population.
func (ru *rule) pick(seed uint64, addr netip.Addr) (*deviceProfile, bool) {
	if ru.live != 0 && hostSeed(seed, addr, "\x00live")>>32 >= ru.live {
		return nil, false
	}
	if ru.dev != nil {
		return ru.dev, true
	}
	x := hostSeed(seed, addr, "\x00profile") >> 32
	for i, c := range ru.cum {
		if x < c {
			return ru.mix[i], true
		}
	}
	return ru.mix[len(ru.mix)-1], true
}

// host is one materialised emulated host.
type host struct {
	*protocols.Host
	dev      *deviceProfile
	conns    atomic.Int32
	lastSeen atomic.Int64 // unix nanoseconds
	ref      atomic.Bool  // seen again since the clock hand last passed (CLOCK's reference bit)
}

// hostRegistry maps destination addresses to hosts. Hosts are created on first contact
// from the sensor seed, so a /8 costs nothing until addresses are touched, and an evicted
// host comes back identical, with what attackers wrote restored from the state store.
//
// The hosts live in shards picked by a hash of the address; each shard has its own lock,
// map and CLOCK ring, so the packet path only ever takes one shard's lock (a read lock
// when the host exists) and eviction at max_hosts costs amortised O(1): the shard's clock
// hand passes over hosts seen again since its last pass (clearing their bit) and hosts
// with open connections, and replaces the first other one. A host contacted once (a
// scanner's sweep) goes before one an attacker keeps coming back to.
type hostRegistry struct {
	rules    []rule // longest prefix first
	seed     uint64
	boot     bootRecord
	maxHosts int
	idle     time.Duration
	store    *state.Store // nil: writes live as long as the host object

	shards    []hostShard
	shardBits uint
	n         atomic.Int64

	created, evicted atomic.Int64
}

type hostShard struct {
	mu   sync.RWMutex
	m    map[netip.Addr]*host
	ring []*host
	hand int
	_    [48]byte // keep neighbouring shards' locks off one cache line
}

// shardTarget is the number of hosts a shard holds on average when the registry is full
// (shards are not capped one by one: the cap is the registry's).
const (
	shardTarget = 2048
	maxShards   = 1024
)

func newHostRegistry(rules []rule, seed uint64, maxHosts int, idle time.Duration) *hostRegistry {
	sort.SliceStable(rules, func(i, j int) bool { return rules[i].prefix.Bits() > rules[j].prefix.Bits() })
	maxHosts = max(maxHosts, 1)
	nb := uint(0)
	for nb < 10 && (maxHosts>>nb)/shardTarget >= 2 {
		nb++
	}
	r := &hostRegistry{rules: rules, seed: seed, boot: bootRecord{Epoch: time.Now()}, maxHosts: maxHosts, idle: idle,
		shards: make([]hostShard, 1<<nb), shardBits: nb}
	for i := range r.shards {
		r.shards[i].m = make(map[netip.Addr]*host)
	}
	return r
}

// shard returns the shard of addr.
func (r *hostRegistry) shard(addr netip.Addr) *hostShard { return &r.shards[r.shardIndex(addr)] }

func (r *hostRegistry) shardIndex(addr netip.Addr) int {
	if r.shardBits == 0 {
		return 0
	}
	a := addr.As16()
	x := binary.BigEndian.Uint64(a[:8]) ^ bits.RotateLeft64(binary.BigEndian.Uint64(a[8:]), 17)
	x *= 0x9e3779b97f4a7c15
	return int(x >> (64 - r.shardBits))
}

// match returns the rule covering addr. The network and broadcast addresses of an IPv4
// prefix shorter than /31 are not hosts (a real subnet has no device there) unless a
// longer rule, such as a single address, lists them.
func (r *hostRegistry) match(addr netip.Addr) (*deviceProfile, bool) {
	for i := range r.rules {
		ru := &r.rules[i]
		if ru.prefix.Contains(addr) {
			if subnetEdge(ru.prefix, addr) {
				return nil, false
			}
			return ru.pick(r.seed, addr)
		}
	}
	return nil, false
}

// subnetEdge reports whether addr is the network or broadcast address of p, an IPv4
// prefix shorter than /31.
func subnetEdge(p netip.Prefix, addr netip.Addr) bool {
	if !addr.Is4() || !p.Addr().Is4() || p.Bits() >= 31 {
		return false
	}
	a := binary.BigEndian.Uint32(addr.AsSlice())
	hostMask := uint32(1)<<(32-p.Bits()) - 1
	return a&hostMask == 0 || a&hostMask == hostMask
}

// configured reports how many hosts the rules cover (saturating): the addresses less the
// network and broadcast addresses of IPv4 subnets, times the rules' densities.
func (r *hostRegistry) configured() float64 {
	var n float64
	for _, ru := range r.rules {
		c := float64(uint64(1) << min(63, uint(ru.prefix.Addr().BitLen()-ru.prefix.Bits())))
		if ru.prefix.Addr().Is4() && ru.prefix.Bits() < 31 {
			c -= 2
		}
		if ru.live != 0 {
			c *= float64(ru.live) / (1 << 32) // the expected number of live hosts
		}
		n += c
	}
	return n
}

// get returns the host at addr, creating it on first contact; ok is false when no rule
// covers addr. It takes one shard's read lock when the host exists; creating a host (and
// reading its kept state) happens outside any lock, inserting it under its shard's lock.
func (r *hostRegistry) get(addr netip.Addr) (*host, bool) {
	return r.getAt(addr, time.Now().UnixNano())
}

// getAt is get for a caller that has read the clock already: now (unix nanoseconds) is
// when the host was last seen.
func (r *hostRegistry) getAt(addr netip.Addr, now int64) (*host, bool) {
	addr = addr.Unmap()
	sh := r.shard(addr)
	sh.mu.RLock()
	h, ok := sh.m[addr]
	sh.mu.RUnlock()
	if ok {
		h.lastSeen.Store(now)
		if !h.ref.Load() {
			h.ref.Store(true)
		}
		return h, true
	}
	dev, ok := r.match(addr)
	if !ok {
		return nil, false
	}
	h = r.newHost(addr, dev)
	h.lastSeen.Store(now)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if old, ok := sh.m[addr]; ok {
		return old, true
	}
	if r.n.Load() >= int64(r.maxHosts) {
		// Full: the newcomer replaces a host of its own shard, so the cap holds across
		// shards of uneven size and no other shard's lock is taken.
		if i, ok := sh.victimLocked(); ok {
			old := sh.ring[i]
			delete(sh.m, old.Addr)
			r.evicted.Add(1)
			// The newcomer takes the victim's place just behind the hand: it is looked at
			// last in the next pass.
			sh.ring[i] = h
			sh.m[addr] = h
			r.created.Add(1)
			return h, true
		}
		// Every host of the shard has open connections (bounded by the connection caps),
		// or the shard is empty: go over the cap rather than evict one elsewhere.
	}
	sh.ring = append(sh.ring, h)
	sh.m[addr] = h
	r.n.Add(1)
	r.created.Add(1)
	return h, true
}

// newHost builds the host at addr from the seed and puts back what the store kept for it.
func (r *hostRegistry) newHost(addr netip.Addr, dev *deviceProfile) *host {
	seed := hostSeed(r.seed, addr, dev.profile.Name)
	var hs protocols.HostStore
	if r.store != nil {
		id := hostID(addr, dev.profile.Name)
		hs = &hostStore{s: r.store, id: id, saved: r.store.Load(id)}
	}
	bits := addr.BitLen()
	for _, ru := range r.rules { // longest first, as match takes them
		if ru.prefix.Contains(addr) {
			bits = ru.prefix.Bits()
			break
		}
	}
	return &host{Host: protocols.NewSubnetHost(netip.PrefixFrom(addr, bits), dev.profile, seed, r.hostStart(seed), r.boot.Boots, hs), dev: dev}
}

// victimLocked advances the clock hand to a host it may evict: no open connections and
// not seen since the hand's last pass. It looks at most twice round the ring.
func (sh *hostShard) victimLocked() (int, bool) {
	n := len(sh.ring)
	for range 2 * n {
		if sh.hand >= n {
			sh.hand = 0
		}
		i := sh.hand
		sh.hand++
		h := sh.ring[i]
		if h.conns.Load() > 0 {
			continue
		}
		if h.ref.Load() {
			h.ref.Store(false) // a second chance
			continue
		}
		return i, true
	}
	return 0, false
}

// removeLocked drops the host at ring index i, moving the last host into its place.
func (sh *hostShard) removeLocked(i int) {
	h := sh.ring[i]
	last := len(sh.ring) - 1
	sh.ring[i] = sh.ring[last]
	sh.ring[last] = nil
	sh.ring = sh.ring[:last]
	delete(sh.m, h.Addr)
}

// sweepChunk bounds how many hosts an idle sweep looks at per lock hold; it yields between
// chunks and sleeps every sweepSleepEvery chunks. Sleeping, not only yielding, lets the
// processor go idle so the Go scheduler polls the network: a loop that only yields can
// delay a socket's readiness until sysmon's next poll (up to 10 ms) on a machine with few
// cores.
const (
	sweepChunk      = 512
	sweepSleepEvery = 8
	sweepPause      = 10 * time.Microsecond
)

// sweep evicts hosts idle for longer than the idle time, one shard and at most sweepChunk
// hosts at a time: the packet path waits for at most one chunk of one shard. It stops
// early when ctx is done.
func (r *hostRegistry) sweep(ctx context.Context) {
	cut := time.Now().UnixNano() - int64(r.idle)
	chunks := 0
	for i := range r.shards {
		if ctx.Err() != nil {
			return
		}
		sh := &r.shards[i]
		sh.mu.RLock()
		j := len(sh.ring) - 1
		sh.mu.RUnlock()
		for j >= 0 {
			sh.mu.Lock()
			j = min(j, len(sh.ring)-1)
			// Backwards: the host moved into a freed slot comes from the end, already seen.
			for stop := j - sweepChunk; j >= 0 && j > stop; j-- {
				h := sh.ring[j]
				if h.conns.Load() == 0 && h.lastSeen.Load() < cut {
					sh.removeLocked(j)
					r.n.Add(-1)
					r.evicted.Add(1)
				}
			}
			sh.mu.Unlock()
			if chunks++; chunks%sweepSleepEvery == 0 {
				time.Sleep(sweepPause)
			} else {
				runtime.Gosched()
			}
		}
	}
}

func (r *hostRegistry) count() int { return int(r.n.Load()) }

// hostStart gives each host its own boot time. Until a restart simulated a reboot, that
// is between 3 and 200 days before the deployment first started (the epoch kept in the
// state directory, so uptimes continue across restarts); after one, a few seconds before
// that restart.
func (r *hostRegistry) hostStart(seed uint64) time.Time {
	if !r.boot.Rebooted.IsZero() {
		return r.boot.Rebooted.Add(-time.Duration(1+seed%30) * time.Second)
	}
	days := 3 + seed%197
	secs := (seed >> 12) % 86400
	return r.boot.Epoch.Add(-time.Duration(days)*24*time.Hour - time.Duration(secs)*time.Second)
}

// hostID names a host in the state store: its address and its profile, so a host that
// changes profile starts afresh.
func hostID(addr netip.Addr, profile string) string {
	a := addr.As16()
	return string(a[:]) + profile
}

// hostStore is one host's view of the state store (protocols.HostStore).
type hostStore struct {
	s     *state.Store
	id    string
	saved map[string][]byte
}

func (h *hostStore) Save(key string, value []byte) bool { return h.s.Put(h.id, key, value) }

func (h *hostStore) Saved(key string) ([]byte, bool) { v, ok := h.saved[key]; return v, ok }

func (h *hostStore) SavedKeys() []string {
	out := make([]string, 0, len(h.saved))
	for k := range h.saved {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
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

// deploymentSeed turns the seed text into a number.
func deploymentSeed(seed string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(seed))
	return h.Sum64()
}
