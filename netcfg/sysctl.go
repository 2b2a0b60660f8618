package netcfg

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// sysctlRoot is where sysctls live; /proc/sys/net shows the namespace of the calling thread.
const sysctlRoot = "/proc/sys"

// sysctlPath turns a sysctl(8) key into its path under /proc/sys. Only network sysctls
// (net.*) are accepted.
func sysctlPath(key string) (string, error) {
	sep := "."
	if strings.Contains(key, "/") {
		sep = "/"
	}
	parts := strings.Split(strings.Trim(key, sep), sep)
	if len(parts) < 2 || parts[0] != "net" {
		return "", fmt.Errorf("netcfg: sysctl %q: only net.* keys are supported", key)
	}
	for _, p := range parts {
		if p == "" || p == "." || p == ".." || len(p) > 64 {
			return "", fmt.Errorf("netcfg: sysctl %q: bad key", key)
		}
	}
	return filepath.Join(append([]string{sysctlRoot}, parts...)...), nil
}

func checkSysctlValue(v string) error {
	if v == "" || len(v) > 256 || strings.ContainsAny(v, "\n\x00") {
		return errors.New("value must be one line of 1 to 256 bytes")
	}
	return nil
}

// normSysctl compares values the way the kernel prints them (tabs between fields).
func normSysctl(v string) string { return strings.Join(strings.Fields(v), " ") }

func readSysctl(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(b), "\n"), nil
}

func writeSysctl(path, value string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
