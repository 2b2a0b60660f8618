package snmp

import (
	"encoding/binary"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/icsnare/icsnare/protocols"
)

// snmp group counters (SNMPv2-MIB / RFC 1213 sub-identifiers under 1.3.6.1.2.1.11).
const (
	snmpInPkts              = 1
	snmpOutPkts             = 2
	snmpInBadVersions       = 3
	snmpInBadCommunityNames = 4
	snmpInBadCommunityUses  = 5
	snmpInASNParseErrs      = 6
	snmpInTotalReqVars      = 13
	snmpInTotalSetVars      = 14
	snmpInGetRequests       = 15
	snmpInGetNexts          = 16
	snmpInSetRequests       = 17
	snmpOutTooBigs          = 20
	snmpOutNoSuchNames      = 21
	snmpOutBadValues        = 22
	snmpOutGenErrs          = 24
	snmpOutGetResponses     = 28
	snmpEnableAuthenTraps   = 30
	snmpSilentDrops         = 31
	snmpProxyDrops          = 32
)

// hostState is one emulated host's SNMP engine: counters, engine identity, localized keys.
type hostState struct {
	snmp [33]atomic.Uint32
	usm  [7]atomic.Uint32

	engineID []byte
	boots    int32
	start    time.Time

	keysMu sync.Mutex
	keys   map[*user]*localKeys

	once sync.Once // materialises the per-host databus values (literals, engines)
	salt atomic.Uint64
}

const stateKey = "snmp"

// host returns the SNMP state of h, creating it on first contact.
func (s *service) host(h *protocols.Host) *hostState {
	v := h.State(stateKey, func() any { return s.newHostState(h) })
	hs := v.(*hostState)
	hs.once.Do(func() { s.tree.initHost(h) })
	return hs
}

func (s *service) newHostState(h *protocols.Host) *hostState {
	env := h.Databus.Env()
	r := env.Rand("snmp-engine")
	// snmpEngineBoots: a per-host base plus the reboots the sensor simulated at restarts.
	hs := &hostState{start: env.Start, boots: int32(min(1+int64(r.IntN(40))+h.Boots, 0x7fffffff)), keys: map[*user]*localKeys{}}
	hs.salt.Store(r.Uint64())
	hs.engineID = s.engineID(h, r.Uint64())
	return hs
}

// engineID builds the host's snmpEngineID in the RFC 3411 format: the enterprise number
// with the high bit set, a format octet and the format's data.
func (s *service) engineID(h *protocols.Host, rnd uint64) []byte {
	spec := s.cfg.engine
	id := binary.BigEndian.AppendUint32(nil, spec.enterprise|0x80000000)
	val := spec.literal
	if spec.key != "" {
		if v, err := h.Databus.GetString(spec.key); err == nil {
			val = v
		}
	}
	switch spec.format {
	case "ipv4":
		ip := h.Addr.As16()
		if a, err := parseIPv4(val); err == nil && val != "" {
			copy(ip[12:], a)
		}
		return append(append(id, 1), ip[12:]...)
	case "text":
		return append(append(id, 4), val...)
	case "octets":
		return append(append(id, 5), hexOctets(val)...)
	}
	mac, err := net.ParseMAC(strings.TrimSpace(val))
	if err != nil || len(mac) != 6 {
		// A Siemens OUI and host-specific low bytes.
		mac = net.HardwareAddr{0x00, 0x1b, 0x1b, byte(rnd >> 16), byte(rnd >> 8), byte(rnd)}
	}
	return append(append(id, 3), mac...)
}

// engineTime is snmpEngineTime: seconds since the host's engine (re)started.
func (hs *hostState) engineTime(now time.Time) int32 {
	d := now.Sub(hs.start) / time.Second
	if d < 0 {
		return 0
	}
	if d > 0x7fffffff {
		return 0x7fffffff
	}
	return int32(d)
}

func (hs *hostState) localKeys(u *user) *localKeys {
	hs.keysMu.Lock()
	defer hs.keysMu.Unlock()
	k, ok := hs.keys[u]
	if !ok {
		k = u.localKeys(hs.engineID)
		hs.keys[u] = k
	}
	return k
}

func (hs *hostState) inc(ctr int) { hs.snmp[ctr].Add(1) }
