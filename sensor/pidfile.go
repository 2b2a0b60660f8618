package sensor

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// PIDFileName is the file in the state directory that holds the running sensor's process
// id, for `icsnare reopen`.
const PIDFileName = "icsnare.pid"

// PIDFile returns where a sensor with cfg keeps its pid file ("" without a state directory).
func PIDFile(cfg Config) string {
	if cfg.State.Dir == "" {
		return ""
	}
	return filepath.Join(cfg.State.Dir, PIDFileName)
}

// WritePIDFile writes this process's id to path (created 0644, replaced atomically) and
// returns a function that removes it again if it still holds this id.
func WritePIDFile(path string) (remove func(), err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("pid file: %w", err)
	}
	me := strconv.Itoa(os.Getpid())
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(me+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("pid file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("pid file: %w", err)
	}
	return func() {
		if b, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(b)) == me {
			os.Remove(path)
		}
	}, nil
}

// SignalSensor sends sig to the sensor whose pid file is path, after checking that the
// process is an icsnare (a stale file may name a process that reused the id). It returns
// the pid it signalled.
func SignalSensor(path string, sig syscall.Signal) (int, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("%s: no pid file: is the sensor running with this state directory?", path)
	}
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return 0, fmt.Errorf("%s: not a process id: %q", path, bytes.TrimSpace(b))
	}
	cmd, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return 0, fmt.Errorf("%s: process %d is not running (stale pid file)", path, pid)
	}
	argv0 := filepath.Base(string(bytes.SplitN(cmd, []byte{0}, 2)[0]))
	if !strings.Contains(argv0, "icsnare") && argv0 != "conpot" {
		return 0, fmt.Errorf("%s: process %d is %q, not icsnare (stale pid file)", path, pid, argv0)
	}
	if err := syscall.Kill(pid, sig); err != nil {
		return 0, fmt.Errorf("signal %d: %w", pid, err)
	}
	return pid, nil
}
