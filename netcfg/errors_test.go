package netcfg

import (
	"errors"
	"io/fs"
	"os"
	"strings"
	"syscall"
	"testing"
)

func TestWrapErr(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		privilege bool
		want      []string
	}{
		{name: "netlink EPERM", err: syscall.EPERM, privilege: true,
			want: []string{"set MAC of eth0", "operation not permitted", "lacks CAP_NET_ADMIN", "setcap cap_net_admin+ep"}},
		{name: "sysctl EACCES", err: &fs.PathError{Op: "open", Path: "/proc/sys/net/ipv4/ip_forward", Err: syscall.EACCES}, privilege: true,
			want: []string{"permission denied", "lacks CAP_NET_ADMIN"}},
		{name: "busy", err: syscall.EBUSY, want: []string{"device or resource busy", "while the interface is up"}},
		{name: "other", err: syscall.EEXIST, want: []string{"set MAC of eth0: file exists"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := wrapErr("set MAC of eth0", tc.err)
			if got := errors.Is(err, ErrPrivilege); got != tc.privilege {
				t.Fatalf("errors.Is(ErrPrivilege) = %v", got)
			}
			if !errors.Is(err, tc.err) {
				t.Fatalf("%v does not unwrap to %v", err, tc.err)
			}
			if tc.privilege && !errors.Is(err, os.ErrPermission) {
				t.Fatalf("%v is not os.ErrPermission", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q lacks %q", err, w)
				}
			}
		})
	}
	if wrapErr("x", nil) != nil {
		t.Fatal("nil error wrapped")
	}
}
