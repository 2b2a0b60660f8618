package bacnet

import (
	"math"
	"sync"
	"time"

	"github.com/icsnare/icsnare/protocols"
)

// Segmentation of answers (5.2, 5.4.4): the first segment goes out at once, then a window
// of segments per Segment-ACK the client sends; an unacknowledged window is sent again
// after the segment timeout, a bounded number of times.
const (
	maxSegments       = 64   // segments of one request we take (max-segments-accepted)
	maxSentSegments   = 255  // segments of one answer (sequence numbers 0-254, no wrap)
	minSegmentPayload = 32   // smallest segment worth sending under the amplification bound
	segmentACKLen     = 4    // a Segment-ACK APDU
	segmentTimeoutMS  = 2000 // apdu-segment-timeout
	proposedWindow    = 16   // our proposed window size
	maxTransfers      = 4    // segmented answers in progress per flow
	segmentHeaderLen  = 5    // ComplexACK with SEG: type, invoke, sequence, window, service
)

// transfer is one segmented answer in progress.
type transfer struct {
	segs     [][]byte // framed datagrams
	next     int      // first segment not acknowledged
	window   int      // the client's actual window
	proposed int      // the window our segments propose
	retries  int
	timer    *time.Timer
}

// transfers are a flow's segmented answers, by invoke id.
type transfers struct {
	mu     sync.Mutex
	m      map[byte]*transfer
	closed bool
}

func (sv *service) transfers(s *protocols.Session) *transfers {
	return s.State("bacnet.tsm", func() any {
		ts := &transfers{m: map[byte]*transfer{}}
		s.OnClose(func() {
			ts.mu.Lock()
			defer ts.mu.Unlock()
			ts.closed = true
			for id, t := range ts.m {
				t.timer.Stop()
				delete(ts.m, id)
			}
		})
		return ts
	}).(*transfers)
}

// sendComplexACK sends an answer, segmented when it does not fit the client's max APDU.
func (sv *service) sendComplexACK(s *protocols.Session, m *message, data []byte, reply func([]byte), x *exchange) {
	a := &m.apdu
	maxAPDU := sv.cfg.maxAPDU
	if a.maxAPDU > 0 && a.maxAPDU < maxAPDU {
		maxAPDU = a.maxAPDU
	}
	abort := func(reason byte) {
		x.failed = true
		x.add("abort_reason", int(reason))
		reply(frame(&m.npdu, appendAbort(nil, a.invokeID, reason)))
	}
	// Answers to a source that has not proved it receives them stay within the sensor's
	// amplification bound datagram by datagram: an answer that passes it is segmented (as a
	// device segments an answer that passes the client's max APDU) into segments small
	// enough that the first one fits the bound of the request and each later one, sent one
	// per Segment-ACK, the bound of that Segment-ACK. So a spoofed request reflects at most
	// the bound, and a client that really asks gets the whole answer.
	budget := s.MaxReply(x.reqLen)
	if 3+len(data) <= maxAPDU {
		x.apdu = append(appendComplexACKHeader(x.apdu[:0], a.invokeID, a.service), data...)
		out := appendFrame(x.framed[:0], &m.npdu, x.apdu)
		x.framed = out
		if len(out) <= budget {
			reply(out)
			return
		}
	}
	bounded := budget != math.MaxInt
	if !sv.cfg.transmits() || a.flags&flagSA == 0 {
		if bounded {
			x.add("amplification_bound", budget)
		}
		abort(abortSegmentationNotSupport)
		return
	}
	chunk := maxAPDU - segmentHeaderLen
	window := proposedWindow
	if bounded {
		overhead := len(frame(&m.npdu, nil)) + segmentHeaderLen
		ackLen := x.reqLen - len(m.npdu.apdu) + segmentACKLen // the client's Segment-ACK, framed alike
		per := min(budget, s.MaxReply(ackLen))
		if per-overhead < minSegmentPayload {
			x.add("amplification_bound", budget)
			abort(abortSegmentationNotSupport)
			return
		}
		if per-overhead < chunk {
			chunk = per - overhead
			x.add("amplification_bound", budget)
		}
		// The client acknowledges a window at once (5.4): propose no more segments than one
		// Segment-ACK's bound lets follow it.
		window = max(1, min(window, s.MaxReply(ackLen)/(chunk+overhead)))
	}
	n := (len(data) + chunk - 1) / chunk
	limit := maxSentSegments
	if a.maxSegs > 0 && a.maxSegs < limit {
		limit = a.maxSegs
	}
	if n > limit {
		abort(abortBufferOverflow)
		return
	}
	t := &transfer{segs: make([][]byte, n), window: 1, proposed: window}
	for i := range n {
		part := data[i*chunk : min(len(data), (i+1)*chunk)]
		h := appendSegmentedACKHeader(nil, a.invokeID, a.service, byte(i), byte(window), i < n-1)
		t.segs[i] = frame(&m.npdu, append(h, part...))
	}
	ts := sv.transfers(s)
	ts.mu.Lock()
	if old, ok := ts.m[a.invokeID]; ok {
		old.timer.Stop()
		delete(ts.m, a.invokeID)
	}
	if ts.closed || len(ts.m) >= maxTransfers {
		ts.mu.Unlock()
		abort(abortOutOfResources)
		return
	}
	ts.m[a.invokeID] = t
	id := a.invokeID
	t.timer = time.AfterFunc(segmentTimeoutMS*time.Millisecond, func() { sv.retransmit(s, ts, id, t) })
	ts.mu.Unlock()
	x.add("segments", n)
	reply(t.segs[0])
}

// segmentACK sends the next window of a segmented answer (as much of it as the
// amplification bound for the Segment-ACK of reqLen octets allows).
func (sv *service) segmentACK(s *protocols.Session, a *apdu, reqLen int, reply func([]byte)) {
	ts := sv.transfers(s)
	ts.mu.Lock()
	t, ok := ts.m[a.invokeID]
	if !ok {
		ts.mu.Unlock()
		return
	}
	seq := int(a.seq)
	if seq < t.next-1 || seq >= len(t.segs) {
		ts.mu.Unlock()
		return // a duplicate or an acknowledgement of what was never sent
	}
	if seq == len(t.segs)-1 {
		t.timer.Stop()
		delete(ts.m, a.invokeID)
		ts.mu.Unlock()
		return
	}
	t.window = max(1, min(int(a.window), t.proposed))
	if fit := s.MaxReply(reqLen) / len(t.segs[0]); fit < t.window {
		t.window = max(1, fit)
	}
	t.next = seq + 1
	t.retries = 0
	end := min(len(t.segs), t.next+t.window)
	out := t.segs[t.next:end]
	t.timer.Reset(segmentTimeoutMS * time.Millisecond)
	ts.mu.Unlock()
	for _, seg := range out {
		reply(seg)
	}
}

// retransmit sends the unacknowledged window again, up to the retry count.
func (sv *service) retransmit(s *protocols.Session, ts *transfers, id byte, t *transfer) {
	ts.mu.Lock()
	if ts.m[id] != t {
		ts.mu.Unlock()
		return
	}
	if t.retries++; t.retries > defaultRetries {
		delete(ts.m, id)
		ts.mu.Unlock()
		return
	}
	end := min(len(t.segs), t.next+t.window)
	out := t.segs[t.next:end]
	t.timer.Reset(segmentTimeoutMS * time.Millisecond)
	ts.mu.Unlock()
	for _, seg := range out {
		if s.Send(seg) != nil {
			return
		}
	}
}

// cancel ends a segmented answer the client aborted.
func (sv *service) cancel(s *protocols.Session, id byte) {
	ts := sv.transfers(s)
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if t, ok := ts.m[id]; ok {
		t.timer.Stop()
		delete(ts.m, id)
	}
}
