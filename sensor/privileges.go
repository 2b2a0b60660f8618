package sensor

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"unsafe"
)

// DropPrivileges switches the process to the named user (and group, or the user's primary
// group) after the sockets are bound. It does nothing when not running as root. The empty
// name or "root" keeps root, which the caller should warn about.
//
// keep lists capabilities (e.g. CAP_NET_ADMIN, 12) to retain in the permitted and effective
// sets, so the sensor can undo its network changes at shutdown; every other capability
// leaves the bounding set. Both need a binary built without cgo; otherwise keptErr says
// what was not done and the drop goes on.
func DropPrivileges(userName, groupName string, keep ...uint) (dropped bool, keptErr, err error) {
	if os.Geteuid() != 0 || userName == "" || userName == "root" {
		return false, nil, nil
	}
	u, err := user.Lookup(userName)
	if err != nil {
		return false, nil, fmt.Errorf("drop privileges: %w", err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return false, nil, fmt.Errorf("drop privileges: uid %q: %w", u.Uid, err)
	}
	gidStr := u.Gid
	if groupName != "" {
		g, err := user.LookupGroup(groupName)
		if err != nil {
			return false, nil, fmt.Errorf("drop privileges: %w", err)
		}
		gidStr = g.Gid
	}
	gid, err := strconv.Atoi(gidStr)
	if err != nil {
		return false, nil, fmt.Errorf("drop privileges: gid %q: %w", gidStr, err)
	}
	// Go applies these to every thread of the process.
	if err := syscall.Setgroups([]int{gid}); err != nil {
		return false, nil, fmt.Errorf("drop privileges: setgroups: %w", err)
	}
	if err := syscall.Setgid(gid); err != nil {
		return false, nil, fmt.Errorf("drop privileges: setgid %d: %w", gid, err)
	}
	// The capability bounding set keeps only what the sensor still needs, so nothing the
	// process (or a child) does later can regain the rest.
	var boundErr error
	if err := dropBoundingSet(keep); errors.Is(err, syscall.ENOTSUP) {
		// AllThreadsSyscall is unavailable in a cgo binary; the drop itself still works.
		boundErr = errors.New("capability bounding set not reduced: needs a binary built without cgo (make build)")
	} else if err != nil {
		return false, nil, err
	}
	if len(keep) > 0 {
		if _, _, e := syscall.AllThreadsSyscall(syscall.SYS_PRCTL, prSetKeepCaps, 1, 0); e != 0 {
			keptErr = fmt.Errorf("keep capabilities: prctl: %w", e)
			keep = nil
		}
	}
	if err := syscall.Setuid(uid); err != nil {
		return false, nil, fmt.Errorf("drop privileges: setuid %d: %w", uid, err)
	}
	if syscall.Setuid(0) == nil {
		return false, nil, fmt.Errorf("drop privileges: could regain root after setuid %d", uid)
	}
	if len(keep) > 0 {
		keptErr = setCaps(keep)
	}
	return true, errors.Join(keptErr, boundErr), nil
}

// dropBoundingSet removes every capability but keep from the bounding set of every thread.
func dropBoundingSet(keep []uint) error {
	last := 63
	if b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			last = n
		}
	}
	for c := 0; c <= last; c++ {
		if slices.Contains(keep, uint(c)) {
			continue
		}
		if _, _, e := syscall.AllThreadsSyscall(syscall.SYS_PRCTL, prCapBSetDrop, uintptr(c), 0); e != 0 && e != syscall.EINVAL {
			return fmt.Errorf("drop privileges: bounding set: capability %d: %w", c, e)
		}
	}
	return nil
}

const (
	prCapBSetDrop           = 24
	prSetKeepCaps           = 8
	linuxCapabilityVersion3 = 0x20080522
)

// setCaps sets the permitted and effective sets of every thread to exactly caps.
func setCaps(caps []uint) error {
	hdr := struct {
		version uint32
		pid     int32
	}{version: linuxCapabilityVersion3}
	var data [2]struct{ effective, permitted, inheritable uint32 }
	for _, c := range caps {
		data[c/32].effective |= 1 << (c % 32)
		data[c/32].permitted |= 1 << (c % 32)
	}
	if _, _, e := syscall.AllThreadsSyscall(syscall.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); e != 0 {
		return fmt.Errorf("keep capabilities: capset: %w", e)
	}
	return nil
}
