package ipmi

import (
	"encoding/binary"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/icsnare/icsnare/protocols"
)

const hostStateKey = "ipmi.bmc"

// hostState is one emulated BMC: identity drawn from the host's seed, and what clients
// changed (chassis power, identify).
type hostState struct {
	guid     [16]byte
	mac      [6]byte
	gwMAC    [6]byte
	start    time.Time
	made     time.Time // the board's manufacture
	seed     uint64
	sensors  []sensor
	fru      []byte
	users    []user     // guarded by mu
	sel      []selEntry // guarded by mu
	powerOff bool       // a server's BMC reports its host powered on until told otherwise

	mu        sync.Mutex
	sessions  int       // RMCP+ sessions (opened or active) on this BMC
	lastEvent byte      // Get Chassis Status "last power event"
	lastPower time.Time // when power last changed
	resv      uint16    // SDR and SEL reservation counter
	bootFlags [5]byte   // boot options parameter 5
	handles   byte      // session handle counter
}

func (s *service) host(h *protocols.Host) *hostState {
	return h.State(hostStateKey, func() any { return s.newHostState(h) }).(*hostState)
}

func (s *service) newHostState(h *protocols.Host) *hostState {
	env := h.Databus.Env()
	r := env.Rand("ipmi.identity")
	hs := &hostState{start: env.Start, seed: h.Seed}
	copy(hs.mac[:3], s.cfg.macOUI[:])
	for i := 3; i < 6; i++ {
		hs.mac[i] = byte(r.Uint32())
	}
	gwOUIs := [][3]byte{{0x00, 0x1B, 0x21}, {0x00, 0x0C, 0x29}, {0x3C, 0x8A, 0xB0}, {0x00, 0x1E, 0x49}, {0xF4, 0xCF, 0xE2}}
	o := gwOUIs[r.IntN(len(gwOUIs))]
	copy(hs.gwMAC[:3], o[:])
	for i := 3; i < 6; i++ {
		hs.gwMAC[i] = byte(r.Uint32())
	}
	// The GUID dates from the board's manufacture, 2019–2024, drawn from the seed alone so
	// a host keeps it across restarts.
	made := time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(r.IntN(6*365*24*3600)) * time.Second)
	fromDatabus := func(key string) (string, bool) {
		if h.Databus == nil || h.Profile == nil || h.Profile.Schema == nil || !h.Profile.Schema.Has(key) {
			return "", false
		}
		v, err := h.Databus.GetString(key)
		return strings.TrimSpace(v), err == nil
	}
	// The profile's MAC, when it defines one, is the BMC's on every protocol.
	if v, ok := fromDatabus(keyMAC); ok {
		if m, err := net.ParseMAC(v); err == nil && len(m) == 6 {
			copy(hs.mac[:], m)
		}
	}
	hs.guid = timeGUID(made, uint16(r.Uint32()), hs.mac)
	hs.fru = newFRU(r, made, fromDatabus)
	hs.made = made
	hs.users = newUserTable(s.cfg)
	hs.sensors = newSensors(r)
	hs.sel = newSEL(r, env.Start)
	hs.lastPower = env.Start
	hs.restore(h.Databus)
	return hs
}

// timeGUID returns a time-based (version 1) GUID made at t on the BMC's MAC, as BMC
// firmware makes its system GUID, in IPMI's wire order (least significant byte first).
func timeGUID(t time.Time, clockSeq uint16, node [6]byte) [16]byte {
	ts := uint64(t.UnixNano()/100) + 0x01B21DD213814000 // 100 ns intervals since 1582-10-15
	var u [16]byte                                      // RFC 4122 byte order first
	binary.BigEndian.PutUint32(u[0:], uint32(ts))
	binary.BigEndian.PutUint16(u[4:], uint16(ts>>32))
	binary.BigEndian.PutUint16(u[6:], uint16(ts>>48)&0x0FFF|0x1000)
	binary.BigEndian.PutUint16(u[8:], clockSeq&0x3FFF|0x8000)
	copy(u[10:], node[:])
	var g [16]byte
	for i := range u {
		g[i] = u[15-i]
	}
	return g
}

// nextHandle returns a session handle (1–255).
func (hs *hostState) nextHandle() byte {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	hs.handles++
	if hs.handles == 0 {
		hs.handles = 1
	}
	return hs.handles
}

// reserve returns a new SDR/SEL reservation id (never 0).
func (hs *hostState) reserve() uint16 {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	hs.resv++
	if hs.resv == 0 {
		hs.resv = 1
	}
	return hs.resv
}

// jitter returns a stable pseudo-random value in [0, n) for one sensor in one time slot.
func (hs *hostState) jitter(sensor byte, now time.Time, n int) int {
	if n <= 0 {
		return 0
	}
	slot := uint64(now.Unix() / 10)
	r := rand.New(rand.NewPCG(hs.seed^slot, uint64(sensor)|0x9e3779b97f4a7c15))
	return r.IntN(n)
}
