package sensor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

func TestParseByteSize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want ByteSize
		err  bool
	}{
		{"auto", 0, false},
		{"", 0, false},
		{"1048576", 1 << 20, false},
		{"512MiB", 512 << 20, false},
		{"2GiB", 2 << 30, false},
		{"1.5 GiB", 3 << 29, false},
		{"64KB", 64000, false},
		{"3G", 3 << 30, false},
		{"10b", 10, false},
		{"-1GiB", 0, true},
		{"lots", 0, true},
		{"1e30GiB", 0, true},
		{"NaN", 0, true},
	} {
		got, err := ParseByteSize(c.in)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d, error %v", c.in, got, err, c.want, c.err)
		}
	}
}

func TestHostMemoryFromTOML(t *testing.T) {
	for _, c := range []struct {
		doc  string
		want ByteSize
		err  bool
	}{
		{`host_memory = "1GiB"`, 1 << 30, false},
		{`host_memory = 4096`, 4096, false},
		{`host_memory = "auto"`, 0, false},
		{`host_memory = -5`, 0, true},
		{`host_memory = true`, 0, true},
	} {
		var l LimitsConfig
		_, err := toml.Decode(c.doc, &l)
		if (err != nil) != c.err || l.HostMemory != c.want {
			t.Errorf("%s: got %d, %v; want %d, error %v", c.doc, l.HostMemory, err, c.want, c.err)
		}
	}
}

// fakeMachine writes a /proc/self/cgroup, a cgroup tree and a meminfo under a temp dir.
func fakeMachine(t *testing.T, cgroup string, maxes map[string]string) (string, string, string) {
	t.Helper()
	dir := t.TempDir()
	cg := filepath.Join(dir, "cgroup")
	os.WriteFile(cg, []byte(cgroup), 0o644)
	root := filepath.Join(dir, "sys")
	for d, v := range maxes {
		os.MkdirAll(filepath.Join(root, d), 0o755)
		file := "memory.max"
		if strings.HasPrefix(d, "memory/") {
			file = "memory.limit_in_bytes"
		}
		if v != "" {
			os.WriteFile(filepath.Join(root, d, file), []byte(v+"\n"), 0o644)
		}
	}
	mi := filepath.Join(dir, "meminfo")
	os.WriteFile(mi, []byte("MemTotal:       16384000 kB\nMemFree:  1 kB\n"), 0o644)
	return cg, root, mi
}

func TestAvailableMemory(t *testing.T) {
	total := uint64(16384000) << 10
	for _, c := range []struct {
		name    string
		cgroup  string
		maxes   map[string]string
		want    uint64
		wantSrc string
	}{
		{"no cgroup limit", "0::/system.slice/icsnare.service\n", map[string]string{"system.slice/icsnare.service": "max"}, total, "MemTotal"},
		{"own limit", "0::/system.slice/icsnare.service\n", map[string]string{"system.slice/icsnare.service": "2147483648"}, 2 << 30, "cgroup /system.slice/icsnare.service"},
		{"parent smaller", "0::/a/b\n", map[string]string{"a/b": "4294967296", "a": "1073741824"}, 1 << 30, "cgroup /a"},
		{"limit above the machine", "0::/a\n", map[string]string{"a": "99999999999999"}, total, "MemTotal"},
		{"cgroup v1 without limit", "4:memory:/x\n", map[string]string{"memory/x": "9223372036854771712"}, total, "MemTotal"},
		{"cgroup v1 limit", "4:cpu,memory:/x\n0::/\n", map[string]string{"memory/x": "1073741824"}, 1 << 30, "cgroup /x"},
		{"hybrid unified", "0::/y\n", map[string]string{"unified/y": "2147483648", "unified": ""}, 2 << 30, "cgroup /y"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cg, root, mi := fakeMachine(t, c.cgroup, c.maxes)
			got, err := availableMemory(cg, root, mi)
			if err != nil {
				t.Fatal(err)
			}
			if got.Bytes != c.want || got.Source != c.wantSrc {
				t.Errorf("got %d from %q, want %d from %q", got.Bytes, got.Source, c.want, c.wantSrc)
			}
		})
	}
	if _, err := availableMemory("/nonexistent", "/nonexistent", "/nonexistent"); err == nil {
		t.Error("no meminfo: want an error")
	}
}

func TestHostBudget(t *testing.T) {
	machine := MemoryLimit{Bytes: 24 << 30, Source: "MemTotal"}
	for _, c := range []struct {
		name   string
		l      LimitsConfig
		avail  MemoryLimit
		want   int
		reason string
	}{
		{"explicit max_hosts wins", LimitsConfig{MaxHosts: 1000, HostMemory: 1 << 30}, machine, 1000, "limits.max_hosts"},
		{"host_memory", LimitsConfig{HostMemory: 1 << 30}, machine, (1 << 30) / HostCost, "limits.host_memory"},
		{"a quarter of the machine", LimitsConfig{}, machine, (6 << 30) / HostCost, "a quarter of 24.0 GiB (MemTotal)"},
		{"a quarter of the cgroup", LimitsConfig{}, MemoryLimit{Bytes: 512 << 20, Source: "cgroup /x"}, (128 << 20) / HostCost, "cgroup /x"},
		{"tiny memory still one host", LimitsConfig{HostMemory: 1}, machine, 1, "limits.host_memory"},
		{"ceiling", LimitsConfig{HostMemory: 1 << 50}, machine, maxHostsCeiling, "limits.host_memory"},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := c.l.hostBudget(c.avail)
			if b.MaxHosts != c.want || !strings.Contains(b.Reason, c.reason) {
				t.Errorf("got %d (%s), want %d (%s)", b.MaxHosts, b.Reason, c.want, c.reason)
			}
		})
	}
}
