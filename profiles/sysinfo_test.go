package profiles

import (
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sysinfoNames are Conpot's conpot.emulators.misc.sysinfo functions, which read the real
// machine in Conpot; the IEC104 and snmp templates use them.
var sysinfoNames = []string{"CpuLoad", "TotalRam", "StorageSize", "StorageUsed", "BootTime", "CurrentDatetime",
	"LocalIP", "PacketsSent", "PacketsRecv", "BytesSent", "BytesRecv", "TcpCurrEstab"}

func sysinfoValue(t *testing.T, name string, env EngineEnv, now time.Time) any {
	t.Helper()
	ctor, ok := lookupFunction("conpot.emulators.misc.sysinfo." + name)
	if !ok {
		t.Fatalf("sysinfo.%s is not registered", name)
	}
	v, err := ctor(env, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d, ok := v.(Dynamic); ok {
		return d.Value(now)
	}
	return v
}

// memTotalKiB is the real machine's RAM, which TotalRam must not reveal.
func memTotalKiB(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return -1
	}
	m := regexp.MustCompile(`MemTotal:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		return -1
	}
	n, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return n
}

// TestSysinfoPerHost: every sysinfo function answers from the host's seed and address,
// in believable ranges, differently for two hosts, and never with the real machine's
// RAM or address.
func TestSysinfoPerHost(t *testing.T) {
	start := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
	now := start.Add(36 * time.Hour)
	a := EngineEnv{Seed: 1, Addr: netip.MustParseAddr("198.51.100.7"), Start: start}
	b := EngineEnv{Seed: 2, Addr: netip.MustParseAddr("198.51.100.8"), Start: start}
	ranges := map[string][2]int64{
		"CpuLoad": {0, 100}, "TotalRam": {1 << 16, 1 << 22}, "StorageSize": {1 << 18, 1 << 24}, "StorageUsed": {1 << 16, 1 << 22},
		"BootTime": {36 * 3600, 36 * 3600}, "TcpCurrEstab": {0, 64},
		"PacketsSent": {1, 1 << 31}, "PacketsRecv": {1, 1 << 31}, "BytesSent": {1, 1 << 40}, "BytesRecv": {1, 1 << 40},
	}
	differ := 0
	for _, name := range sysinfoNames {
		va, vb := sysinfoValue(t, name, a, now), sysinfoValue(t, name, b, now)
		if again := sysinfoValue(t, name, a, now); name != "CpuLoad" && FormatValue(again) != FormatValue(va) {
			t.Errorf("%s: %v then %v for the same host", name, va, again)
		}
		if FormatValue(va) != FormatValue(vb) {
			differ++
		}
		switch name {
		case "LocalIP":
			if va != "198.51.100.7" {
				t.Errorf("LocalIP %v, want the emulated host's address", va)
			}
		case "CurrentDatetime":
			if va != "2026-11-02,20:00:00.0" {
				t.Errorf("CurrentDatetime %q, want Conpot's %%Y-%%m-%%d,%%H:%%M:%%S.0 of now", va)
			}
		default:
			n, err := ToInt(va)
			r := ranges[name]
			if err != nil || n < r[0] || n > r[1] {
				t.Errorf("%s = %v, want %d..%d", name, va, r[0], r[1])
			}
		}
	}
	if differ < 8 {
		t.Errorf("only %d of %d sysinfo values differ between two hosts", differ, len(sysinfoNames))
	}
	if real := memTotalKiB(t); real > 0 {
		for seed := uint64(0); seed < 200; seed++ {
			if v := sysinfoValue(t, "TotalRam", EngineEnv{Seed: seed}, now); v == real {
				t.Fatalf("TotalRam shows the machine's %d KiB", real)
			}
		}
	}
	host, _ := os.Hostname()
	for _, name := range sysinfoNames {
		if s := FormatValue(sysinfoValue(t, name, a, now)); host != "" && strings.Contains(s, host) {
			t.Errorf("%s shows the host name: %q", name, s)
		}
	}
}

// TestConpotFunctionNames: a Conpot databus function this icsnare lacks is named as
// such, with file and line.
func TestConpotFunctionNames(t *testing.T) {
	dir := t.TempDir()
	tmpl := `<core><databus><key_value_mappings>
<key name="usage"><value type="function" param="[1]">conpot.emulators.kamstrup.usage_simulator.NotThere</value></key>
</key_value_mappings></databus></core>`
	if err := os.WriteFile(dir+"/template.xml", []byte(tmpl), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadDir(dir)
	if err == nil || !strings.HasPrefix(err.Error(), dir+"/template.xml:2: ") ||
		!strings.Contains(err.Error(), `Conpot's databus function "conpot.emulators.kamstrup.usage_simulator.NotThere" is not implemented by this icsnare`) {
		t.Fatalf("error %v", err)
	}
}
