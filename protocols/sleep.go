package protocols

import (
	"context"
	"time"
)

// Sleep waits d (a tarpit, a turnaround delay) or until ctx ends, and reports whether the
// full time passed. A zero or negative d returns true at once.
func Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
