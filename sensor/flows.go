package sensor

import (
	"container/list"
	"context"
	"errors"
	"hash/maphash"
	"net/netip"
	"sync"
	"time"

	"github.com/icsnare/icsnare/protocols"
)

// flowShards splits the flow table so that readers of different flows rarely share a lock.
const flowShards = 64

// flowTable keeps one session per UDP flow (source, host address and port, protocol) for as
// long as the flow is active. It is bounded: each shard holds at most its share of
// max_udp_flows, and a new flow in a full shard ends that shard's least recently used
// flow. Every datagram gets a session with state; none is ever served sessionless.
type flowTable struct {
	shards   [flowShards]flowShard
	perShard int
	idle     time.Duration
	maxLife  time.Duration
	seed     maphash.Seed
	// onEnd runs for every flow that ends (idle, evicted, shut down), outside the locks.
	onEnd func(*protocols.Session, string)
}

type flowShard struct {
	mu    sync.Mutex
	flows map[flowKey]*list.Element // of *flow
	lru   list.List                 // front: most recently used
}

type flowKey struct {
	src, dst netip.AddrPort
	proto    string
}

type flow struct {
	key     flowKey
	sess    *protocols.Session
	created time.Time
}

func newFlowTable(maxFlows int, idle, maxLife time.Duration, onEnd func(*protocols.Session, string)) *flowTable {
	t := &flowTable{perShard: max(1, (maxFlows+flowShards-1)/flowShards), idle: idle, maxLife: maxLife,
		seed: maphash.MakeSeed(), onEnd: onEnd}
	for i := range t.shards {
		t.shards[i].flows = map[flowKey]*list.Element{}
	}
	return t
}

func (t *flowTable) shard(k flowKey) *flowShard {
	return &t.shards[maphash.Comparable(t.seed, k)%flowShards]
}

// session returns the flow's session, creating and opening it on the flow's first datagram.
func (t *flowTable) session(ctx context.Context, s *Sensor, l *udpListener, proto string, h *host, local, remote netip.AddrPort) *protocols.Session {
	k := flowKey{remote, local, proto}
	sh := t.shard(k)
	sh.mu.Lock()
	if e, ok := sh.flows[k]; ok {
		sh.lru.MoveToFront(e)
		sess := e.Value.(*flow).sess
		sh.mu.Unlock()
		return sess
	}
	sh.mu.Unlock()

	sess := s.newSession(proto, protocols.UDP, h, local, remote)
	sess.Amplification = s.amplification(proto)
	pc := s.protoCounters(proto)
	sess.Open(ctx, func(b []byte) error {
		if why := s.mayAnswer(sess, len(b)); why != "" {
			s.m.repliesDropped.WithLabelValues(proto, why).Inc()
			return errors.New("answer dropped: " + why)
		}
		if err := l.write(b, local.Addr(), remote, s.cfg.Limits.WriteTimeout.Duration); err != nil {
			return err
		}
		pc.out.Inc(sess.Stripe)
		pc.bytesOut.Add(sess.Stripe, uint64(len(b)))
		return nil
	})

	var ended *protocols.Session
	sh.mu.Lock()
	if e, ok := sh.flows[k]; ok { // a concurrent reader created it
		sh.lru.MoveToFront(e)
		winner := e.Value.(*flow).sess
		sh.mu.Unlock()
		sess.Close()
		return winner
	}
	if sh.lru.Len() >= t.perShard {
		old := sh.lru.Back()
		f := old.Value.(*flow)
		sh.lru.Remove(old)
		delete(sh.flows, f.key)
		ended = f.sess
	}
	sh.flows[k] = sh.lru.PushFront(&flow{key: k, sess: sess, created: time.Now()})
	sh.mu.Unlock()
	s.m.connections.WithLabelValues(proto, protocols.UDP).Inc()
	if ended != nil {
		t.end(ended, "evicted")
	}
	return sess
}

func (t *flowTable) end(sess *protocols.Session, why string) {
	sess.Close()
	if t.onEnd != nil {
		t.onEnd(sess, why)
	}
}

// sweep ends flows idle for longer than the idle time or older than the maximum lifetime
// and returns how many remain. An ephemeral endpoint's traffic keeps its flow active.
func (t *flowTable) sweep(now time.Time) int {
	idleCut := now.Add(-t.idle)
	n := 0
	var ended []*flow
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		// Walk from the least recently used end; a flow kept busy by Touch moves to the front.
		for e, steps := sh.lru.Back(), sh.lru.Len(); e != nil && steps > 0; steps-- {
			prev := e.Prev()
			f := e.Value.(*flow)
			switch {
			case t.maxLife > 0 && now.Sub(f.created) > t.maxLife, f.sess.LastActive().Before(idleCut):
				sh.lru.Remove(e)
				delete(sh.flows, f.key)
				ended = append(ended, f)
			default:
				sh.lru.MoveToFront(e)
			}
			e = prev
		}
		n += sh.lru.Len()
		sh.mu.Unlock()
	}
	for _, f := range ended {
		why := "idle"
		if t.maxLife > 0 && now.Sub(f.created) > t.maxLife {
			why = "lifetime"
		}
		t.end(f.sess, why)
	}
	return n
}

// closeAll ends every flow (shutdown).
func (t *flowTable) closeAll() {
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		var ended []*flow
		for e := sh.lru.Front(); e != nil; e = e.Next() {
			ended = append(ended, e.Value.(*flow))
		}
		sh.lru.Init()
		clear(sh.flows)
		sh.mu.Unlock()
		for _, f := range ended {
			t.end(f.sess, "shutdown")
		}
	}
}
