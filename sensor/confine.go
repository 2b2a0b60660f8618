package sensor

import (
	"errors"
	"fmt"

	seccomp "github.com/elastic/go-seccomp-bpf"
)

// allowedSyscalls are the system calls the running sensor makes: the Go runtime, sockets
// (listeners, ephemeral endpoints, netlink for teardown), event, state and capture files,
// the bpf syscall for the XDP maps, and signals. Everything else fails with EPERM.
//
// go-seccomp-bpf (Elastic, pure Go, no cgo, so the static binary keeps working) assembles
// the filter; libseccomp-golang would need cgo and a shared library.
var allowedSyscalls = []string{
	// Go runtime: memory, threads, scheduling, signals, time.
	"brk", "mmap", "munmap", "mremap", "mprotect", "madvise", "mlock", "munlock", "membarrier",
	"clone", "clone3", "exit", "exit_group", "futex", "set_robust_list", "get_robust_list", "rseq",
	"sched_yield", "sched_getaffinity", "nanosleep", "clock_nanosleep", "clock_gettime", "clock_getres", "gettimeofday",
	"rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending", "rt_sigtimedwait", "sigaltstack",
	"tgkill", "tkill", "kill", "gettid", "getpid", "getppid", "getuid", "geteuid", "getgid", "getegid", "getgroups",
	"getrandom", "uname", "prlimit64", "getrlimit", "sysinfo", "restart_syscall", "setitimer", "getitimer",
	"timer_create", "timer_settime", "timer_gettime", "timer_delete", "timerfd_create", "timerfd_settime",
	"capget", "prctl", "arch_prctl",
	// Polling and descriptors.
	"epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2", "eventfd2", "pipe2",
	"read", "write", "readv", "writev", "pread64", "pwrite64", "close", "dup", "dup3", "fcntl", "ioctl", "lseek",
	"poll", "ppoll", "select", "pselect6",
	// Sockets.
	"socket", "bind", "listen", "accept4", "connect", "getsockname", "getpeername", "setsockopt", "getsockopt",
	"sendto", "recvfrom", "sendmsg", "recvmsg", "sendmmsg", "recvmmsg", "shutdown", "socketpair",
	// Files: events, state store, captures, /proc reads of the metrics collector.
	"openat", "newfstatat", "fstat", "statx", "fstatfs", "statfs", "getdents64", "readlinkat", "faccessat", "faccessat2",
	"mkdirat", "unlinkat", "renameat", "renameat2", "linkat", "fchmod", "fchmodat", "fchown", "fchownat",
	"fsync", "fdatasync", "ftruncate", "fallocate", "flock", "utimensat", "getcwd", "umask", "sync_file_range",
	// The XDP limiter's maps and programs.
	"bpf",
}

// AllowedSyscalls returns the seccomp allow-list Confine loads (for the systemd unit's
// SystemCallFilter, which must admit at least these).
func AllowedSyscalls() []string { return append([]string(nil), allowedSyscalls...) }

// Confine loads the seccomp allow-list on every thread of the process (and sets
// no_new_privs, which it needs). Call it after the sockets are bound, the privileges
// dropped and the XDP program loaded.
func Confine() error {
	if !seccomp.Supported() {
		return errors.New("seccomp is not supported by this kernel")
	}
	f := seccomp.Filter{
		NoNewPrivs: true,
		Flag:       seccomp.FilterFlagTSync,
		Policy: seccomp.Policy{
			DefaultAction: seccomp.ActionErrno,
			Syscalls:      []seccomp.SyscallGroup{{Action: seccomp.ActionAllow, Names: allowedSyscalls}},
		},
	}
	if err := seccomp.LoadFilter(f); err != nil {
		return fmt.Errorf("seccomp: %w", err)
	}
	return nil
}
