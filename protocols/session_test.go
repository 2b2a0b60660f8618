package protocols

import (
	"testing"
	"unsafe"
)

// TestSessionHotFieldsTogether: what every request reads or writes (the emitter, the
// metrics, volume control, the request count and kind caches, the activity clocks) sits
// in the session's first three cache lines, as the field order intends; a field added
// among them, or moved away, fails here.
func TestSessionHotFieldsTogether(t *testing.T) {
	var s Session
	hot := map[string]uintptr{
		"Events":       unsafe.Offsetof(s.Events) + unsafe.Sizeof(s.Events),
		"Metrics":      unsafe.Offsetof(s.Metrics) + unsafe.Sizeof(s.Metrics),
		"KeepEvents":   unsafe.Offsetof(s.KeepEvents) + unsafe.Sizeof(s.KeepEvents),
		"OnSummarised": unsafe.Offsetof(s.OnSummarised) + unsafe.Sizeof(s.OnSummarised),
		"requests":     unsafe.Offsetof(s.requests) + unsafe.Sizeof(s.requests),
		"lastType":     unsafe.Offsetof(s.lastType) + unsafe.Sizeof(s.lastType),
		"lastKind":     unsafe.Offsetof(s.lastKind) + unsafe.Sizeof(s.lastKind),
		"vol":          unsafe.Offsetof(s.vol) + unsafe.Sizeof(s.vol),
		"life.last":    unsafe.Offsetof(s.life) + unsafe.Offsetof(s.life.last) + unsafe.Sizeof(s.life.last),
		"life.heard":   unsafe.Offsetof(s.life) + unsafe.Offsetof(s.life.heard) + unsafe.Sizeof(s.life.heard),
	}
	for name, end := range hot {
		if end > 3*64 {
			t.Errorf("%s ends at byte %d of the session, past its first three cache lines", name, end)
		}
	}
}
