package sensor

import (
	"fmt"
	"os"
	"os/user"
	"strconv"
	"syscall"
)

// DropPrivileges switches the process to the named user (and group, or the user's primary
// group) after the sockets are bound. It does nothing when not running as root. The empty
// name or "root" keeps root, which the caller should warn about.
func DropPrivileges(userName, groupName string) (dropped bool, err error) {
	if os.Geteuid() != 0 || userName == "" || userName == "root" {
		return false, nil
	}
	u, err := user.Lookup(userName)
	if err != nil {
		return false, fmt.Errorf("drop privileges: %w", err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return false, fmt.Errorf("drop privileges: uid %q: %w", u.Uid, err)
	}
	gidStr := u.Gid
	if groupName != "" {
		g, err := user.LookupGroup(groupName)
		if err != nil {
			return false, fmt.Errorf("drop privileges: %w", err)
		}
		gidStr = g.Gid
	}
	gid, err := strconv.Atoi(gidStr)
	if err != nil {
		return false, fmt.Errorf("drop privileges: gid %q: %w", gidStr, err)
	}
	// Go applies these to every thread of the process.
	if err := syscall.Setgroups([]int{gid}); err != nil {
		return false, fmt.Errorf("drop privileges: setgroups: %w", err)
	}
	if err := syscall.Setgid(gid); err != nil {
		return false, fmt.Errorf("drop privileges: setgid %d: %w", gid, err)
	}
	if err := syscall.Setuid(uid); err != nil {
		return false, fmt.Errorf("drop privileges: setuid %d: %w", uid, err)
	}
	if syscall.Setuid(0) == nil {
		return false, fmt.Errorf("drop privileges: could regain root after setuid %d", uid)
	}
	return true, nil
}
