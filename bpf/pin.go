package bpf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// pinnedMaps are the maps a Reader needs.
var pinnedMaps = []string{"rules", "counters", "sources", "gstates", "matchers"}

func (l *Limiter) mapsByName() map[string]*ebpf.Map {
	return map[string]*ebpf.Map{
		"rules": l.objs.Rules, "counters": l.objs.Counters,
		"sources": l.objs.Sources, "gstates": l.objs.Gstates, "matchers": l.objs.Matchers,
	}
}

// pin pins the maps under dir, replacing stale pins of a crashed predecessor.
func (l *Limiter) pin(dir string) error {
	if err := checkBPFFS(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("xdp pin: %w", err)
	}
	maps := l.mapsByName()
	for _, name := range pinnedMaps {
		p := filepath.Join(dir, name)
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("xdp pin: remove stale %s: %w", p, err)
		}
		if err := maps[name].Pin(p); err != nil {
			l.unpin()
			return fmt.Errorf("xdp pin %s: %w", p, err)
		}
	}
	return nil
}

func (l *Limiter) unpin() {
	for _, m := range l.mapsByName() {
		if m != nil && m.IsPinned() {
			_ = m.Unpin()
		}
	}
}

// checkBPFFS verifies that dir (or its nearest existing parent) is on a bpffs.
func checkBPFFS(dir string) error {
	p := dir
	for {
		var st unix.Statfs_t
		err := unix.Statfs(p, &st)
		if err == nil {
			if st.Type != unix.BPF_FS_MAGIC {
				return fmt.Errorf("xdp pin: %s is not on a bpffs (mount -t bpf bpf /sys/fs/bpf)", dir)
			}
			return nil
		}
		if !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("xdp pin: statfs %s: %w", p, err)
		}
		parent := filepath.Dir(p)
		if parent == p {
			return fmt.Errorf("xdp pin: %s: no existing parent", dir)
		}
		p = parent
	}
}

// OpenPinned opens the maps a running sensor pinned under dir (Config.PinPath), for
// `icsnare xdp stats` in another process. quiet is the sensor's QuietPeriod (0: 10s);
// it only decides which sources are shown as currently limited.
func OpenPinned(dir string, quiet time.Duration) (*Reader, error) {
	if quiet <= 0 {
		quiet = 10 * time.Second
	}
	r := &Reader{quiet: quiet, owned: true}
	dst := map[string]**ebpf.Map{"rules": &r.rules, "counters": &r.counters, "sources": &r.sources, "gstates": &r.gstates, "matchers": &r.matchers}
	for _, name := range pinnedMaps {
		m, err := ebpf.LoadPinnedMap(filepath.Join(dir, name), &ebpf.LoadPinOptions{ReadOnly: true})
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("xdp stats: open pinned %s: %w", name, err)
		}
		*dst[name] = m
	}
	id, err := openPinnedIdentity(dir)
	if err != nil {
		r.Close()
		return nil, err
	}
	r.ident = id
	return r, nil
}
