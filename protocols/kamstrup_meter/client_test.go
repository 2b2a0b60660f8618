package kamstrupmeter

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// TestPythonClient: an independent KMP client (testdata/kmp_client.py, python3's
// binascii CRC) reads the meter's energy, voltages, currents and powers after sending a
// frame with a broken CRC, and decodes them into plausible physical values with the
// sign/exponent byte. No KMP dissector ships with tshark, and nmap has no Kamstrup probe.
func TestPythonClient(t *testing.T) {
	py := protocoltest.NeedTool(t, "/usr/bin/python3")
	m := startMeter(t, true)
	out, err := protocoltest.Run(t, 60*time.Second, py, "testdata/kmp_client.py", m.Addr.Addr().String(), strconv.Itoa(int(m.Addr.Port())),
		"13", "1", "1054", "1055", "1056", "1076", "1080", "1001")
	if err != nil {
		t.Fatal(err)
	}
	vals := map[string]float64{}
	units := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
		f := strings.Fields(l)
		if len(f) != 3 {
			t.Fatalf("line %q", l)
		}
		v, err := strconv.ParseFloat(f[2], 64)
		if err != nil {
			t.Fatal(err)
		}
		vals[f[0]], units[f[0]] = v, f[1]
	}
	if !strings.HasPrefix(out, "reply address 0x3f command 0x10") || len(vals) != 8 {
		t.Fatalf("output %q", out)
	}
	for _, c := range []struct {
		id, unit string
		lo, hi   float64
	}{
		{"13", "kWh", 7183.2712, 8000}, {"1", "kWh", 7183.2, 8000},
		{"1054", "V", 215, 240}, {"1055", "V", 215, 240}, {"1056", "V", 215, 240},
		{"1076", "A", 0.5, 30}, {"1080", "kW", 0.3, 2}, {"1001", "number", 15085488, 15085488},
	} {
		if units[c.id] != c.unit || vals[c.id] < c.lo || vals[c.id] > c.hi {
			t.Errorf("register %s = %v %s, want %s in [%v, %v]", c.id, vals[c.id], units[c.id], c.unit, c.lo, c.hi)
		}
	}
	if len(m.Events.OfType(evBadFrame)) != 1 {
		t.Error("the broken frame was not reported")
	}
}
