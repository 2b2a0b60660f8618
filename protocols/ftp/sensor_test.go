package ftp_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols/ftp"
	"github.com/icsnare/icsnare/protocols/protocoltest"
	"github.com/icsnare/icsnare/protocols/tftp"
	"github.com/icsnare/icsnare/sensor"
)

// syncBuffer collects the event stream.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// freeOffset finds a port offset at which FTP's TCP port and TFTP's UDP port are free.
func freeOffset(t *testing.T) int {
	t.Helper()
	return protocoltest.FreeOffset(t, ftp.Port, tftp.Port)
}

// TestThroughSensor serves FTP and TFTP of one profile on a /24 of hosts through the real
// sensor: passive data ports and TFTP transfer ports are the sensor's ephemeral endpoints
// on each host's own address, and both protocols of a host share its filesystem.
func TestThroughSensor(t *testing.T) {
	protocoltest.NeedTool(t, "curl")
	protocoltest.NeedTool(t, "tftp")
	dir := t.TempDir()
	capture := filepath.Join(dir, "captures")
	prof := filepath.Join(dir, "profile")
	os.MkdirAll(filepath.Join(prof, "ftp"), 0o755)
	os.MkdirAll(filepath.Join(prof, "tftp"), 0o755)
	os.WriteFile(filepath.Join(prof, "template.xml"), []byte(`<core><template><entity name="unit">CP 443-1</entity></template><databus/></core>`), 0o644)
	os.WriteFile(filepath.Join(prof, "ftp", "ftp.xml"), []byte(`<ftp enabled="True">
  <device_info><banner>VxWorks (5.4.2) FTP server ready</banner></device_info>
  <ftp_users><users group="0:root"><user uid="0"><uname>admin</uname><password>cp443</password></user></users>
    <anon_login enabled="False"/></ftp_users>
  <ftp_vfs><path>/</path></ftp_vfs>
</ftp>`), 0o644)
	os.WriteFile(filepath.Join(prof, "tftp", "tftp.xml"), []byte(`<tftp enabled="True"><tftp_root_path>/</tftp_root_path></tftp>`), 0o644)

	// Both protocols copy uploads to one capture directory, set in the sensor's configuration.
	net24 := fmt.Sprintf("127.80.%d", rand.IntN(256))
	conf := filepath.Join(dir, "icsnare.toml")
	os.WriteFile(conf, []byte(fmt.Sprintf(`
[[hosts]]
addresses = ["%s.0/24"]
profile = %q

[protocols.ftp]
capture_dir = %q

[protocols.tftp]
capture_dir = %q
capture_max_bytes_per_source = 1048576
`, net24, prof, capture, capture)), 0o644)
	cfg, err := sensor.LoadConfig(conf)
	if err != nil {
		t.Fatal(err)
	}
	off := freeOffset(t)
	cfg.Bind.PortOffset = off
	cfg.Privileges.User = ""
	cfg.Metrics.Listen = ""
	cfg.State.Dir = filepath.Join(dir, "state")
	events := &syncBuffer{}
	stop := startSensor(t, cfg, events)
	hostA, hostB := net24+".5", net24+".6"
	ftpURL := func(host, path string) string { return fmt.Sprintf("ftp://%s:%d%s", host, ftp.Port+off, path) }
	curl := func(args ...string) (string, error) {
		return protocoltest.Run(t, 30*time.Second, "curl", append([]string{"-sS", "--max-time", "20"}, args...)...)
	}

	// Anonymous login is really disabled.
	if out, err := curl(ftpURL(hostA, "/")); err == nil || !strings.Contains(out, "530") {
		t.Fatalf("anonymous listing: %v %q", err, out)
	}
	// Upload over EPSV to host A, then list over PASV: the passive port is on host A.
	payload := []byte("firmware image " + net24)
	local := filepath.Join(dir, "fw.bin")
	os.WriteFile(local, payload, 0o644)
	if out, err := curl("-u", "admin:cp443", "-T", local, ftpURL(hostA, "/fw.bin")); err != nil {
		t.Fatalf("upload: %v %q", err, out)
	}
	out, err := curl("-v", "--disable-epsv", "-u", "admin:cp443", ftpURL(hostA, "/"))
	if err != nil || !strings.Contains(out, "fw.bin") {
		t.Fatalf("listing on A: %v %q", err, out)
	}
	a4 := strings.ReplaceAll(hostA, ".", ",")
	if !strings.Contains(out, "227 Entering Passive Mode ("+a4+",") {
		t.Fatalf("PASV does not name host A:\n%s", out)
	}
	if out, err := curl("-u", "admin:cp443", ftpURL(hostB, "/")); err != nil || strings.Contains(out, "fw.bin") {
		t.Fatalf("listing on B: %v %q", err, out)
	}
	sum := sha256.Sum256(payload)
	if b, err := os.ReadFile(filepath.Join(capture, hex.EncodeToString(sum[:]))); err != nil || !bytes.Equal(b, payload) {
		t.Fatalf("capture: %v", err)
	}
	// TFTP of host A serves the file uploaded over FTP, from a transfer port of its own.
	if out, err := curl("--tftp-blksize", "1024", fmt.Sprintf("tftp://%s:%d/fw.bin", hostA, tftp.Port+off)); err != nil || out != string(payload) {
		t.Fatalf("tftp download: %v %q", err, out)
	}
	// A tftp-hpa upload to host A appears in host A's FTP listing.
	cmd := exec.Command("tftp", "-v", "-m", "binary", hostA, fmt.Sprint(tftp.Port+off), "-c", "put", "fw.bin", "cfg/startup.cfg")
	cmd.Dir = dir
	b, err := cmd.CombinedOutput()
	t.Logf("$ %s\n%s", cmd, b)
	if err != nil {
		t.Fatalf("tftp put: %v", err)
	}
	if out, err := curl("-u", "admin:cp443", ftpURL(hostA, "/cfg/")); err != nil || !strings.Contains(out, "startup.cfg") {
		t.Fatalf("FTP listing of the TFTP upload: %v %q", err, out)
	}
	// The event stream carries the uploads with their hashes.
	wants := []string{`"event_type":"ftp.upload"`, `"event_type":"tftp.upload"`, `"event_type":"ftp.login"`,
		`"sha256":"` + hex.EncodeToString(sum[:])}
	has := func(stream string) bool {
		for _, w := range wants {
			if !strings.Contains(stream, w) {
				return false
			}
		}
		return true
	}
	var stream string
	for range 250 {
		if stream = events.String(); has(stream) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !has(stream) {
		t.Errorf("events lack one of %v:\n%s", wants, stream)
	}

	// The sensor restarts with the same state directory: host A still has both files.
	stop()
	startSensor(t, cfg, &syncBuffer{})
	out, err = curl("-u", "admin:cp443", ftpURL(hostA, "/"))
	if err != nil || !strings.Contains(out, "fw.bin") || !strings.Contains(out, "cfg") {
		t.Fatalf("listing on A after a restart: %v %q", err, out)
	}
	if out, err := curl("-u", "admin:cp443", ftpURL(hostA, "/cfg/startup.cfg")); err != nil || out != string(payload) {
		t.Fatalf("TFTP upload after a restart: %v %q", err, out)
	}
}

// startSensor runs a sensor until the returned stop (or the test's end).
func startSensor(t *testing.T, cfg sensor.Config, events io.Writer) (stop func()) {
	t.Helper()
	s, err := sensor.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	s.SetBus(sensor.NewBus(1024, sensor.NewJSONSink("test", events, nil, false)))
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.Bind(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { s.Run(ctx, nil); close(done) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Error("sensor did not stop")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}
