package sensor

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// handlerPool runs connection handlers on goroutines that outlive one connection. A new
// goroutine starts on a small stack that is copied each time a deep handler grows it
// (newstack and copystack took 6 % of the CPU of a one-request HTTP connection), whereas a
// worker that served a connection before starts the next on the stack it has.
//
// A worker that finishes joins the idle list (at most maxIdle long; past it the worker
// exits) and waits there for up to keep; run hands work to the worker that joined last,
// whose stack is the most likely to be warm, and starts a new worker when none is idle.
type handlerPool struct {
	keep    time.Duration
	maxIdle int

	mu   sync.Mutex
	idle []*handlerWorker

	started atomic.Int64 // workers started, for tests
	live    atomic.Int64 // workers running or idle
}

type handlerWorker struct {
	work chan func() // capacity 1: run never blocks handing work over
}

func newHandlerPool(keep time.Duration, maxIdle int) *handlerPool {
	return &handlerPool{keep: keep, maxIdle: maxIdle}
}

// run runs f on an idle worker, or on a new one. ctx ends idle workers' wait early once
// the sensor stops.
func (p *handlerPool) run(ctx context.Context, f func()) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		w := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		w.work <- f
		return
	}
	p.mu.Unlock()
	p.started.Add(1)
	p.live.Add(1)
	go p.loop(ctx, &handlerWorker{work: make(chan func(), 1)}, f)
}

func (p *handlerPool) loop(ctx context.Context, w *handlerWorker, f func()) {
	defer p.live.Add(-1)
	idle := time.NewTimer(p.keep)
	defer idle.Stop()
	for {
		f()
		f = nil // nothing of the last connection stays reachable while idle
		p.mu.Lock()
		if len(p.idle) >= p.maxIdle {
			p.mu.Unlock()
			return
		}
		p.idle = append(p.idle, w)
		p.mu.Unlock()
		idle.Reset(p.keep)
		select {
		case f = <-w.work:
			continue
		case <-idle.C:
		case <-ctx.Done():
		}
		if p.leave(w) {
			return
		}
		f = <-w.work // run took this worker off the list meanwhile: its work is on the way
	}
}

// leave takes w off the idle list; false when run took it off already.
func (p *handlerPool) leave(w *handlerWorker) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, x := range p.idle {
		if x == w {
			copy(p.idle[i:], p.idle[i+1:])
			p.idle[len(p.idle)-1] = nil
			p.idle = p.idle[:len(p.idle)-1]
			return true
		}
	}
	return false
}

// idleWorkers is how many workers wait for work.
func (p *handlerPool) idleWorkers() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}
