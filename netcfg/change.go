package netcfg

import (
	"fmt"
	"strings"
)

// Op is what a Change does.
type Op string

// The operations of a Change.
const (
	OpAdd     Op = "add"     // add a route or alias
	OpRemove  Op = "remove"  // remove a route or alias added earlier and no longer planned
	OpSet     Op = "set"     // set a MAC or sysctl
	OpRestore Op = "restore" // put back a MAC or sysctl changed earlier and no longer planned
	OpAdopt   Op = "adopt"   // take over a route an earlier icsnare run left (RouteProtocol)
	OpKeep    Op = "keep"    // nothing to do: already in place
)

// Kind is what a Change acts on.
type Kind string

// The kinds of a Change.
const (
	KindRoute  Kind = "route"
	KindAlias  Kind = "alias"
	KindMAC    Kind = "mac"
	KindSysctl Kind = "sysctl"
)

// Change is one step between the current and the desired state.
type Change struct {
	Op     Op
	Kind   Kind
	Target string // "198.18.0.0/16 dev lo", "198.18.0.7/32 dev eth0", "eth0", "net.ipv4.ip_nonlocal_bind"
	Value  string // the new MAC or sysctl value
	Prev   string // the value before
	Reason string // why a keep needs nothing
}

func (c Change) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s", c.Op, c.Kind, c.Target)
	if c.Value != "" {
		fmt.Fprintf(&b, " = %s", c.Value)
	}
	if c.Prev != "" {
		fmt.Fprintf(&b, " (was %s)", c.Prev)
	}
	if c.Reason != "" {
		fmt.Fprintf(&b, ": %s", c.Reason)
	}
	return b.String()
}

// Changes is the result of Diff and Apply, in the order they are (or were) carried out.
type Changes []Change

// Pending is every change that is not a keep: empty when the state already matches.
func (cs Changes) Pending() Changes {
	var out Changes
	for _, c := range cs {
		if c.Op != OpKeep {
			out = append(out, c)
		}
	}
	return out
}

// String lists the changes, one per line.
func (cs Changes) String() string {
	var b strings.Builder
	for _, c := range cs {
		b.WriteString(c.String())
		b.WriteByte('\n')
	}
	return b.String()
}
