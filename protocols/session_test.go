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

// TestCloseHooksRemovable: a removed hook does not run; the others run latest first; the
// bound counts the hooks registered now, not all ever registered; removing after the
// close does nothing.
func TestCloseHooksRemovable(t *testing.T) {
	s := &Session{}
	var ran []int
	var removes []func()
	for i := range 3 {
		h := s.NewCloseHook(func() { ran = append(ran, i) })
		rm, ok := h.Remove, h.Add()
		if !ok {
			t.Fatalf("hook %d refused", i)
		}
		removes = append(removes, rm)
	}
	removes[1]()
	removes[1]()                        // twice: nothing more
	for i := range 10 * maxCloseHooks { // add and take back, far past the bound
		h := s.NewCloseHook(func() { t.Errorf("hook %d ran after its removal", i) })
		rm, ok := h.Remove, h.Add()
		if !ok {
			t.Fatalf("hook %d refused with two registered", i)
		}
		rm()
	}
	for range maxCloseHooks - 2 {
		if !s.OnClose(func() {}) {
			t.Fatal("refused below the bound")
		}
	}
	if s.OnClose(func() {}) {
		t.Fatal("accepted past the bound")
	}
	s.Close()
	removes[0]() // after the close: nothing
	if len(ran) != 2 || ran[0] != 2 || ran[1] != 0 {
		t.Fatalf("ran %v, want [2 0]", ran)
	}
	late := false
	if h := s.NewCloseHook(func() { late = true }); !h.Add() || !late {
		t.Fatal("a hook added after the close did not run at once")
	} else {
		h.Remove()
	}
}
