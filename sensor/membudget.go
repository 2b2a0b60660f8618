package sensor

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
)

// HostCost is the memory one materialised host may cost, as resident memory, when a scanner
// has touched every protocol of the default profile (Modbus, S7, SNMP and HTTP): about
// 4 KiB of live heap for the S7-300 persona, the client's SNMP flow included
// (TestHostCostWithinEstimate measures it; a host keeps only the databus values it was
// asked for, in compact form, and live process values are drawn from its seed at each
// read, see profiles.Databus), times the heap growth the Go collector allows (GOGC=100),
// with a margin. max_hosts derives from it.
const HostCost = 10 << 10

// ByteSize is a size in bytes read from TOML as an integer or a string with a unit
// ("512MiB", "2GiB", "64KB"); "auto" and 0 mean "derive it".
type ByteSize int64

// UnmarshalTOML implements toml.Unmarshaler.
func (b *ByteSize) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case int64:
		if v < 0 {
			return fmt.Errorf("negative size %d", v)
		}
		*b = ByteSize(v)
		return nil
	case string:
		n, err := ParseByteSize(v)
		if err != nil {
			return err
		}
		*b = n
		return nil
	}
	return fmt.Errorf("size %v: want bytes or a string such as \"1GiB\"", v)
}

// MarshalText implements encoding.TextMarshaler.
func (b ByteSize) MarshalText() ([]byte, error) {
	if b == 0 {
		return []byte("auto"), nil
	}
	return []byte(strconv.FormatInt(int64(b), 10)), nil
}

// String formats b with a binary unit.
func (b ByteSize) String() string {
	switch {
	case b == 0:
		return "auto"
	case b >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%d B", int64(b))
}

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
	{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"t", 1 << 40}, {"b", 1},
}

// ParseByteSize reads "auto", a number of bytes, or a number with a unit (KiB, MiB, GiB,
// TiB, KB, MB, GB, TB; K, M, G, T are binary).
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	if t == "auto" || t == "" {
		return 0, nil
	}
	mult := int64(1)
	for _, u := range sizeUnits {
		if num, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = strings.TrimSpace(num), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) || f*float64(mult) > math.MaxInt64/2 {
		return 0, fmt.Errorf("size %q: want bytes or a number with a unit such as \"1GiB\"", s)
	}
	return ByteSize(f * float64(mult)), nil
}

// MemoryLimit is the memory this process may use and where that figure comes from.
type MemoryLimit struct {
	Bytes  uint64
	Source string // "cgroup /system.slice/icsnare.service" or "MemTotal"
}

// AvailableMemory returns the smallest cgroup memory limit (v2 memory.max, v1
// memory.limit_in_bytes) on the path from this process's cgroup to the root, or the
// machine's MemTotal when no cgroup sets a smaller one.
func AvailableMemory() (MemoryLimit, error) {
	return availableMemory("/proc/self/cgroup", "/sys/fs/cgroup", "/proc/meminfo")
}

func availableMemory(cgroupFile, cgroupRoot, meminfo string) (MemoryLimit, error) {
	total, err := memTotal(meminfo)
	if err != nil {
		return MemoryLimit{}, err
	}
	lim := MemoryLimit{Bytes: total, Source: "MemTotal"}
	b, err := os.ReadFile(cgroupFile)
	if err != nil {
		return lim, nil
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		// cgroup v2: "0::/path" and memory.max under the unified root; v1: "N:memory:/path"
		// (or "N:…,memory,…:/path") and memory.limit_in_bytes under the memory hierarchy.
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		var base, file string
		switch {
		case parts[0] == "0" && parts[1] == "":
			base, file = cgroupRoot, "memory.max"
			if _, err := os.Stat(filepath.Join(cgroupRoot, "unified")); err == nil {
				base = filepath.Join(cgroupRoot, "unified") // hybrid layout
			}
		case slices.Contains(strings.Split(parts[1], ","), "memory"):
			base, file = filepath.Join(cgroupRoot, "memory"), "memory.limit_in_bytes"
		default:
			continue
		}
		for dir := filepath.Clean("/" + parts[2]); ; dir = filepath.Dir(dir) {
			raw, err := os.ReadFile(filepath.Join(base, dir, file))
			if err == nil {
				v := strings.TrimSpace(string(raw))
				if n, err := strconv.ParseUint(v, 10, 64); err == nil && n < lim.Bytes {
					lim = MemoryLimit{Bytes: n, Source: "cgroup " + dir}
				}
			}
			if dir == "/" {
				break
			}
		}
	}
	return lim, nil
}

func memTotal(meminfo string) (uint64, error) {
	f, err := os.Open(meminfo)
	if err != nil {
		return 0, fmt.Errorf("memory size: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			fields := strings.Fields(rest)
			if len(fields) >= 1 {
				if kib, err := strconv.ParseUint(fields[0], 10, 64); err == nil {
					return kib << 10, nil
				}
			}
		}
	}
	return 0, fmt.Errorf("memory size: no MemTotal in %s", meminfo)
}

// HostBudget is how many hosts the sensor keeps in memory and why.
type HostBudget struct {
	Available MemoryLimit // what the machine or the cgroup allows
	MaxHosts  int
	Memory    ByteSize // the memory they may take (0 when max_hosts was set directly)
	Reason    string
}

// hostMemoryShare is the part of the available memory that hosts take by default; the
// rest is for connections, flows, event queues and the Go runtime.
const hostMemoryShare = 4

// hostBudget derives max_hosts: limits.max_hosts when set, else limits.host_memory (by
// default a quarter of avail) divided by HostCost.
func (l LimitsConfig) hostBudget(avail MemoryLimit) HostBudget {
	if l.MaxHosts > 0 {
		return HostBudget{Available: avail, MaxHosts: l.MaxHosts, Reason: "limits.max_hosts"}
	}
	mem, why := l.HostMemory, "limits.host_memory"
	if mem == 0 {
		mem = ByteSize(avail.Bytes / hostMemoryShare)
		why = fmt.Sprintf("a quarter of %s (%s)", ByteSize(avail.Bytes), avail.Source)
	}
	n := int64(mem) / HostCost
	if n < 1 {
		n = 1
	}
	if n > maxHostsCeiling {
		n = maxHostsCeiling
	}
	return HostBudget{Available: avail, MaxHosts: int(n), Memory: mem,
		Reason: fmt.Sprintf("%s of host memory from %s at %d KiB per host", mem, why, HostCost>>10)}
}

// maxHostsCeiling bounds the derived max_hosts (the registry's shards are sized for it).
const maxHostsCeiling = 1 << 24

// applyGoMemoryLimit sets the Go collector's soft limit to 90 % of a cgroup's memory.max,
// so that near the limit the collector works harder instead of the kernel killing the
// sensor, unless GOMEMLIMIT says otherwise. It returns the limit set (0: none).
func applyGoMemoryLimit(avail MemoryLimit) int64 {
	if !strings.HasPrefix(avail.Source, "cgroup") || os.Getenv("GOMEMLIMIT") != "" || avail.Bytes > math.MaxInt64/2 {
		return 0
	}
	lim := int64(avail.Bytes / 10 * 9)
	debug.SetMemoryLimit(lim)
	return lim
}
