package vfs

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
)

var m644 = Meta{Perm: 0o644, UID: 13, GID: 45, ModTime: time.Unix(1533152352, 0)}

func TestJoinTraversal(t *testing.T) {
	for _, tc := range []struct {
		cwd, p, want string
		err          error
	}{
		{"/", "a", "/a", nil},
		{"/a", "b/../c", "/a/c", nil},
		{"/a", "/b", "/b", nil},
		{"/a", "..", "/", nil},
		{"/", "..", "", ErrOutside},
		{"/", "../", "", ErrOutside},
		{"/", "/../../etc/passwd", "", ErrOutside},
		{"/a", "../../etc", "", ErrOutside},
		{"/", `..\..\windows`, "", ErrOutside},
		{"/", `a\..\..`, "", ErrOutside},
		{"/", "a/./b//c/", "/a/b/c", nil},
		{"/", "testing/testing/../demo", "/testing/demo", nil},
		{"/", "...", "/...", nil},                     // a name, not a parent
		{"/", "%2e%2e/%2e%2e", "/%2e%2e/%2e%2e", nil}, // encodings are names too
		{"/", "a\x00b", "", ErrInvalid},
		{"/", "a\nb", "", ErrInvalid},
		{"/", strings.Repeat("x", MaxComponent+1), "", ErrInvalid},
		{"/", strings.Repeat("a/", MaxDepth+1), "", ErrInvalid},
		{"/", strings.Repeat("a", MaxPath+1), "", ErrInvalid},
	} {
		got, err := Join(tc.cwd, tc.p)
		if !errors.Is(err, tc.err) || got != tc.want {
			t.Errorf("Join(%q, %q) = %q, %v; want %q, %v", tc.cwd, tc.p, got, err, tc.want, tc.err)
		}
	}
}

func TestViewJail(t *testing.T) {
	f := New(DefaultLimits, NewPool(1<<20))
	f.SeedOnce("t", func(s *Seeder) error {
		if err := s.File("/data/ftp/ftp_data.txt", []byte("ftp"), m644, Meta{Perm: 0o755}); err != nil {
			return err
		}
		return s.File("/data/secret.txt", []byte("secret"), m644, Meta{Perm: 0o755})
	})
	v, _ := f.View("/data/ftp")
	for _, p := range []string{"../secret.txt", "/../secret.txt", `..\secret.txt`, "a/../../secret.txt"} {
		if _, _, err := v.ReadFile(p); !errors.Is(err, ErrOutside) {
			t.Errorf("ReadFile(%q): %v, want ErrOutside", p, err)
		}
	}
	// A path that names the secret relative to the jail is not the secret.
	if _, _, err := v.ReadFile("/secret.txt"); !errors.Is(err, ErrNotExist) {
		t.Errorf("jail-relative /secret.txt: %v", err)
	}
	b, inf, err := v.ReadFile("/ftp_data.txt")
	if err != nil || string(b) != "ftp" || inf.UID != 13 || inf.Perm != 0o644 {
		t.Fatalf("ReadFile: %q %+v %v", b, inf, err)
	}
	if err := v.Remove("/", true); !errors.Is(err, ErrRoot) {
		t.Errorf("Remove root: %v", err)
	}
	if err := v.Rename("/", "/x"); !errors.Is(err, ErrRoot) {
		t.Errorf("Rename root: %v", err)
	}
	// Writes land inside the jail only.
	if err := v.WriteFile("../../evil", []byte("x"), false, false, m644); !errors.Is(err, ErrOutside) {
		t.Errorf("write outside: %v", err)
	}
	if err := v.WriteFile("dir/sub/f", []byte("x"), false, true, m644); err != nil {
		t.Fatal(err)
	}
	whole, _ := f.View("/")
	if _, err := whole.Stat("/data/ftp/dir/sub/f"); err != nil {
		t.Errorf("write not at the jail's path: %v", err)
	}
	// The real filesystem is untouched: no file of that name appears in the working dir.
	if _, err := os.Stat("evil"); err == nil {
		t.Fatal("a file reached the real filesystem")
	}
}

func TestOperations(t *testing.T) {
	f := New(DefaultLimits, NewPool(1<<20))
	v, _ := f.View("/data/ftp")
	if l, err := v.ReadDir("/"); err != nil || len(l) != 0 {
		t.Fatalf("empty jail root: %v %v", l, err)
	}
	if err := v.Mkdir("testing", m644); err != nil {
		t.Fatal(err)
	}
	if err := v.Mkdir("testing", m644); !errors.Is(err, ErrExist) {
		t.Fatalf("mkdir twice: %v", err)
	}
	if err := v.Mkdir("x/y", m644); !errors.Is(err, ErrNotExist) {
		t.Fatalf("mkdir without parent: %v", err)
	}
	v.WriteFile("testing/a", []byte("hello "), false, false, m644)
	v.WriteFile("testing/a", []byte("world"), true, false, Meta{Perm: 0o600})
	b, inf, _ := v.ReadFile("testing/a")
	if string(b) != "hello world" || inf.Perm != 0o644 {
		t.Fatalf("append: %q %o", b, inf.Perm)
	}
	if err := v.Remove("testing", true); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("rmdir non-empty: %v", err)
	}
	if err := v.Rename("testing", "testing/inside"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("rename into itself: %v", err)
	}
	if err := v.Rename("testing/a", "b"); err != nil {
		t.Fatal(err)
	}
	l, _ := v.ReadDir("/")
	if len(l) != 2 || l[0].Name != "b" || l[1].Name != "testing" || !l[1].Dir {
		t.Fatalf("listing %+v", l)
	}
	if err := v.Remove("b", true); !errors.Is(err, ErrNotDir) {
		t.Fatalf("rmdir a file: %v", err)
	}
	if err := v.Remove("b", false); err != nil {
		t.Fatal(err)
	}
	if err := v.Remove("testing", true); err != nil {
		t.Fatal(err)
	}
	if by, n := f.Usage(); by != 0 || n != 3 { // /, data, ftp and nothing else
		t.Fatalf("usage after removing everything: %d bytes, %d nodes", by, n)
	}
}

func TestBounds(t *testing.T) {
	pool := NewPool(100)
	f := New(Limits{MaxBytes: 60, MaxNodes: 5, MaxFileSize: 40}, pool)
	v, _ := f.View("/")
	if err := v.WriteFile("big", make([]byte, 41), false, false, m644); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("file over MaxFileSize: %v", err)
	}
	if err := v.WriteFile("a", make([]byte, 40), false, false, m644); err != nil {
		t.Fatal(err)
	}
	if err := v.WriteFile("b", make([]byte, 30), false, false, m644); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("host bytes over MaxBytes: %v", err)
	}
	if err := v.WriteFile("a", make([]byte, 30), true, false, m644); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("append over MaxFileSize: %v", err)
	}
	// Replacing a file frees its bytes.
	if err := v.WriteFile("a", make([]byte, 10), false, false, m644); err != nil {
		t.Fatal(err)
	}
	if pool.Used() != 10 {
		t.Fatalf("pool used %d, want 10", pool.Used())
	}
	for i := range 10 {
		err := v.Mkdir(fmt.Sprint("d", i), m644)
		if i < 3 && err != nil || i >= 3 && !errors.Is(err, ErrNoSpace) {
			t.Fatalf("mkdir %d: %v", i, err)
		}
	}
	// The pool bounds the sum over hosts.
	g := New(DefaultLimits, pool)
	w, _ := g.View("/")
	if err := w.WriteFile("x", make([]byte, 90), false, false, m644); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFile("y", make([]byte, 1), false, false, m644); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("pool exhausted: %v", err)
	}
	g.Close()
	if pool.Used() != 10 {
		t.Fatalf("pool after closing a host %d, want 10", pool.Used())
	}
	// Seeded bytes are not the pool's.
	h := New(DefaultLimits, pool)
	h.SeedOnce("s", func(s *Seeder) error { return s.File("/seed", make([]byte, 1000), m644, m644) })
	if pool.Used() != 10 {
		t.Fatalf("seeding took pool bytes: %d", pool.Used())
	}
}

func TestPerHostIsolation(t *testing.T) {
	p, err := profiles.Load(fstest.MapFS{"template.xml": {Data: []byte("<core><databus/></core>")}}, "t", "t")
	if err != nil {
		t.Fatal(err)
	}
	a := protocols.NewHost(netip.MustParseAddr("192.0.2.1"), p, 1, time.Now())
	b := protocols.NewHost(netip.MustParseAddr("192.0.2.2"), p, 2, time.Now())
	fa, fa2, fb := ForHost(a), ForHost(a), ForHost(b)
	if fa != fa2 || fa == fb {
		t.Fatal("ForHost must give one filesystem per host")
	}
	seed := []byte("shared seed")
	for _, h := range []*protocols.Host{a, b} {
		for range 2 {
			ForHost(h).SeedOnce("ftp", func(s *Seeder) error { return s.File("/data/ftp/f", seed, m644, m644) })
		}
	}
	va, _ := ForHost(a).View("/data/ftp")
	vb, _ := ForHost(b).View("/data/ftp")
	va.WriteFile("upload.bin", []byte("payload"), false, false, m644)
	if _, err := vb.Stat("upload.bin"); !errors.Is(err, ErrNotExist) {
		t.Fatalf("host b sees host a's upload: %v", err)
	}
	if l, _ := va.ReadDir("/"); len(l) != 2 {
		t.Fatalf("host a listing %+v", l)
	}
	// Seed bytes are shared, not copied per host.
	ba, _, _ := va.ReadFile("f")
	bb, _, _ := vb.ReadFile("f")
	if &ba[0] != &bb[0] {
		t.Error("seed content copied per host")
	}
}

func TestConcurrentUse(t *testing.T) {
	f := New(DefaultLimits, NewPool(1<<20))
	v, _ := f.View("/x")
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				name := fmt.Sprintf("f%d-%d", g, i%10)
				v.WriteFile(name, []byte("data"), i%2 == 0, false, m644)
				v.ReadDir("/")
				v.ReadFile(name)
				v.Rename(name, name+"r")
				v.Remove(name+"r", false)
			}
		}()
	}
	wg.Wait()
	if by, _ := f.Usage(); by < 0 {
		t.Fatal("negative usage")
	}
}

func TestAddTree(t *testing.T) {
	fsys := fstest.MapFS{
		"files/a.txt":     {Data: []byte("a")},
		"files/sub/b.txt": {Data: []byte("bb")},
	}
	got, err := AddTree(fsys, "files", "/data/ftp")
	if err != nil || string(got["/data/ftp/a.txt"]) != "a" || string(got["/data/ftp/sub/b.txt"]) != "bb" || len(got) != 2 {
		t.Fatalf("AddTree: %v %v", got, err)
	}
	if _, err := AddTree(fsys, "missing", "/"); err == nil {
		t.Fatal("AddTree of a missing directory succeeded")
	}
}

func TestStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "captures")
	s, err := OpenStore(dir, Quotas{Total: 100, PerSource: 30, Sources: 2})
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := OpenStore(dir, DefaultQuotas); again != s {
		t.Fatal("one store per directory")
	}
	a, b, c := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("192.0.2.3")
	got, err := s.Save(a, []byte("hello"))
	const sum = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
	if err != nil || got.SHA256 != sum || got.Path != filepath.Join(dir, sum) || got.Size != 5 {
		t.Fatalf("Save: %+v %v", got, err)
	}
	if b, err := os.ReadFile(got.Path); err != nil || string(b) != "hello" {
		t.Fatalf("captured file: %q %v", b, err)
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Errorf("capture dir mode %o", st.Mode().Perm())
	}
	if got, err := s.Save(a, []byte("hello")); err != nil || !got.Duplicate {
		t.Fatalf("duplicate: %+v %v", got, err)
	}
	if _, err := s.Save(a, make([]byte, 26)); !errors.Is(err, ErrQuota) {
		t.Fatalf("per-source quota: %v", err)
	}
	if s.Allowed(a) != true {
		t.Fatal("a has 25 bytes left")
	}
	if _, err := s.Save(b, make([]byte, 30)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Save(c, []byte("x")); !errors.Is(err, ErrQuota) {
		t.Fatalf("source table full: %v", err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Fatalf("%d files in the capture dir, want 2", len(ents))
	}
	// A store reopened over the directory counts what is there.
	storesMu.Lock()
	delete(stores, dir)
	storesMu.Unlock()
	s2, _ := OpenStore(dir, Quotas{Total: 40, PerSource: 30, Sources: 2})
	if _, err := s2.Save(c, make([]byte, 10)); !errors.Is(err, ErrQuota) {
		t.Fatalf("total quota after reopening: %v", err)
	}
	// No directory: hashes only.
	mem, _ := OpenStore("", DefaultQuotas)
	if got, err := mem.Save(a, []byte("hello")); err != nil || got.Path != "" || got.SHA256 != sum {
		t.Fatalf("memory store: %+v %v", got, err)
	}
}

func TestPoolReturnedWhenDropped(t *testing.T) {
	pool := NewPool(1 << 20)
	func() {
		f := New(DefaultLimits, pool)
		v, _ := f.View("/")
		v.WriteFile("x", make([]byte, 1000), false, false, m644)
	}()
	if pool.Used() != 1000 {
		t.Fatalf("pool used %d", pool.Used())
	}
	for i := 0; i < 50 && pool.Used() != 0; i++ {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if pool.Used() != 0 {
		t.Fatalf("a dropped filesystem kept %d pool bytes", pool.Used())
	}
}

func TestGenerate(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	a := Generate(KindLog, 1, "/LOG/events.log", 2048, now)
	if !bytes.Equal(a, Generate(KindLog, 1, "/LOG/events.log", 2048, now)) {
		t.Fatal("not deterministic")
	}
	if bytes.Equal(a, Generate(KindLog, 2, "/LOG/events.log", 2048, now)) {
		t.Fatal("two hosts share a log")
	}
	if len(a) == 0 || len(a) > 2048 || !bytes.HasSuffix(a, []byte("\n")) {
		t.Fatalf("log of %d bytes:\n%s", len(a), a)
	}
	if b := Generate(KindBinary, 1, "fw.bin", 1<<30, now); len(b) != MaxGeneratedSize {
		t.Fatalf("binary of %d bytes", len(b))
	}
}

func TestStoreUnwritable(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "captures")
	s, err := OpenStore(dir, DefaultQuotas)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(dir, nil, 0o644) // a file where the directory was to be created
	if _, err := s.Save(netip.MustParseAddr("192.0.2.9"), []byte("x")); err == nil || errors.Is(err, ErrQuota) {
		t.Fatalf("save into an impossible directory: %v", err)
	}
	if !s.FirstFailure() || s.FirstFailure() {
		t.Fatal("FirstFailure must be true exactly once")
	}
	if s.Allowed(netip.MustParseAddr("192.0.2.9")) != true {
		t.Fatal("a failed save must not take quota")
	}
}
