package netcfg

import (
	"errors"
	"fmt"
	"syscall"
)

// PrivilegeError reports an operation the kernel refused for lack of a capability.
// errors.Is(err, ErrPrivilege) matches it, and it unwraps to the kernel's error.
type PrivilegeError struct {
	Op         string // what was attempted, e.g. "set MAC of eth0"
	Capability string // what is missing, e.g. "CAP_NET_ADMIN"
	Err        error  // the kernel's error (EPERM or EACCES)
}

// ErrPrivilege is matched by every PrivilegeError.
var ErrPrivilege = errors.New("insufficient privilege")

func (e *PrivilegeError) Error() string {
	return fmt.Sprintf("netcfg: %s: %v: the process lacks %s (run icsnare as root, or grant it with `setcap cap_net_admin+ep <binary>`)", e.Op, e.Err, e.Capability)
}

func (e *PrivilegeError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrPrivilege) true.
func (e *PrivilegeError) Is(target error) bool { return target == ErrPrivilege }

// capNetAdmin is the capability every operation of this package needs: netlink changes to
// links, addresses and routes, and writes to /proc/sys/net.
const capNetAdmin = "CAP_NET_ADMIN"

// wrapErr maps a kernel refusal (EPERM, EACCES) to a PrivilegeError naming the missing
// capability, and wraps any other error with op.
func wrapErr(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) {
		return &PrivilegeError{Op: op, Capability: capNetAdmin, Err: err}
	}
	if errors.Is(err, syscall.EBUSY) {
		return fmt.Errorf("netcfg: %s: %w (the driver cannot make this change while the interface is up)", op, err)
	}
	return fmt.Errorf("netcfg: %s: %w", op, err)
}
