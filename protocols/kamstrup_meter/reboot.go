package kamstrupmeter

import (
	"sync"
	"time"

	"github.com/icsnare/icsnare/protocols"
)

// RebootTime is how long a rebooting meter does not answer (Conpot's meter server stops
// for 2 s on reboot_signal).
const RebootTime = 2 * time.Second

// rebootState is a host's meter restart state, shared by the meter and the management
// console of that host.
type rebootState struct {
	mu    sync.Mutex
	until time.Time
	done  chan struct{} // closed when the next reboot starts
}

func reboots(h *protocols.Host) *rebootState {
	return h.State(Name+".reboot", func() any { return &rebootState{done: make(chan struct{})} }).(*rebootState)
}

// Reboot restarts host h's meter at now, as the management console's !RR (and the
// commands that force a restart) do: open meter connections close, and new ones are
// closed at once until RebootTime has passed.
func Reboot(h *protocols.Host, now time.Time) {
	if h == nil {
		return
	}
	st := reboots(h)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.until = now.Add(RebootTime)
	close(st.done)
	st.done = make(chan struct{})
}

// Rebooting reports whether host h's meter is restarting at now.
func Rebooting(h *protocols.Host, now time.Time) bool {
	if h == nil {
		return false
	}
	st := reboots(h)
	st.mu.Lock()
	defer st.mu.Unlock()
	return now.Before(st.until)
}

// rebootSignal returns a channel closed when host h's meter next reboots.
func rebootSignal(h *protocols.Host) <-chan struct{} {
	if h == nil {
		return nil
	}
	st := reboots(h)
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.done
}
