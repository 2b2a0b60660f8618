// Package s7comm emulates a Siemens S7 CPU on ISO-on-TCP (RFC 1006, port 102): TPKT,
// COTP class 0 and S7comm with Setup Communication, SZL reads, Read/Write Var on
// databus-backed areas, PLC Stop/Start, block functions, the CPU clock and passwords.
package s7comm

import (
	"bufio"
	"context"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/icsnare/icsnare/protocols"
)

// Port is ISO-TSAP's standard port.
const Port = 102

// service serves one profile's S7 CPU on every host of that profile.
type service struct {
	cfg *config
}

// config returns the service's configuration.
func (s *service) config() *config { return s.cfg }

// Endpoints implements protocols.Service.
func (s *service) Endpoints() []protocols.Endpoint {
	return []protocols.Endpoint{{Transport: protocols.TCP, Port: Port}}
}

// cpuState is one host's CPU: operating mode, clock offset, source references.
type cpuState struct {
	mu      sync.Mutex
	mode    byte
	prev    byte
	changed time.Time
	clock   time.Duration // offset set by "set clock"
	ref     atomic.Uint32
}

const cpuStateKey = "s7comm.cpu"

// modeKey is where a host's operating mode is kept across eviction and restarts.
const modeKey = "s7comm.mode"

func (s *service) cpu(h *protocols.Host) *cpuState {
	return h.State(cpuStateKey, func() any {
		start := time.Now()
		if h.Databus != nil {
			start = h.Databus.Env().Start
		}
		st := &cpuState{mode: s.cfg.Mode, changed: start}
		if k := s.cfg.ModeKey; k != "" && h.Databus != nil && s.cfg.Switch != SwitchStop {
			// the mode the host's other protocols show (a write kept across restarts included)
			if v, err := h.Databus.GetString(k); err == nil {
				if m, ok := parseModeName(v); ok {
					st.mode = m
				}
			}
		}
		if b, ok := h.Persisted(modeKey); ok && len(b) == 2 {
			st.mode, st.prev = b[0], b[1] // an attacker's STOP (or START) outlives eviction and restarts
		}
		// source references continue from a per-host value, as on a CPU that has been up a while
		st.ref.Store(uint32(0x0100 + h.Seed%0x3F00))
		return st
	}).(*cpuState)
}

// parseModeName reads an operating mode as a databus key spells it.
func parseModeName(v string) (byte, bool) {
	switch strings.ToUpper(strings.TrimSpace(v)) {
	case "RUN":
		return ModeRun, true
	case "STOP":
		return ModeStop, true
	}
	return 0, false
}

// modeName is the operating mode as the databus key carries it.
func modeName(m byte) string {
	if m == ModeRun {
		return "RUN"
	}
	return "STOP"
}

// Limits.
const (
	maxFrame      = 8192 + tpktHeaderLen + 3 // one TPKT frame
	maxReassembly = 8192                     // one S7 PDU assembled from DT TPDUs
	maxErrors     = 8                        // protocol errors answered before the connection is dropped
	// readBufSize holds a typical job frame: a larger one is read through.
	readBufSize = 512
)

// ServeConn implements protocols.StreamService.
func (s *service) ServeConn(ctx context.Context, sess *protocols.Session, nc net.Conn) {
	c := &conn{ctx: ctx, svc: s, cfg: s.cfg, s: sess, nc: nc, host: sess.Host, tpdu: TPDUSize(defaultTPDUSizeCod),
		pdu: s.cfg.PDUSize, amq: s.cfg.MaxAmq}
	if c.host == nil {
		return
	}
	c.cpu = s.cpu(c.host)
	c.rd = bufio.NewReaderSize(nc, readBufSize)
	stop := context.AfterFunc(ctx, func() { nc.SetReadDeadline(time.Now()) })
	defer stop()
	c.run(ctx)
}
