package sensor

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/internal/netnstest"
	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols/protocoltest"

	_ "github.com/icsnare/icsnare/protocols/modbus"
)

// TestPrefixInNetnsServesTwoProfiles maps a /24 to two profiles (one per half), makes it
// local with AnyIP inside a namespace, and has pymodbus read device identification from
// three addresses of each half through a veth; an address outside the prefix is refused.
func TestPrefixInNetnsServesTwoProfiles(t *testing.T) {
	py := protocoltest.NeedTool(t, "/usr/bin/python3")
	sensorNS, clientNS := netnstest.NewPair(t,
		[]netip.Prefix{netip.MustParsePrefix("198.18.0.1/30")},
		[]netip.Prefix{netip.MustParsePrefix("198.18.0.2/30")})
	if err := clientNS.AddRoute(netip.MustParsePrefix("198.19.0.0/16"), netip.MustParseAddr("198.18.0.1")); err != nil {
		t.Fatal(err)
	}
	other := protocoltest.ExportDefault(t, "modbus/modbus.xml", func(s string) string {
		return strings.Replace(s, "<VendorName>Siemens</VendorName>", "<VendorName>Schneider Electric</VendorName>", 1)
	})
	cfg := DefaultConfig()
	cfg.Hosts = []HostRule{
		{Addresses: []string{"198.19.5.0/25"}, Profile: profiles.DefaultName},
		{Addresses: []string{"198.19.5.128/25"}, Profile: other},
	}
	cfg.Netcfg.AnyIP = true
	cfg.Metrics.Listen = ""
	cfg.Privileges.User = ""
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var teardown func()
	err = sensorNS.Do(func() error {
		var err error
		if teardown, err = s.SetupNetwork(ctx); err != nil {
			return err
		}
		return s.Bind(ctx)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer teardown()
	// A local route the sensor did not ask for: the kernel accepts these addresses, the
	// sensor must refuse them because no host rule covers them.
	if out, err := sensorNS.Command(ctx, "ip", "route", "add", "local", "198.19.4.0/24", "dev", "lo").CombinedOutput(); err != nil {
		t.Fatalf("ip route: %v: %s", err, out)
	}
	done := make(chan struct{})
	go func() { s.Run(ctx, nil); close(done) }()
	defer func() { cancel(); <-done }()

	for _, c := range []struct {
		addr, vendor string
	}{
		{"198.19.5.1", "Siemens"}, {"198.19.5.64", "Siemens"}, {"198.19.5.126", "Siemens"},
		{"198.19.5.129", "Schneider Electric"}, {"198.19.5.200", "Schneider Electric"}, {"198.19.5.254", "Schneider Electric"},
	} {
		cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
		out, err := clientNS.Command(cctx, py, "../protocols/modbus/testdata/pymodbus_client.py", c.addr, "502", "1").Output()
		ccancel()
		if err != nil {
			t.Fatalf("%s: pymodbus: %v\n%s", c.addr, err, out)
		}
		var res struct {
			Basic struct {
				Objects map[string]string
			} `json:"device_info_basic"`
			Holding []int `json:"holding_registers"`
		}
		if err := json.Unmarshal(out, &res); err != nil {
			t.Fatalf("%s: %v: %s", c.addr, err, out)
		}
		t.Logf("%s: device identification %v, holding registers %v", c.addr, res.Basic.Objects, res.Holding)
		if res.Basic.Objects["0"] != c.vendor || res.Basic.Objects["1"] != "6ES7 315-2EH14-0AB0" || len(res.Holding) != 8 {
			t.Fatalf("%s answered %+v, want vendor %s", c.addr, res, c.vendor)
		}
	}
	// Outside the rules: accepted by the kernel, closed by the sensor without an answer.
	dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
	defer dcancel()
	conn, err := clientNS.Dial(dctx, "tcp", "198.19.4.10:502")
	if err == nil { // the reset may come after connect returned
		conn.SetDeadline(time.Now().Add(3 * time.Second))
		conn.Write([]byte{0, 1, 0, 0, 0, 6, 1, 3, 0, 0, 0, 1})
		var n int
		if n, err = conn.Read(make([]byte, 64)); err == nil {
			t.Fatalf("address outside the prefix answered %d bytes", n)
		}
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("address outside the prefix kept the connection open")
	}
	t.Logf("outside address refused: %v", err)
	if got := counterValue(t, s, "icsnare_connections_rejected_total"); got != 1 {
		t.Fatalf("rejected connections = %v, want 1", got)
	}
}
