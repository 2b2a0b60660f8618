package bacnet

import (
	"encoding/json"
	"time"
)

// stateKey is where a host keeps what was written to it (Host.Persist), across eviction and
// sensor restarts. Writes to databus-backed properties are kept by the databus itself.
const stateKey = "bacnet.state"

// savedState is the persisted form of a host's written values, priority arrays, database
// revision and clock offset.
type savedState struct {
	Written  []savedValue    `json:"w,omitempty"`
	Priority []savedPriority `json:"p,omitempty"`
	DBRev    uint32          `json:"r"`
	Clock    int64           `json:"c,omitempty"` // nanoseconds
}

type savedValue struct {
	Obj  uint32 `json:"o"`
	Prop uint32 `json:"p"`
	Val  []byte `json:"v"`
}

type savedPriority struct {
	Obj   uint32     `json:"o"`
	Slots [16][]byte `json:"s"`
}

// persistLocked saves the host's state; st.mu is held, so saves happen in write order.
func (v *view) persistLocked() {
	st := v.st
	s := savedState{DBRev: st.dbRev, Clock: int64(st.clock)}
	for k, val := range st.written {
		s.Written = append(s.Written, savedValue{Obj: k.obj.encode(), Prop: k.prop, Val: val})
	}
	for id, pa := range st.priority {
		s.Priority = append(s.Priority, savedPriority{Obj: id.encode(), Slots: *pa})
	}
	b, err := json.Marshal(s)
	if err != nil {
		return
	}
	v.h.Persist(stateKey, b)
}

// restore puts back what a host kept, skipping anything that is not a well-formed value of
// a configured object's property or passes the bounds.
func (sv *service) restore(st *hostState, b []byte) {
	var s savedState
	if json.Unmarshal(b, &s) != nil {
		return
	}
	valid := func(val []byte) bool {
		if len(val) == 0 || len(val) > maxWrittenLen {
			return false
		}
		vals, err := decodeValues(val)
		return err == nil && len(vals) == 1
	}
	// (The device's writes are kept under the configured device object's identifier, whose
	// instance is 0, so they survive a per-host instance.)
	object := func(id objectID) *objectConfig {
		if id == sv.cfg.device.id {
			return sv.cfg.device
		}
		return sv.cfg.byID[id]
	}
	for _, w := range s.Written {
		id := decodeObjectID(w.Obj)
		o := object(id)
		if len(st.written) < maxWrittenValues && o != nil && writable(o, w.Prop) && o.has(w.Prop) && valid(w.Val) {
			st.written[propKey{id, w.Prop}] = w.Val
		}
	}
	for _, p := range s.Priority {
		id := decodeObjectID(p.Obj)
		if o := object(id); len(st.priority) >= maxWrittenValues || o == nil || !o.commandable {
			continue
		}
		pa := &[16][]byte{}
		for i, slot := range p.Slots {
			if slot != nil && valid(slot) {
				pa[i] = slot
			}
		}
		st.priority[id] = pa
	}
	if s.DBRev > 0 {
		st.dbRev = s.DBRev
	}
	if c := time.Duration(s.Clock); c > -10*365*24*time.Hour && c < 10*365*24*time.Hour {
		st.clock = c
	}
}
