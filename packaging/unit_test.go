// Package packaging holds the files that install and run icsnare (systemd unit, example
// configuration, container recipe); its tests check them with the tools that consume them.
package packaging

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols/protocoltest"
	"github.com/icsnare/icsnare/sensor"
)

// maxExposure is the systemd-analyze security score the unit must not exceed ("OK" ends at
// 4.9; the issue asks for 2.5 at most).
const maxExposure = 2.5

// installedUnit writes the unit into a temp dir with its binary path pointing at an
// executable there, as `systemd-analyze verify` checks that ExecStart exists.
func installedUnit(t *testing.T) string {
	t.Helper()
	unit, err := os.ReadFile("icsnare.service")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "icsnare")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(unit), "/usr/local/bin/icsnare", bin)
	path := filepath.Join(dir, "icsnare.service")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestUnitVerifies(t *testing.T) {
	protocoltest.NeedTool(t, "systemd-analyze")
	out, err := exec.Command("systemd-analyze", "verify", installedUnit(t)).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "" {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

var exposureRe = regexp.MustCompile(`Overall exposure level for icsnare\.service: ([0-9.]+) (\S+)`)

func TestUnitExposure(t *testing.T) {
	protocoltest.NeedTool(t, "systemd-analyze")
	out, err := exec.Command("systemd-analyze", "security", "--offline=true", "--no-pager", installedUnit(t)).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := exposureRe.FindSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	}
	score, _ := strconv.ParseFloat(string(m[1]), 64)
	t.Logf("systemd-analyze security: exposure %.1f %s", score, m[2])
	if score > maxExposure {
		t.Fatalf("exposure %.1f %s, want at most %.1f:\n%s", score, m[2], maxExposure, out)
	}
}

// TestUnitSyscallsCoverSeccompList checks that the unit's syscall filter admits every
// system call of the sensor's own seccomp allow-list.
func TestUnitSyscallsCoverSeccompList(t *testing.T) {
	protocoltest.NeedTool(t, "systemd-analyze")
	unit, _ := os.ReadFile("icsnare.service")
	var groups []string
	for line := range strings.SplitSeq(string(unit), "\n") {
		if v, ok := strings.CutPrefix(line, "SystemCallFilter="); ok {
			groups = append(groups, strings.Fields(v)...)
		}
	}
	allowed := map[string]bool{}
	seen := map[string]bool{}
	var expand func(g string)
	expand = func(g string) {
		if !strings.HasPrefix(g, "@") {
			allowed[g] = true
			return
		}
		if seen[g] {
			return
		}
		seen[g] = true
		out, err := exec.Command("systemd-analyze", "syscall-filter", "--no-pager", g).Output()
		if err != nil {
			t.Fatalf("systemd-analyze syscall-filter %s: %v", g, err)
		}
		for i, l := range strings.Split(string(out), "\n") {
			l = strings.TrimSpace(l)
			if i == 0 || l == "" || strings.HasPrefix(l, "#") {
				continue // the group's own name, comments
			}
			expand(l)
		}
	}
	for _, g := range groups {
		expand(g)
	}
	// systemd always allows these (systemd.exec(5), SystemCallFilter=).
	for _, s := range []string{"execve", "exit", "exit_group", "getrlimit", "rt_sigreturn", "sigreturn",
		"clock_gettime", "clock_getres", "clock_nanosleep", "gettimeofday", "nanosleep", "time"} {
		allowed[s] = true
	}
	for _, s := range sensor.AllowedSyscalls() {
		if !allowed[s] {
			t.Errorf("the sensor's seccomp list allows %s but the unit's SystemCallFilter does not", s)
		}
	}
}

// TestSensorRunsWithTheUnitsCapabilities starts the sensor the way the unit does: as an
// unprivileged user with no_new_privs, holding only the unit's ambient capabilities (with
// setpriv, as systemd is not running here). It binds the standard ports, answers Modbus, and
// holds exactly those capabilities.
func TestSensorRunsWithTheUnitsCapabilities(t *testing.T) {
	protocoltest.NeedTool(t, "setpriv")
	if os.Geteuid() != 0 {
		if protocoltest.InCI() {
			t.Fatal("needs root to start the sensor as another user")
		}
		t.Skip("needs root")
	}
	unit, _ := os.ReadFile("icsnare.service")
	var caps []string
	for line := range strings.SplitSeq(string(unit), "\n") {
		if v, ok := strings.CutPrefix(line, "AmbientCapabilities="); ok {
			caps = strings.Fields(v)
		}
	}
	if len(caps) == 0 {
		t.Fatal("no AmbientCapabilities in the unit")
	}
	var set []string
	var want uint64
	for _, c := range caps {
		n, ok := capNumbers[c]
		if !ok {
			t.Fatalf("unknown capability %s", c)
		}
		want |= 1 << n
		set = append(set, "+"+strings.ToLower(strings.TrimPrefix(c, "CAP_")))
	}
	list := strings.Join(set, ",")

	bin := buildSensor(t)
	dir := filepath.Dir(bin)
	state := filepath.Join(dir, "state")
	os.Mkdir(state, 0o700)
	os.Chown(state, 65534, 65534)
	addr := "127.53." + strconv.Itoa(1+os.Getpid()%250) + ".1"
	cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
		"--inh-caps="+list, "--ambient-caps="+list, "--bounding-set=-all,"+list, "--no-new-privs",
		bin, "run", "--listen", addr, "--state", state, "--metrics", "off", "--events", "-")
	var logs strings.Builder
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }()

	var c net.Conn
	var err error
	for range 50 {
		if c, err = net.DialTimeout("tcp", addr+":502", time.Second); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("modbus on %s:502: %v\n%s", addr, err, logs.String())
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte{0, 1, 0, 0, 0, 6, 1, 3, 0, 0, 0, 2})
	resp := make([]byte, 13)
	if _, err := io.ReadFull(c, resp); err != nil || resp[7] != 3 {
		t.Fatalf("modbus FC3: % x, %v", resp, err)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	fields := map[string]string{}
	for line := range strings.SplitSeq(string(status), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			fields[k] = strings.TrimSpace(v)
		}
	}
	t.Logf("uid %s, CapEff %s, CapBnd %s, NoNewPrivs %s, Seccomp %s", fields["Uid"], fields["CapEff"], fields["CapBnd"], fields["NoNewPrivs"], fields["Seccomp"])
	for k, w := range map[string]string{"CapEff": fmt.Sprintf("%016x", want), "CapBnd": fmt.Sprintf("%016x", want), "NoNewPrivs": "1", "Seccomp": "2"} {
		if fields[k] != w {
			t.Errorf("%s = %s, want %s", k, fields[k], w)
		}
	}
	if !strings.HasPrefix(fields["Uid"], "65534") {
		t.Errorf("Uid %s, want 65534", fields["Uid"])
	}
}

// capNumbers are the capabilities the unit may name (linux/capability.h).
var capNumbers = map[string]uint{
	"CAP_NET_BIND_SERVICE": 10, "CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13, "CAP_SYS_ADMIN": 21,
	"CAP_PERFMON": 38, "CAP_BPF": 39,
}

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// buildSensor builds the static binary once per test run, in a directory any user can read
// (the unit test runs it as nobody), and returns its path.
func buildSensor(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "icsnare-packaging-")
		if err != nil {
			buildErr = err
			return
		}
		os.Chmod(dir, 0o755)
		builtBin = filepath.Join(dir, "icsnare")
		cmd := exec.Command("go", "build", "-o", builtBin, "../cmd/icsnare")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if builtBin != "" {
		os.RemoveAll(filepath.Dir(builtBin))
	}
	os.Exit(code)
}
