package bpf

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols/protocoltest"
	"github.com/vishvananda/netns"
)

// testNet is a veth pair between two network namespaces that the test creates and
// deletes: "client" (198.18.0.1/24 plus extra source addresses) and "server"
// (198.18.0.2/24, where the limiter is attached and a responder listens). Spoofed
// sources in 10.0.0.0/8 are routed back to the client namespace, which discards the
// replies, so no traffic leaves the two namespaces.
type testNet struct {
	client, server     string // namespace names
	clientIf, serverIf string
	serverMAC          net.HardwareAddr
	clientMAC          net.HardwareAddr
}

const (
	serverIP = "198.18.0.2"
	clientIP = "198.18.0.1"
)

func newTestNet(t testing.TB, extraSources int) *testNet {
	t.Helper()
	protocoltest.NeedRoot(t)
	protocoltest.NeedTool(t, "ip")
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	id := hex.EncodeToString(b)
	n := &testNet{
		client: "icsx-" + id + "-c", server: "icsx-" + id + "-s",
		clientIf: "icsx" + id + "c", serverIf: "icsx" + id + "s",
	}
	t.Cleanup(func() {
		for _, ns := range []string{n.client, n.server} {
			if out, err := runIP("netns", "del", ns); err != nil && !strings.Contains(out, "No such file") {
				t.Errorf("ip netns del %s: %v: %s", ns, err, out)
			}
		}
	})
	cmds := [][]string{
		{"netns", "add", n.client},
		{"netns", "add", n.server},
		{"link", "add", n.clientIf, "netns", n.client, "type", "veth", "peer", "name", n.serverIf, "netns", n.server},
		{"-n", n.client, "addr", "add", clientIP + "/24", "dev", n.clientIf},
		{"-n", n.server, "addr", "add", serverIP + "/24", "dev", n.serverIf},
		{"-n", n.client, "link", "set", "lo", "up"},
		{"-n", n.server, "link", "set", "lo", "up"},
		{"-n", n.client, "link", "set", n.clientIf, "up"},
		{"-n", n.server, "link", "set", n.serverIf, "up"},
		{"-n", n.server, "route", "add", "10.0.0.0/8", "via", clientIP},
	}
	for i := 0; i < extraSources; i++ {
		cmds = append(cmds, []string{"-n", n.client, "addr", "add", sourceIP(i) + "/32", "dev", n.clientIf})
	}
	for _, c := range cmds {
		if out, err := runIP(c...); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(c, " "), err, out)
		}
	}
	n.in(t, n.server, func() error {
		ifi, err := net.InterfaceByName(n.serverIf)
		if err == nil {
			n.serverMAC = ifi.HardwareAddr
		}
		return err
	})
	n.in(t, n.client, func() error {
		ifi, err := net.InterfaceByName(n.clientIf)
		if err == nil {
			n.clientMAC = ifi.HardwareAddr
		}
		return err
	})
	return n
}

// sourceIP is the i-th extra client address: 198.18.0.10 and up.
func sourceIP(i int) string { return fmt.Sprintf("198.18.0.%d", 10+i) }

func runIP(args ...string) (string, error) {
	out, err := execCommand("ip", args...)
	return out, err
}

// in runs fn with the calling goroutine's OS thread in namespace ns. Sockets and
// links created inside stay in ns.
func (n *testNet) in(t testing.TB, ns string, fn func() error) {
	t.Helper()
	if err := inNetns(ns, fn); err != nil {
		t.Fatalf("in netns %s: %v", ns, err)
	}
}

func inNetns(ns string, fn func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return err
	}
	defer orig.Close()
	target, err := netns.GetFromName(ns)
	if err != nil {
		return err
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		return err
	}
	ferr := fn()
	if err := netns.Set(orig); err != nil {
		// The thread is unusable; keep it locked so the runtime discards it.
		runtime.LockOSThread()
		fmt.Fprintf(os.Stderr, "cannot return to the original netns: %v\n", err)
	}
	return ferr
}

func execCommand(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out), err
}
