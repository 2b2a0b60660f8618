package netnstest

import (
	"bufio"
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

func TestPairTraffic(t *testing.T) {
	a, b := NewPair(t,
		[]netip.Prefix{netip.MustParsePrefix("198.18.7.1/24"), netip.MustParsePrefix("fd00:18:7::1/64")},
		[]netip.Prefix{netip.MustParsePrefix("198.18.7.2/24"), netip.MustParsePrefix("fd00:18:7::2/64")})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	for _, tc := range []struct{ network, listen, dial string }{
		{"tcp4", "0.0.0.0:7001", "198.18.7.1:7001"},
		{"tcp6", "[::]:7002", "[fd00:18:7::1]:7002"},
	} {
		t.Run(tc.network, func(t *testing.T) {
			ln, err := a.Listen(tc.network, tc.listen)
			if err != nil {
				t.Fatal(err)
			}
			go func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				line, _ := bufio.NewReader(c).ReadString('\n')
				c.Write([]byte("echo " + line))
			}()
			c, err := b.Dial(ctx, tc.network, tc.dial)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Write([]byte("hi\n")); err != nil {
				t.Fatal(err)
			}
			got, err := bufio.NewReader(c).ReadString('\n')
			if err != nil || got != "echo hi\n" {
				t.Fatalf("reply %q, %v", got, err)
			}
		})
	}

	t.Run("udp4", func(t *testing.T) {
		pc, err := a.ListenPacket("udp4", "198.18.7.1:7003")
		if err != nil {
			t.Fatal(err)
		}
		c, err := b.Dial(ctx, "udp4", "198.18.7.1:7003")
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("ping"))
		pc.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 64)
		n, from, err := pc.ReadFrom(buf)
		if err != nil || string(buf[:n]) != "ping" {
			t.Fatalf("read %q from %v: %v", buf[:n], from, err)
		}
		if got := from.(*net.UDPAddr).IP.String(); got != "198.18.7.2" {
			t.Fatalf("source %s, want 198.18.7.2", got)
		}
	})

	t.Run("command", func(t *testing.T) {
		out, err := b.Command(ctx, "ip", "-o", "addr", "show", "dev", b.Link).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if !strings.Contains(string(out), "198.18.7.2/24") {
			t.Fatalf("ip addr in %s:\n%s", b.Name, out)
		}
		// The host's namespace must not see the veth.
		if _, err := os.Stat(filepath.Join("/sys/class/net", a.Link)); err == nil {
			t.Fatalf("%s is visible outside its namespace", a.Link)
		}
	})
}

func TestAddRoutePrefix(t *testing.T) {
	// b routes a whole /24 to a via a's veth address; a serves one address of it on lo.
	a, b := NewPair(t,
		[]netip.Prefix{netip.MustParsePrefix("198.18.8.1/30")},
		[]netip.Prefix{netip.MustParsePrefix("198.18.8.2/30")})
	if err := a.AddAddr("lo", netip.MustParsePrefix("198.19.8.77/32")); err != nil {
		t.Fatal(err)
	}
	if err := b.AddRoute(netip.MustParsePrefix("198.19.8.0/24"), netip.MustParseAddr("198.18.8.1")); err != nil {
		t.Fatal(err)
	}
	ln, err := a.Listen("tcp4", "198.19.8.77:7004")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
		}
	}()
	c, err := b.Dial(context.Background(), "tcp4", "198.19.8.77:7004")
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

func TestDoRestoresNamespace(t *testing.T) {
	n := New(t)
	before, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer before.Close()
	var inside netns.NsHandle
	if err := n.Do(func() (err error) {
		inside, err = netns.Get()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer inside.Close()
	if !inside.Equal(n.Handle()) {
		t.Fatalf("Do ran in %v, want %v", inside, n.Handle())
	}
	if err := n.Do(func() error { panic("boom") }); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("panic not reported: %v", err)
	}
	after, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer after.Close()
	if !after.Equal(before) {
		t.Fatal("caller's namespace changed")
	}
}

func TestCleanupDeletesNamespaces(t *testing.T) {
	var names []string
	t.Run("inner", func(t *testing.T) {
		a, b := NewPair(t, nil, nil)
		names = append(names, a.Name, b.Name)
		if _, err := a.Listen("tcp4", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if _, err := os.Stat(filepath.Join(runDir, n)); err != nil {
				t.Fatalf("namespace %s missing: %v", n, err)
			}
		}
	})
	if len(names) != 2 {
		t.Fatal("inner test did not run")
	}
	for _, n := range names {
		if _, err := os.Stat(filepath.Join(runDir, n)); !os.IsNotExist(err) {
			t.Errorf("namespace %s still exists after cleanup: %v", n, err)
		}
	}
}
