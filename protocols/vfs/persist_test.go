package vfs

import (
	"errors"
	"net/netip"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
)

// memStore is a HostStore in memory: what the sensor's state store keeps for one host.
type memStore struct {
	mu   sync.Mutex
	kept map[string][]byte
}

func (m *memStore) Save(key string, value []byte) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.kept[key] = append([]byte(nil), value...)
	return true
}

func (m *memStore) Saved(key string) ([]byte, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.kept[key]
	return b, ok
}

func (m *memStore) SavedKeys() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for k := range m.kept {
		out = append(out, k)
	}
	return out
}

func TestChangesOutliveTheHost(t *testing.T) {
	p, err := profiles.Load(fstest.MapFS{"template.xml": {Data: []byte("<core><databus/></core>")}}, "t", "t")
	if err != nil {
		t.Fatal(err)
	}
	store, err := OpenStore(t.TempDir(), DefaultQuotas)
	if err != nil {
		t.Fatal(err)
	}
	kept := &memStore{kept: map[string][]byte{}}
	addr := netip.MustParseAddr("192.0.2.50")
	seed := func(s *Seeder) error {
		for _, f := range []string{"/data/ftp/a.txt", "/data/ftp/b.txt", "/data/ftp/sub/c.txt"} {
			if err := s.File(f, []byte("seed "+f), m644, Meta{Perm: 0o755}); err != nil {
				return err
			}
		}
		return nil
	}
	upload := func(v *View, name, data string) {
		t.Helper()
		if _, err := store.Save(addr, []byte(data)); err != nil {
			t.Fatal(err)
		}
		if err := v.WriteFile(name, []byte(data), false, false, m644); err != nil {
			t.Fatal(err)
		}
	}

	h := protocols.NewStoredHost(addr, p, 1, time.Now(), 0, kept)
	f := ForHost(h)
	if err := f.SeedOnce("ftp", seed); err != nil {
		t.Fatal(err)
	}
	v, _ := f.View("/data/ftp")
	upload(v, "x.bin", "payload x")
	v.Mkdir("d", Meta{Perm: 0o700, UID: 13})
	v.Remove("a.txt", false)
	v.Rename("b.txt", "d/b2.txt")
	upload(v, "sub/c.txt", "overwritten c")
	upload(v, "d/y.bin", "payload y")
	v.Remove("d/y.bin", false) // written and removed: not kept
	want := map[string]string{"/x.bin": "payload x", "/d/b2.txt": "seed /data/ftp/b.txt", "/sub/c.txt": "overwritten c"}

	check := func(v *View) {
		t.Helper()
		for name, data := range want {
			b, _, err := v.ReadFile(name)
			if err != nil || string(b) != data {
				t.Errorf("%s: %q %v, want %q", name, b, err, data)
			}
		}
		for _, gone := range []string{"a.txt", "b.txt", "d/y.bin"} {
			if _, err := v.Stat(gone); !errors.Is(err, ErrNotExist) {
				t.Errorf("%s is back: %v", gone, err)
			}
		}
		if inf, err := v.Stat("d"); err != nil || !inf.Dir || inf.Perm != 0o700 || inf.UID != 13 {
			t.Errorf("directory d: %+v %v", inf, err)
		}
	}
	check(v)

	// The host is evicted and made again from the same state (or the sensor restarts).
	h2 := protocols.NewStoredHost(addr, p, 1, time.Now(), 0, kept)
	f2 := ForHost(h2)
	if f2 == f {
		t.Fatal("a new host must have a new filesystem")
	}
	before, _ := kept.Saved(persistKey)
	if err := f2.SeedOnce("ftp", seed); err != nil {
		t.Fatal(err)
	}
	v2, _ := f2.View("/data/ftp")
	check(v2)
	// A second protocol's seeding applies the manifest again without changing anything.
	f2.SeedOnce("tftp", func(s *Seeder) error { return s.Dir("/data/tftp", Meta{Perm: 0o755}) })
	check(v2)
	if after, _ := kept.Saved(persistKey); string(after) != string(before) {
		t.Errorf("restoring rewrote the manifest:\n%s\n%s", before, after)
	}
	// Uploaded bytes count against the pool again; seeded ones do not.
	if by, _ := f2.Usage(); by == 0 {
		t.Error("no bytes after restore")
	}
	// Another host never sees it.
	other := ForHost(protocols.NewStoredHost(netip.MustParseAddr("192.0.2.51"), p, 2, time.Now(), 0, &memStore{kept: map[string][]byte{}}))
	other.SeedOnce("ftp", seed)
	ov, _ := other.View("/data/ftp")
	if _, err := ov.Stat("x.bin"); !errors.Is(err, ErrNotExist) {
		t.Fatalf("another host sees the upload: %v", err)
	}
}

func TestManifestBoundedAndCorruptIgnored(t *testing.T) {
	f := New(DefaultLimits, NewPool(1<<20))
	f.saved = []byte("{not json")
	if err := f.SeedOnce("x", func(s *Seeder) error { return s.Dir("/a", m644) }); err != nil {
		t.Fatal(err)
	}
	var saves int
	f.save = func([]byte) bool { saves++; return true }
	v, _ := f.View("/a")
	v.Mkdir("d", m644)
	v.Mkdir("d", m644) // refused: no change, no save
	if saves != 1 {
		t.Fatalf("%d saves, want 1", saves)
	}
}
