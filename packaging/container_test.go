package packaging

import (
	"archive/tar"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// TestContainerImage builds packaging/Dockerfile with podman and runs the image: the final
// stage takes the binary from an image imported from the host's build (BIN_FROM), so the
// test needs no base image from a registry; the build stage is the same commands. The
// container runs as uid 2000, binds the standard ports inside its network namespace, and
// answers Modbus and /readyz through published ports.
func TestContainerImage(t *testing.T) {
	protocoltest.NeedTool(t, "podman")
	protocoltest.NeedTool(t, "runc")
	if os.Geteuid() != 0 {
		if protocoltest.InCI() {
			t.Fatal("needs root for podman")
		}
		t.Skip("needs root")
	}
	bin := buildSensor(t)
	work := t.TempDir()
	// Storage of the test's own, removed with it.
	pod := func(args ...string) *exec.Cmd {
		base := []string{"--storage-driver", "vfs", "--root", filepath.Join(work, "storage"), "--runroot", filepath.Join(work, "run"),
			"--runtime", "runc", "--cgroup-manager", "cgroupfs"}
		return exec.Command("podman", append(base, args...)...)
	}
	mustPod := func(args ...string) string {
		t.Helper()
		out, err := pod(args...).CombinedOutput()
		if err != nil {
			t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	t.Cleanup(func() { pod("rm", "-af").Run(); pod("rmi", "-af").Run() })

	tarPath := filepath.Join(work, "bin.tar")
	if err := writeRootfsTar(tarPath, bin); err != nil {
		t.Fatal(err)
	}
	mustPod("import", tarPath, "localhost/icsnare-bin:test")
	mustPod("build", "--isolation", "chroot", "--build-arg", "BIN_FROM=localhost/icsnare-bin:test",
		"-f", "Dockerfile", "-t", "localhost/icsnare:test", ".")
	if user := mustPod("image", "inspect", "--format", "{{.Config.User}}", "localhost/icsnare:test"); user != "2000:2000" {
		t.Errorf("image user %q, want 2000:2000", user)
	}

	addr := "127.53." + strconv.Itoa(1+(os.Getpid()+13)%250) + ".3"
	off := protocoltest.FreeOffset(t, 502, 10108)
	mustPod("run", "-d", "--name", "icsnare-test", "--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096",
		"--sysctl", "net.ipv4.ip_unprivileged_port_start=0",
		"-p", addr+":"+strconv.Itoa(502+off)+":502", "-p", addr+":"+strconv.Itoa(10108+off)+":10108",
		"localhost/icsnare:test")
	logs := func() string { out, _ := pod("logs", "icsnare-test").CombinedOutput(); return string(out) }

	client := &http.Client{Timeout: 3 * time.Second}
	ready := false
	for range 100 {
		if resp, err := client.Get("http://" + addr + ":" + strconv.Itoa(10108+off) + "/readyz"); err == nil {
			resp.Body.Close()
			if ready = resp.StatusCode == 200; ready {
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !ready {
		t.Fatalf("container not ready:\n%s", logs())
	}
	c, err := net.DialTimeout("tcp", addr+":"+strconv.Itoa(502+off), 3*time.Second)
	if err != nil {
		t.Fatalf("modbus: %v\n%s", err, logs())
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte{0, 1, 0, 0, 0, 6, 1, 3, 0, 0, 0, 2})
	resp := make([]byte, 13)
	if _, err := io.ReadFull(c, resp); err != nil || resp[7] != 3 || resp[8] != 4 {
		t.Fatalf("modbus FC3 through the container: % x, %v\n%s", resp, err, logs())
	}
	if v := mustPod("exec", "icsnare-test", "/usr/bin/icsnare", "version"); v == "" {
		t.Error("icsnare version printed nothing inside the container")
	}
	// podman top resolves the uid with the image's passwd: 2000 is "icsnare".
	if top := mustPod("top", "icsnare-test", "user"); !strings.Contains(top, "icsnare") {
		t.Errorf("the sensor does not run as uid 2000:\n%s", top)
	}
}

// writeRootfsTar writes the tree the Dockerfile's build stage makes (out/rootfs/…: the
// binary, passwd and group, the state and log directories) from a binary built on the host.
func writeRootfsTar(path, bin string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	dir := func(name string, mode int64, uid int) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, Uid: uid, Gid: uid})
	}
	file := func(name string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data))}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	exe, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	for _, d := range []struct {
		name string
		mode int64
		uid  int
	}{{"out", 0o755, 0}, {"out/rootfs", 0o755, 0}, {"out/rootfs/usr", 0o755, 0}, {"out/rootfs/usr/bin", 0o755, 0},
		{"out/rootfs/etc", 0o755, 0}, {"out/rootfs/var", 0o755, 0}, {"out/rootfs/var/lib", 0o755, 0},
		{"out/rootfs/var/lib/icsnare", 0o700, 2000}, {"out/rootfs/var/log", 0o755, 0},
		{"out/rootfs/var/log/icsnare", 0o750, 2000}, {"out/rootfs/tmp", 0o1777, 0}} {
		if err := dir(d.name, d.mode, d.uid); err != nil {
			return err
		}
	}
	if err := file("out/rootfs/usr/bin/icsnare", 0o755, exe); err != nil {
		return err
	}
	if err := file("out/rootfs/etc/passwd", 0o644, []byte("root:x:0:0:root:/:/nonexistent\n"+
		"icsnare:x:2000:2000:icsnare:/var/lib/icsnare:/nonexistent\nnobody:x:65534:65534:nobody:/nonexistent:/nonexistent\n")); err != nil {
		return err
	}
	if err := file("out/rootfs/etc/group", 0o644, []byte("root:x:0:\nicsnare:x:2000:\nnogroup:x:65534:\n")); err != nil {
		return err
	}
	return tw.Close()
}
