package sensor

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/icsnare/icsnare/internal/netnstest"
	"github.com/icsnare/icsnare/profiles"

	"github.com/icsnare/icsnare/protocols/protocoltest"
	_ "github.com/icsnare/icsnare/protocols/s7comm"
	_ "github.com/icsnare/icsnare/protocols/snmp"
)

// TestPortFilterInNetns serves a mixed /24 (the default S7-300 and a variant without
// Modbus and SNMP) through a veth and checks each host's ports from the client side: a
// port the host's profile serves answers; one it lacks is refused before any handshake
// (ECONNREFUSED from the kernel's RST, not a connection that resets) and a UDP datagram to
// it gets ICMP port unreachable, as a closed port of a real device does; a dark address of the mix stays silent.
func TestPortFilterInNetns(t *testing.T) {
	sensorNS, clientNS := netnstest.NewPair(t,
		[]netip.Prefix{netip.MustParsePrefix("198.18.71.1/30")},
		[]netip.Prefix{netip.MustParsePrefix("198.18.71.2/30")})
	if err := clientNS.AddRoute(netip.MustParsePrefix("198.18.72.0/24"), netip.MustParseAddr("198.18.71.1")); err != nil {
		t.Fatal(err)
	}
	s7only := protocoltest.ExportDefault(t, "modbus/modbus.xml", func(s string) string {
		return strings.Replace(s, `<modbus enabled="True"`, `<modbus enabled="False"`, 1)
	})
	if err := disableSection(s7only, "snmp/snmp.xml", "snmp"); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Hosts = []HostRule{{Addresses: []string{"198.18.72.0/24"}, Profiles: map[string]float64{profiles.DefaultName: 1, s7only: 1}, Density: 0.6}}
	cfg.Netcfg.AnyIP = true
	cfg.Metrics.Listen = ""
	cfg.Privileges.User = ""
	s, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var teardown func()
	if err := sensorNS.Do(func() error {
		var err error
		if teardown, err = s.SetupNetwork(ctx); err != nil {
			return err
		}
		return s.Bind(ctx)
	}); err != nil {
		t.Fatal(err)
	}
	defer teardown()
	if s.portFilter == nil {
		t.Fatal("the port filter did not attach (root in a namespace on kernel 6.x should allow it)")
	}
	done := make(chan struct{})
	go func() { s.Run(ctx, nil); close(done) }()
	defer func() { cancel(); <-done }()

	// One host of each profile and one dark address, from the population's own draw.
	var full, partial, dark netip.Addr
	for a := netip.MustParseAddr("198.18.72.1"); a.As4()[3] < 255; a = a.Next() {
		d, ok := s.hosts.match(a)
		switch {
		case !ok && !dark.IsValid():
			dark = a
		case ok && d.profile.Name == profiles.DefaultName && !full.IsValid():
			full = a
		case ok && d.profile.Name != profiles.DefaultName && !partial.IsValid():
			partial = a
		}
	}
	if !full.IsValid() || !partial.IsValid() || !dark.IsValid() {
		t.Fatalf("population lacks a kind: full %v partial %v dark %v", full, partial, dark)
	}
	dial := func(addr netip.Addr, port string) error {
		dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
		defer dcancel()
		c, err := clientNS.Dial(dctx, "tcp", addr.String()+":"+port)
		if err == nil {
			c.Close()
		}
		return err
	}
	for _, c := range []struct {
		addr   netip.Addr
		port   string
		closed bool
	}{{full, "502", false}, {full, "102", false}, {partial, "102", false}, {partial, "502", true}} {
		err := dial(c.addr, c.port)
		switch {
		case c.closed && !errors.Is(err, syscall.ECONNREFUSED):
			t.Errorf("%v:%s (not served) gave %v, want connection refused before the handshake", c.addr, c.port, err)
		case !c.closed && err != nil:
			t.Errorf("%v:%s (served): %v", c.addr, c.port, err)
		default:
			t.Logf("%v:%s: %v", c.addr, c.port, err)
		}
	}
	// SNMP: the full host answers, the other's port is closed (ICMP port unreachable,
	// which a connected UDP socket reads as ECONNREFUSED).
	get := []byte("\x30\x26\x02\x01\x01\x04\x06public\xa0\x19\x02\x01\x01\x02\x01\x00\x02\x01\x00\x30\x0e\x30\x0c\x06\x08\x2b\x06\x01\x02\x01\x01\x05\x00\x05\x00")
	for _, c := range []struct {
		addr   netip.Addr
		closed bool
	}{{full, false}, {partial, true}} {
		uc, err := clientNS.Dial(ctx, "udp", c.addr.String()+":161")
		if err != nil {
			t.Fatal(err)
		}
		uc.SetDeadline(time.Now().Add(3 * time.Second))
		uc.Write(get)
		n, err := uc.Read(make([]byte, 512))
		uc.Close()
		switch {
		case c.closed && !errors.Is(err, syscall.ECONNREFUSED):
			t.Errorf("%v:161/udp (not served) gave %d bytes, %v; want port unreachable", c.addr, n, err)
		case !c.closed && (err != nil || n == 0):
			t.Errorf("%v:161/udp (served): %d bytes, %v", c.addr, n, err)
		}
	}
	// A dark address: no SYN-ACK (silence where the kernel's sockmap takes TCP sockets,
	// else a closed port's RST), no ICMP error for UDP.
	dctx, dcancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	_, err = clientNS.Dial(dctx, "tcp", dark.String()+":502")
	dcancel()
	switch {
	case s.portFilter.Silent[0] && !errors.Is(err, context.DeadlineExceeded):
		t.Errorf("dark %v:502 gave %v, want silence (a timeout)", dark, err)
	case !s.portFilter.Silent[0] && !errors.Is(err, syscall.ECONNREFUSED):
		t.Errorf("dark %v:502 gave %v, want a closed port (%v)", dark, err, s.portFilter.SinkErrs)
	}
	if !s.portFilter.Silent[1] {
		t.Fatalf("the UDP sink did not attach: %v", s.portFilter.SinkErrs)
	}
	if uc, err := clientNS.Dial(ctx, "udp", dark.String()+":161"); err == nil {
		uc.SetDeadline(time.Now().Add(1500 * time.Millisecond))
		uc.Write(get)
		n, err := uc.Read(make([]byte, 512))
		uc.Close()
		if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
			t.Errorf("dark %v:161/udp gave %d bytes, %v; want silence", dark, n, err)
		}
	}
	if got := counterValue(t, s, "icsnare_connections_rejected_total"); got != 0 {
		t.Errorf("the sensor rejected %v connections; the kernel should have refused them first", got)
	}
}

// disableSection sets enabled="False" on the root of the profile directory's file rel.
func disableSection(dir, rel, root string) error {
	file := filepath.Join(dir, filepath.FromSlash(rel))
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	return os.WriteFile(file, []byte(strings.Replace(string(b), "<"+root+` enabled="True"`, "<"+root+` enabled="False"`, 1)), 0o644)
}
