package sensor

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"

	_ "github.com/icsnare/icsnare/protocols/snmp"
)

// tankMIB writes a copy of the SNMP tests' ICSNARE-TANK-MIB whose objects live under
// enterprises.99999.<arc> and returns its directory.
func tankMIB(t *testing.T, arc int) string {
	t.Helper()
	b, err := os.ReadFile("../protocols/snmp/testdata/mibs/vendor/sub/ICSNARE-TANK-MIB.mib")
	if err != nil {
		t.Fatal(err)
	}
	const home = "::= { enterprises 99999 1 }"
	if !strings.Contains(string(b), home) {
		t.Fatal("the test MIB moved; update tankMIB")
	}
	src := strings.Replace(string(b), home, fmt.Sprintf("::= { enterprises 99999 %d }", arc), 1)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ICSNARE-TANK-MIB.mib"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// snmpSensorConfig writes a config file serving the SNMP test profile that needs
// ICSNARE-TANK-MIB on one address of 127.30/16, with the given [protocols.snmp] table.
func snmpSensorConfig(t *testing.T, addr netip.Addr, table string) Config {
	t.Helper()
	profile, err := filepath.Abs("../protocols/snmp/testdata/usermib")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "icsnare.toml")
	body := fmt.Sprintf(`[[hosts]]
addresses = [%q]
profile = %q

[bind]
address = %q
port_offset = %d

[privileges]
user = ""

[metrics]
listen = ""

%s
`, addr.String(), profile, addr.String(), 20000+rand.IntN(30000), table)
	if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(file)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// snmpGet asks addr for one OID with community "plant" and returns the varbind.
func snmpGet(t *testing.T, addr string, oid string) gosnmp.SnmpPDU {
	t.Helper()
	ap := netip.MustParseAddrPort(addr)
	c := &gosnmp.GoSNMP{Target: ap.Addr().String(), Port: ap.Port(), Community: "plant", Version: gosnmp.Version2c,
		Timeout: 2 * time.Second, Retries: 2}
	if err := c.Connect(); err != nil {
		t.Fatal(err)
	}
	defer c.Conn.Close()
	r, err := c.Get([]string{oid})
	if err != nil {
		t.Fatalf("snmp get %s from %s: %v", oid, addr, err)
	}
	return r.Variables[0]
}

// TestTwoSensorsOwnMIBPaths runs two sensors in one process whose [protocols.snmp]
// mibpath tables name two different ICSNARE-TANK-MIB modules: each agent serves the
// objects of its own module, and a third sensor without a mibpath refuses the profile.
func TestTwoSensorsOwnMIBPaths(t *testing.T) {
	base := netip.AddrFrom4([4]byte{127, 30, byte(rand.IntN(256)), byte(2 + rand.IntN(200))})
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	type agent struct {
		arc  int
		addr netip.Addr
		s    *Sensor
		port int
	}
	agents := []*agent{{arc: 1, addr: base}, {arc: 2, addr: base.Next()}}
	// Configure both before either serves, so a module table shared by the two would show.
	for _, a := range agents {
		cfg := snmpSensorConfig(t, a.addr, fmt.Sprintf("[protocols.snmp]\nmibpath = [%q]\n", tankMIB(t, a.arc)))
		s, err := New(cfg, log)
		if err != nil {
			t.Fatalf("sensor %d: %v", a.arc, err)
		}
		a.s, a.port = s, 161+cfg.Bind.PortOffset
	}
	if _, err := New(snmpSensorConfig(t, base.Next().Next(), ""), log); err == nil ||
		!strings.Contains(err.Error(), "ICSNARE-TANK-MIB not found") {
		t.Fatalf("sensor without a mibpath: err = %v, want the missing module named", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, a := range agents {
		if err := a.s.Bind(ctx); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { a.s.Run(ctx, nil); close(done) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	for _, a := range agents {
		target := net.JoinHostPort(a.addr.String(), fmt.Sprint(a.port))
		for _, arc := range []int{1, 2} {
			vb := snmpGet(t, target, fmt.Sprintf(".1.3.6.1.4.1.99999.%d.1.0", arc))
			served := vb.Type == gosnmp.Gauge32
			if served != (arc == a.arc) {
				t.Errorf("sensor with arc %d: tankLevel under arc %d answered %v (%v)", a.arc, arc, vb.Type, vb.Value)
			}
		}
	}
}
