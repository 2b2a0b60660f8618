package ipmi

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// ipmitool runs ipmitool -I lanplus against srv with cipher suite cs as Administrator.
func ipmitool(t *testing.T, srv *server, cs int, args ...string) (string, error) {
	t.Helper()
	return ipmitoolAs(t, srv, cs, "Administrator", "Password", args...)
}

func ipmitoolAs(t *testing.T, srv *server, cs int, user, pass string, args ...string) (string, error) {
	t.Helper()
	bin := protocoltest.NeedTool(t, "ipmitool")
	a := []string{"-I", "lanplus", "-H", srv.Addr.Addr().String(), "-p", strconv.Itoa(int(srv.Addr.Port())),
		"-U", user, "-P", pass, "-R", "2", "-N", "1"}
	if cs >= 0 {
		a = append(a, "-C", strconv.Itoa(cs))
	}
	return protocoltest.Run(t, 60*time.Second, bin, append(a, args...)...)
}

func TestIpmitoolSmoke(t *testing.T) {
	srv, _ := startBMC(t, nil)
	out, err := ipmitool(t, srv, 3, "chassis", "status")
	if err != nil || !strings.Contains(out, "System Power         : on") {
		t.Fatalf("chassis status: %v\n%s", err, out)
	}
}
