package netcfg

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// helperEnv makes the test binary act as the unprivileged helper of TestUnprivileged.
const helperEnv = "ICSNARE_NETCFG_UNPRIV_DEVICE"

func TestMain(m *testing.M) {
	if dev := os.Getenv(helperEnv); dev != "" {
		os.Exit(unprivHelper(dev))
	}
	os.Exit(m.Run())
}

// unprivHelper runs as nobody inside the test namespace: reading the state (Diff) works,
// every change fails with a PrivilegeError.
func unprivHelper(dev string) int {
	ctx := context.Background()
	c, err := New(Options{})
	if err != nil {
		fmt.Println("new:", err)
		return 1
	}
	plans := []struct {
		name string
		plan Plan
	}{
		{"route", Plan{Routes: []Route{{Prefix: netip.MustParsePrefix("198.19.0.0/24")}}}},
		{"alias", Plan{Aliases: []Alias{{Addr: netip.MustParseAddr("198.18.1.10"), Device: dev}}}},
		{"mac", Plan{MACs: []MAC{{Device: dev, Addr: mustMAC("02:1c:06:aa:bb:04")}}}},
		{"sysctl", Plan{Sysctls: NonlocalBindSysctls()}},
	}
	for _, p := range plans {
		d, err := c.Diff(ctx, p.plan)
		if err != nil || len(d.Pending()) == 0 {
			fmt.Printf("%s diff: %v %v\n", p.name, d, err)
			return 1
		}
		_, err = c.Apply(ctx, p.plan)
		fmt.Printf("%s privilege=%v: %v\n", p.name, errors.Is(err, ErrPrivilege), err)
		if err == nil {
			fmt.Printf("%s teardown: %v\n", p.name, c.Teardown(ctx))
		}
	}
	return 0
}

// TestUnprivileged runs the test binary as nobody (uid 65534) inside a test namespace:
// without capabilities every change fails with the message a sensor started without
// privilege prints; with CAP_NET_ADMIN alone (what that message advises) all succeed.
func TestUnprivileged(t *testing.T) {
	a, _, _ := sensorNet(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// go test keeps its binary in a 0700 directory: copy it where nobody can run it.
	dir, err := os.MkdirTemp("", "icsn-netcfg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin := filepath.Join(dir, "netcfg.test")
	if err := copyFile(self, bin); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	denied := ": operation not permitted: the process lacks CAP_NET_ADMIN (run icsnare as root, or grant it with `setcap cap_net_admin+ep <binary>`)"
	tests := []struct {
		name string
		caps []uintptr
		want []string
	}{
		{name: "no capabilities", want: []string{
			"route privilege=true: netcfg: add local route 198.19.0.0/24 dev lo" + denied,
			"alias privilege=true: netcfg: add address 198.18.1.10/32 dev " + a.Link + denied,
			"mac privilege=true: netcfg: set MAC of " + a.Link + denied,
			"sysctl privilege=true: netcfg: write sysctl net.ipv4.ip_nonlocal_bind: open /proc/sys/net/ipv4/ip_nonlocal_bind: permission denied: the process lacks CAP_NET_ADMIN",
		}},
		{name: "CAP_NET_ADMIN", caps: []uintptr{unix.CAP_NET_ADMIN}, want: []string{
			"route privilege=false: <nil>\nroute teardown: <nil>",
			"alias privilege=false: <nil>\nalias teardown: <nil>",
			"mac privilege=false: <nil>\nmac teardown: <nil>",
			"sysctl privilege=false: <nil>\nsysctl teardown: <nil>",
		}},
	}
	before := snapshot(t, a)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin)
			cmd.Dir = "/"
			cmd.Env = append(os.Environ(), helperEnv+"="+a.Link)
			cmd.SysProcAttr = &syscall.SysProcAttr{
				Credential:  &syscall.Credential{Uid: 65534, Gid: 65534},
				AmbientCaps: tc.caps,
			}
			cmd.WaitDelay = 2 * time.Second
			var out strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &out
			// Started from a thread inside the namespace, the helper is born in it.
			if err := a.Do(cmd.Start); err != nil {
				t.Fatal(err)
			}
			err := cmd.Wait()
			t.Logf("helper as nobody:\n%s", out.String())
			if err != nil {
				t.Fatalf("helper: %v", err)
			}
			for _, want := range tc.want {
				if !strings.Contains(out.String(), want) {
					t.Errorf("helper output lacks %q", want)
				}
			}
			if after := snapshot(t, a); after != before {
				t.Fatalf("the helper left changes:\n%s", after)
			}
		})
	}
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
