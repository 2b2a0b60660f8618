package sensor

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestEventsConfigRefusals: every [events] option the sinks read is validated at load,
// with a message naming it.
func TestEventsConfigRefusals(t *testing.T) {
	for _, tc := range []struct{ toml, want string }{
		{`fsync = "sometimes"`, "events.fsync"},
		{`fsync = "interval"` + "\n" + `fsync_interval = "0s"`, "events.fsync_interval"},
		{`compress = "xz"`, "events.compress"},
		{`file = "-"` + "\n" + `rotate_size = "1MiB"`, "events.rotate_size"},
		{`file = "-"` + "\n" + `rotate_age = "1h"`, "events.rotate_age"},
		{`keep = -1`, "events.keep"},
		{`per_session = -1`, "events.per_session"},
		{"[events.protocols.nosuch]\nper_session = 1", "events.protocols.nosuch"},
		{"[events.protocols.modbus]\nper_session = -2", "events.protocols.modbus.per_session"},
		{"[events.protocols.modbus]\nper_sesion = 2", "per_sesion"},
		{`shutdown_budget = "-1s"`, "negative"},
	} {
		p := filepath.Join(t.TempDir(), "c.toml")
		os.WriteFile(p, []byte("[events]\n"+tc.toml+"\n"), 0o644)
		_, err := LoadConfig(p)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err %v, want one naming %s", tc.toml, err, tc.want)
		}
	}
	p := filepath.Join(t.TempDir(), "ok.toml")
	os.WriteFile(p, []byte("[events]\nfile = \"/tmp/x.jsonl\"\nrotate_size = \"64MiB\"\nrotate_age = \"24h\"\nkeep = 7\n"+
		"compress = \"zstd\"\nfsync = \"interval\"\nper_session = 5\n[events.protocols.modbus]\nper_session = 0\n"), 0o644)
	cfg, err := LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Events.RotateSize != 64<<20 || cfg.Events.KeepEvents("modbus") != 0 || cfg.Events.KeepEvents("s7comm") != 5 {
		t.Fatalf("loaded %+v", cfg.Events)
	}
}

// TestSignalSensorRefusesStalePIDFile: a pid file naming a process that is not an
// icsnare, or none, is refused rather than signalled.
func TestSignalSensorRefusesStalePIDFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, PIDFileName)
	sleep := exec.Command("sleep", "30")
	if err := sleep.Start(); err != nil {
		t.Fatalf("sleep(1) from coreutils: %v", err)
	}
	defer func() { sleep.Process.Kill(); sleep.Wait() }()
	for _, tc := range []struct{ content, want string }{
		{strconv.Itoa(sleep.Process.Pid), "not icsnare"},
		{"1", "not a process id"},
		{"garbage", "not a process id"},
		{"999999999", "not running"},
	} {
		os.WriteFile(path, []byte(tc.content+"\n"), 0o644)
		if _, err := SignalSensor(path, syscall.SIGHUP); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("pid file %q: %v, want %q", tc.content, err, tc.want)
		}
	}
	if _, err := SignalSensor(filepath.Join(dir, "none"), syscall.SIGHUP); err == nil || !strings.Contains(err.Error(), "no pid file") {
		t.Errorf("missing pid file: %v", err)
	}
	// The sleep is still alive: nothing signalled it.
	if err := sleep.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("the unrelated process was signalled: %v", err)
	}
	// WritePIDFile's remover leaves a file another process rewrote.
	remove, err := WritePIDFile(path)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(path, []byte("12345\n"), 0o644)
	remove()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("removed another sensor's pid file: %v", err)
	}
}

// TestRotateByAge: a file older than rotate_age is rotated at the next flush that writes.
func TestRotateByAge(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	s, err := OpenJSONSinkWith(path, JSONOptions{GID: -1, RotateAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	s.Write(sampleEvent())
	s.Flush()
	if n := len((&rotator{path: path}).rotated()); n != 0 {
		t.Fatalf("rotated %d files before the age", n)
	}
	s.out.start = s.out.start.Add(-2 * time.Hour) // the file is two hours old
	s.Write(sampleEvent())
	s.Flush()
	s.out.rot.idle.Wait()
	s.Write(sampleEvent())
	s.Close()
	rotated := (&rotator{path: path}).rotated()
	if len(rotated) != 1 || readLines(t, rotated[0]) != 2 || readLines(t, path) != 1 {
		t.Fatalf("rotated %v; want one file with the first two events and the third in a new file", rotated)
	}
}
