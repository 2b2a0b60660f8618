package sensor

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestConfine runs the allow-list in a child process (it cannot be undone in this one):
// the child's status shows the filter, calls outside the list fail with EPERM and kill
// nothing, and what the sensor does (sockets, files, threads) keeps working.
func TestConfine(t *testing.T) {
	if os.Getenv("ICSNARE_CONFINE_CHILD") == "1" {
		confineChild()
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestConfine$", "-test.count=1")
	cmd.Env = append(os.Environ(), "ICSNARE_CONFINE_CHILD=1", "ICSNARE_CONFINE_DIR="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("confined child failed: %v\n%s", err, out)
	}
	for _, want := range []string{"NoNewPrivs:\t1", "Seccomp:\t2", "execve: operation not permitted",
		"mount: operation not permitted", "ptrace: operation not permitted", "socket: ok", "file: ok", "threads: ok"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("child output lacks %q:\n%s", want, out)
		}
	}
}

func confineChild() {
	say := func(s string) { os.Stdout.WriteString(s + "\n") }
	if err := Confine(); err != nil {
		say("confine: " + err.Error())
		os.Exit(1)
	}
	status, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(l, "NoNewPrivs:") || strings.HasPrefix(l, "Seccomp:") {
			say(l)
		}
	}
	errText := func(err error) string {
		if err == nil {
			return "allowed"
		}
		var errno syscall.Errno
		if errors.As(err, &errno) {
			return errno.Error()
		}
		return err.Error()
	}
	say("execve: " + errText(exec.Command("/bin/true").Run()))
	say("mount: " + errText(unix.Mount("none", os.Getenv("ICSNARE_CONFINE_DIR"), "tmpfs", 0, "")))
	_, _, e := unix.Syscall(unix.SYS_PTRACE, unix.PTRACE_TRACEME, 0, 0)
	say("ptrace: " + errText(e))

	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err == nil {
		var c net.Conn
		if c, err = net.Dial("tcp4", ln.Addr().String()); err == nil {
			c.Close()
		}
		ln.Close()
	}
	say("socket: " + map[bool]string{true: "ok", false: errText(err)}[err == nil])
	err = os.WriteFile(filepath.Join(os.Getenv("ICSNARE_CONFINE_DIR"), "events.jsonl"), []byte("{}\n"), 0o640)
	say("file: " + map[bool]string{true: "ok", false: errText(err)}[err == nil])
	done := make(chan int)
	for i := range 8 {
		go func() { done <- i }()
	}
	for range 8 {
		<-done
	}
	say("threads: ok")
}
