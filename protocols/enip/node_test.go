package enip

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
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
		_, err = os.Stat(filepath.Join(dir, "st-ethernet-ip", "package.json"))
	}
	if err != nil {
		if protocoltest.InCI() {
			t.Fatalf("st-ethernet-ip is not installed (run npm ci --prefix test/node): %v", err)
		}
		t.Skipf("st-ethernet-ip not installed: %v", err)
	}
	return dir
}

// TestStEthernetIP drives the npm st-ethernet-ip client: register session, Forward Open,
// Identity object, tag list, Read Tag and Write Tag, connected and unconnected.
func TestStEthernetIP(t *testing.T) {
	node := protocoltest.NeedTool(t, "node")
	mods := nodeModules(t)
	_, h, tcp, _ := serve(t, "logix", 31)
	out, err := protocoltest.Run(t, 60*time.Second, node, filepath.Join("testdata", "stenip.js"), mods, h.Addr.String())
	if err != nil {
		t.Fatalf("st-ethernet-ip: %v", err)
	}
	line := out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:]
	type result struct {
		Name, Version        string
		Serial               uint32
		Run, Faulted         bool
		Tags                 []string
		Before, After, Level float64
	}
	var res struct {
		Error                  string
		Connected, Unconnected result
	}
	if err := json.Unmarshal([]byte(line), &res); err != nil || res.Error != "" {
		t.Fatalf("st-ethernet-ip output %q: %v", out, err)
	}
	serial, _ := h.Databus.GetInt("PlcSerial")
	for i, r := range []result{res.Connected, res.Unconnected} {
		if r.Name != "1769-L33ER/A LOGIX5333ER" || r.Version != "30.11" || r.Serial != uint32(serial) || !r.Run || r.Faulted {
			t.Errorf("session %d: identity %+v", i, r)
		}
		if !slices.Equal(r.Tags, []string{"Pump_Run", "Speed", "Counts", "Level", "Station", "Mode"}) {
			t.Errorf("session %d: tag list %v", i, r.Tags)
		}
		if r.Level != 3.5 {
			t.Errorf("session %d: Level %v", i, r.Level)
		}
	}
	if res.Connected.Before != 1450 || res.Connected.After != 1234 || res.Unconnected.Before != 1234 || res.Unconnected.After != 4321 {
		t.Errorf("writes: connected %+v, unconnected %+v", res.Connected, res.Unconnected)
	}
	if len(tcp.Events.OfType(evWrite)) != 2 {
		t.Errorf("%d write events", len(tcp.Events.OfType(evWrite)))
	}
}
