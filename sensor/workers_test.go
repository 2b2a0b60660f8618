package sensor

import (
	"context"
	"sync"
	"testing"
	"time"
)

// eventually waits (at most 5 s) for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("still not %s after 5 s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestHandlerPool: work goes to an idle worker when there is one and to a new worker
// otherwise; at most maxIdle wait; idle workers leave when keep passes or the context
// ends; every function runs once.
func TestHandlerPool(t *testing.T) {
	for _, tc := range []struct {
		name    string
		maxIdle int
		batches []int // functions run at once, batch after batch
		started int64 // workers started in all
		idle    int   // idle after the last batch
	}{
		{"one-at-a-time-reuses-one-worker", 8, []int{1, 1, 1, 1}, 1, 1},
		{"concurrent-then-reused", 8, []int{5, 5, 3}, 5, 5},
		{"idle-list-bounded", 2, []int{5, 2, 4}, 5 + 2, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			p := newHandlerPool(time.Hour, tc.maxIdle)
			ran, idle := 0, 0
			var mu sync.Mutex
			for _, n := range tc.batches {
				release := make(chan struct{})
				var running, done sync.WaitGroup
				running.Add(n)
				done.Add(n)
				for range n {
					p.run(ctx, func() {
						running.Done()
						<-release
						mu.Lock()
						ran++
						mu.Unlock()
						done.Done()
					})
				}
				running.Wait() // all n at once: each took its own worker
				close(release)
				done.Wait()
				idle = min(max(idle, n), tc.maxIdle) // the batch's workers return, up to the bound
				eventually(t, "idle", func() bool { return p.idleWorkers() == idle && p.live.Load() == int64(idle) })
			}
			if got := p.started.Load(); got != tc.started {
				t.Errorf("%d workers started, want %d", got, tc.started)
			}
			if got := p.idleWorkers(); got != tc.idle {
				t.Errorf("%d idle, want %d", got, tc.idle)
			}
			total := 0
			for _, n := range tc.batches {
				total += n
			}
			if ran != total {
				t.Errorf("%d functions ran, want %d", ran, total)
			}
			cancel()
			eventually(t, "gone after the context ended", func() bool { return p.live.Load() == 0 })
			if p.idleWorkers() != 0 {
				t.Errorf("%d workers still listed idle", p.idleWorkers())
			}
		})
	}
}

// TestHandlerPoolKeep: an idle worker leaves once keep has passed.
func TestHandlerPoolKeep(t *testing.T) {
	p := newHandlerPool(time.Millisecond, 8)
	done := make(chan struct{})
	p.run(context.Background(), func() { close(done) })
	<-done
	eventually(t, "gone after keep", func() bool { return p.live.Load() == 0 && p.idleWorkers() == 0 })
	done = make(chan struct{})
	p.run(context.Background(), func() { close(done) }) // a new worker
	<-done
	if got := p.started.Load(); got != 2 {
		t.Errorf("%d workers started, want 2", got)
	}
}
