package ipmi

import (
	"sync"
	"time"
)

// Bounds of the session tables.
const (
	maxSessionsPerFlow   = 8  // RMCP+ sessions one UDP flow (source address and port) may hold
	maxSessionsPerSource = 64 // across every host and port of one source address
	maxEventsPerFlow     = 256
	seqAhead             = 32 // sequence numbers accepted ahead of the highest seen
	seqBehind            = 16 // and behind it, once each
	handshakeTimeout     = 10 * time.Second
)

type sessionState uint8

const (
	stateOpened sessionState = iota + 1 // Open Session answered, waiting for RAKP 1
	stateRAKP2                          // RAKP 2 sent, waiting for RAKP 3
	stateActive                         // RAKP 4 sent: messages flow
)

// rsession is one RMCP+ session of a flow.
type rsession struct {
	bmcID, consoleID uint32
	handle           byte
	v15              bool // an IPMI v1.5 session
	v15Auth          byte // its authentication type
	suite            suite
	state            sessionState
	reqPriv          byte // requested in Open Session (0: highest the algorithms allow)
	role             byte // RAKP 1's role byte as sent (privilege and lookup bit)
	user             user // as it was at RAKP 1
	name             []byte
	rc, rm           [16]byte
	limit            byte // the session's privilege limit
	priv             byte // the current privilege
	keys             *keys
	win              window
	outSeq           uint32
	last             time.Time
	// For retransmissions: the request last answered in the handshake and its answer.
	lastReq, lastResp []byte
	commands          int
}

// window is an RMCP+ inbound sequence number window.
type window struct {
	high uint32
	seen uint32 // bit i: high-1-i was received
}

// accept reports whether seq is new and within the window, and records it.
func (w *window) accept(seq uint32) bool {
	if seq == 0 {
		return false
	}
	switch {
	case seq > w.high:
		d := seq - w.high
		if w.high != 0 && d > seqAhead {
			return false
		}
		if d >= 32 {
			w.seen = 0
		} else {
			w.seen = w.seen<<d | 1<<(d-1)
		}
		w.high = seq
		return true
	case seq == w.high:
		return false
	default:
		d := w.high - seq
		if d > seqBehind || w.seen&(1<<(d-1)) != 0 {
			return false
		}
		w.seen |= 1 << (d - 1)
		return true
	}
}

// flow is the IPMI state of one UDP flow: its RMCP+ sessions.
type flow struct {
	mu       sync.Mutex
	once     sync.Once
	sessions map[uint32]*rsession
	events   int
	dropped  int // events summarised instead of emitted
}

// counters bound sessions per host and per source address.
type counters struct {
	mu     sync.Mutex
	source map[[16]byte]int
}

func (c *counters) acquire(src [16]byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.source[src] >= maxSessionsPerSource {
		return false
	}
	c.source[src]++
	return true
}

func (c *counters) release(src [16]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.source[src] <= 1 {
		delete(c.source, src)
		return
	}
	c.source[src]--
}
