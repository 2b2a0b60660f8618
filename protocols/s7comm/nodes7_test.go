package s7comm

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// nodeModules finds test/node/node_modules (npm ci --prefix test/node) from this package.
func nodeModules(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "test", "node", "node_modules"))
	if err == nil {
		if _, err = os.Stat(filepath.Join(dir, "nodes7", "nodeS7.js")); err == nil {
			return dir
		}
	}
	if protocoltest.InCI() {
		t.Fatalf("nodes7 is not installed (run npm ci --prefix test/node): %v", err)
	}
	t.Skipf("nodes7 not installed: %v", err)
	return ""
}

// TestNodeS7 writes an INT, a REAL and a bit into DB10 with the npm nodes7 client and reads
// them back, with a DB1 word that is Modbus holding register 2.
func TestNodeS7(t *testing.T) {
	node := protocoltest.NeedTool(t, "node")
	mods := nodeModules(t)
	p := protocoltest.Profile(t, protocoltest.Station)
	svc := protocoltest.Configure(t, protocol{}, p).(*service)
	h := protocoltest.Host(p, netip.MustParseAddr("192.0.2.20"), 9)
	srv := protocoltest.ServeTCP(t, Name, svc, h, "127.0.0.1:0")

	out, err := protocoltest.Run(t, 30*time.Second, node, filepath.Join("testdata", "nodes7.js"), mods,
		srv.Addr.Addr().String(), strconv.Itoa(int(srv.Addr.Port())))
	if err != nil {
		t.Fatalf("nodes7: %v", err)
	}
	line := out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:]
	var res struct {
		Bad    bool
		Values map[string]any
	}
	if err := json.Unmarshal([]byte(line), &res); err != nil {
		t.Fatalf("nodes7 output %q: %v", out, err)
	}
	regs, _ := h.Databus.Get("memoryModbusHoldingRegisters")
	if res.Bad || res.Values["DB10,INT4"] != 1234.0 || res.Values["DB10,REAL8"] != 3.5 || res.Values["DB10,X0.3"] != true ||
		res.Values["DB1,WORD4"] != float64(regs.([]any)[2].(int64)) || res.Values["DB1,WORD4"] == 0.0 {
		t.Fatalf("nodes7 read %+v", res)
	}
	if w := srv.Events.OfType("s7comm.write"); len(w) == 0 {
		t.Fatal("no write event")
	}
}
