package bpf

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols/protocoltest"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
)

// TestPinnedStats pins the maps on a bpffs the test mounts on a temporary directory
// (not /sys/fs/bpf) and reads them back as `icsnare xdp stats` in another process would.
func TestPinnedStats(t *testing.T) {
	protocoltest.NeedRoot(t)
	mnt := t.TempDir()
	if err := unix.Mount("bpf", mnt, "bpf", 0, "mode=0700"); err != nil {
		t.Fatalf("mount bpffs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(mnt, unix.MNT_DETACH) })
	dir := filepath.Join(mnt, "icsnare")

	if _, err := Load(Config{PinPath: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "not on a bpffs") {
		t.Errorf("pinning outside bpffs: %v", err)
	}
	// A crashed predecessor's pins are replaced.
	stale, err := Load(Config{PinPath: dir, MaxSources: 16})
	if err != nil {
		t.Fatal(err)
	}
	stale.notify.close() // simulate a crash: the fds go, the pins stay
	_ = stale.objs.Close()

	l, err := Load(Config{Rules: []Rule{{Port: 161, PerSource: 60, Burst: 1}}, PinPath: dir, MaxSources: 1024})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.setClock(t, t0)
	runN(t, l, udp4(t, "198.18.0.10", 161, frameOpt{}), 4)

	r, err := OpenPinned(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.MaxSources() != 1024 {
		t.Errorf("pinned sources map has %d entries, want this limiter's 1024", r.MaxSources())
	}
	var sb strings.Builder
	if err := r.WriteStats(&sb, 10); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"161   -      drop    per_source  3", "198.18.0.10", "sources tracked: 1 of 1024"} {
		if !strings.Contains(sb.String(), want) {
			t.Errorf("pinned stats lack %q:\n%s", want, sb.String())
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("pins left after Close: %v", ents)
	}
}

// TestCollector gathers the Prometheus metrics over the maps.
func TestCollector(t *testing.T) {
	l := loadTest(t, Rule{Port: 161, PerSource: 60, Burst: 1, Global: 600})
	runN(t, l, udp4(t, "198.18.0.10", 161, frameOpt{}), 3)
	runN(t, l, udp4(t, "198.18.0.11", 161, frameOpt{fragOff: 8}), 2)
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(l.Collector()); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, lp := range m.GetLabel() {
				labels = append(labels, lp.GetName()+"="+lp.GetValue())
			}
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			got[fmt.Sprintf("%s{%s}", mf.GetName(), strings.Join(labels, ","))] = v
		}
	}
	for k, want := range map[string]float64{
		"icsnare_xdp_packets_total{action=pass,class=,port=161,reason=ok}":         1,
		"icsnare_xdp_packets_total{action=drop,class=,port=161,reason=per_source}": 2,
		"icsnare_xdp_packets_total{action=drop,class=,port=161,reason=global}":     0,
		"icsnare_xdp_packets_total{action=pass,class=,port=0,reason=fragment}":     2,
		"icsnare_xdp_sources{}":                                                    1,
		"icsnare_xdp_sources_limited{}":                                            1,
		"icsnare_xdp_sources_capacity{}":                                           1024,
		"icsnare_xdp_rule_requests_per_minute{class=,port=161,scope=global}":       600,
		"icsnare_xdp_notifications_lost_total{}":                                   0,
		"icsnare_xdp_scrape_errors{}":                                              0,
		"icsnare_xdp_bytes_total{action=drop,class=,port=161,reason=per_source}":   2 * 60, // gopacket pads frames to 60 bytes
		"icsnare_xdp_rule_requests_per_minute{class=,port=161,scope=source}":       60,
		"icsnare_xdp_notifications_suppressed_total{}":                             0,
		"icsnare_xdp_packets_total{action=drop,class=,port=161,reason=global_new}": 0,
	} {
		if v, ok := got[k]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", k, v, ok, want)
		}
	}
}

// TestCrashDetaches kills a process that attached the limiter and checks that the
// kernel removed the program with it (bpf_link semantics).
func TestCrashDetaches(t *testing.T) {
	if os.Getenv("ICSX_CHILD_IFACE") != "" {
		l, err := Load(Config{Rules: []Rule{{Port: 161, PerSource: 60}}})
		if err != nil {
			fmt.Println("load:", err)
			os.Exit(1)
		}
		err = inNetns(os.Getenv("ICSX_CHILD_NS"), func() error { _, err := l.Attach(os.Getenv("ICSX_CHILD_IFACE")); return err })
		if err != nil {
			fmt.Println("attach:", err)
			os.Exit(1)
		}
		fmt.Println("attached")
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	n := newTestNet(t, 0)
	cmd := exec.Command(os.Args[0], "-test.run", "^TestCrashDetaches$")
	cmd.Env = append(os.Environ(), "ICSX_CHILD_IFACE="+n.serverIf, "ICSX_CHILD_NS="+n.server)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 256)
	k, _ := out.Read(buf)
	if !strings.Contains(string(buf[:k]), "attached") {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child: %q", buf[:k])
	}
	show := func() string {
		s, err := runIP("-n", n.server, "link", "show", n.serverIf)
		if err != nil {
			t.Fatalf("ip link show: %v %s", err, s)
		}
		return s
	}
	if s := show(); !strings.Contains(s, "xdp") {
		t.Fatalf("child attached but no xdp on the link:\n%s", s)
	}
	_ = cmd.Process.Kill() // SIGKILL: no cleanup runs in the child
	_ = cmd.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for strings.Contains(show(), "xdp") {
		if time.Now().After(deadline) {
			t.Fatalf("xdp program still attached after the process died:\n%s", show())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
