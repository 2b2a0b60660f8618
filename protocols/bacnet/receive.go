package bacnet

import (
	"sync"
	"sync/atomic"

	"github.com/icsnare/icsnare/protocols"
)

// Receiving segmented requests (5.4.5): each segment is acknowledged with a window of one;
// an out-of-order segment gets a negative Segment-ACK naming the last one received; the
// last segment completes the request, which is then served like any other.
const (
	maxRequestLen     = 8 << 10  // octets of one reassembled request
	maxReassemblyLen  = 16 << 20 // octets held in reassembly by all flows of a service together
	maxReassembliesPF = 2        // requests in reassembly per flow
)

// reassembly is one segmented request being received.
type reassembly struct {
	service byte
	next    int // sequence number expected next
	data    []byte
}

// reassemblies are a flow's segmented requests, by invoke id.
type reassemblies struct {
	mu sync.Mutex
	m  map[byte]*reassembly
}

// held counts the octets all reassemblies of the service hold.
type held struct{ n atomic.Int64 }

func (h *held) take(n int) bool {
	if h.n.Add(int64(n)) > maxReassemblyLen {
		h.n.Add(-int64(n))
		return false
	}
	return true
}

func (sv *service) reassemblies(s *protocols.Session) *reassemblies {
	return s.State("bacnet.rx", func() any {
		r := &reassemblies{m: map[byte]*reassembly{}}
		s.OnClose(func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			for id, x := range r.m {
				sv.held.n.Add(-int64(len(x.data)))
				delete(r.m, id)
			}
		})
		return r
	}).(*reassemblies)
}

// receiveSegment takes one segment of a confirmed request. It returns the whole request's
// service data once the last segment is in; until then it answers with Segment-ACKs (or an
// Abort) itself.
func (sv *service) receiveSegment(s *protocols.Session, m *message, reply func([]byte), x *exchange) ([]byte, bool) {
	a := &m.apdu
	answer := func(apdu []byte) { reply(frame(&m.npdu, apdu)) }
	abort := func(reason byte) {
		x.failed = true
		x.add("abort_reason", int(reason))
		answer(appendAbort(nil, a.invokeID, reason))
	}
	x.add("segment", int(a.seq))
	if a.window == 0 || a.window > 127 {
		abort(abortWindowSizeOutOfRange)
		return nil, false
	}
	rs := sv.reassemblies(s)
	rs.mu.Lock()
	defer rs.mu.Unlock()
	drop := func(id byte) {
		if r, ok := rs.m[id]; ok {
			sv.held.n.Add(-int64(len(r.data)))
			delete(rs.m, id)
		}
	}
	r, ok := rs.m[a.invokeID]
	if a.seq == 0 {
		drop(a.invokeID)
		if len(rs.m) >= maxReassembliesPF {
			abort(abortOutOfResources)
			return nil, false
		}
		r = &reassembly{service: a.service}
		rs.m[a.invokeID] = r
	} else if !ok {
		abort(abortInvalidAPDUInThisState)
		return nil, false
	}
	switch {
	case int(a.seq) == r.next-1:
		answer(appendSegmentACK(nil, a.invokeID, a.seq, 1, false)) // a duplicate: acknowledge again
		return nil, false
	case int(a.seq) != r.next || a.service != r.service:
		answer(appendSegmentACK(nil, a.invokeID, byte(r.next-1), 1, true))
		return nil, false
	}
	if len(r.data)+len(a.data) > maxRequestLen || r.next >= maxSegments || !sv.held.take(len(a.data)) {
		drop(a.invokeID)
		abort(abortBufferOverflow)
		return nil, false
	}
	r.data = append(r.data, a.data...)
	r.next++
	if a.flags&flagMOR != 0 {
		answer(appendSegmentACK(nil, a.invokeID, a.seq, 1, false))
		return nil, false
	}
	data := r.data
	drop(a.invokeID)
	x.add("segments", r.next)
	return data, true
}
