package snmp

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// serve runs the SNMP service of profile (an embedded name or a directory) on loopback.
func serve(t testing.TB, profile, addr string) (*protocoltest.Server, *service) {
	t.Helper()
	p := protocoltest.Profile(t, profile)
	svc := protocoltest.ConfigureWith(t, protocol{}, p, testOptions()).(*service)
	h := protocoltest.Host(p, netip.MustParseAddr("192.0.2.10"), 42)
	return protocoltest.ServeUDP(t, "snmp", svc, h, addr), svc
}

func target(s *protocoltest.Server) string { return s.Addr.String() }

// netsnmp runs a net-snmp tool with numeric output and no MIB loading.
func netsnmp(t *testing.T, tool string, args ...string) (string, error) {
	t.Helper()
	path := protocoltest.NeedTool(t, tool)
	all := append([]string{"-On", "-m", "", "-r", "1", "-t", "2"}, args...)
	return protocoltest.Run(t, 30*time.Second, path, all...)
}

// oidsOf returns the OIDs of snmpwalk-style output lines ".1.3.6... = TYPE: value".
func oidsOf(out string) []string {
	var oids []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if oid, val, ok := strings.Cut(l, " = "); ok && strings.HasPrefix(oid, ".") && !strings.HasPrefix(val, "No more variables") {
			oids = append(oids, oid)
		}
	}
	return oids
}

func mustOID(t testing.TB, s string) []uint32 {
	t.Helper()
	o, err := parseOIDString(s)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

var _ = fmt.Sprintf
var _ protocols.Host
var _ = profiles.DefaultName

type unexpected struct{ v any }

func (u unexpected) Error() string { return fmt.Sprintf("unexpected value %v", u.v) }

func errUnexpected(v any) error { return unexpected{v} }

func hasField(fs []protocols.Field, key string, want any) bool {
	for _, f := range fs {
		if f.Key == key {
			return fmt.Sprint(f.Value) == fmt.Sprint(want)
		}
	}
	return false
}

func asError(err error, target **profiles.Error) bool { return errors.As(err, target) }

func timeNow() time.Time { return time.Now() }
