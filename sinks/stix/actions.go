package stix

import "github.com/icsnare/icsnare/protocols"

// Action kinds: a write to the emulated device's data or files, or a change of its state.
const (
	KindWrite = protocols.ActionWrite
	KindState = protocols.ActionState
)

// Action is what an event did to the emulated device (protocols.Action).
type Action = protocols.Action

// Classify reports whether e wrote to the emulated device or changed its state, and what
// it did (protocols.ClassifyAction).
func Classify(e *protocols.Event) (Action, bool) { return protocols.ClassifyAction(e.Type, e.Fields) }
