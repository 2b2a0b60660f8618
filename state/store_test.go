package state

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"
)

func open(t *testing.T, dir string, lim Limits) *Store {
	t.Helper()
	s, err := Open(dir, lim, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestRecordRoundTripAndCorruption(t *testing.T) {
	rec := map[string][]byte{"db/sysLocation": []byte("x"), "s7comm.mode": {4, 8}, "": nil}
	got, err := decodeRecord(encodeRecord(rec))
	if err != nil || len(got) != len(rec) {
		t.Fatalf("round trip: %v %v", got, err)
	}
	for k, v := range rec {
		if !bytes.Equal(got[k], v) {
			t.Errorf("%q: %q, want %q", k, got[k], v)
		}
	}
	enc := encodeRecord(rec)
	for i := range len(enc) {
		if _, err := decodeRecord(enc[:i]); err == nil && i > 0 {
			t.Errorf("truncated at %d decoded without error", i)
		}
	}
	if _, err := decodeRecord([]byte{0xff, 0xff, 0xff, 0xff, 0x0f}); err == nil {
		t.Error("huge count accepted")
	}
}

func TestBounds(t *testing.T) {
	big := bytes.Repeat([]byte{1}, 100)
	cases := []struct {
		name    string
		lim     Limits
		writes  [][3]string // host, key, value size ("" = 10 bytes, "big" = 100)
		refused map[string]int64
		kept    map[string]int // host → keys kept
	}{
		{"within bounds", Limits{HostBytes: 1000, HostKeys: 4, TotalBytes: 10000},
			[][3]string{{"a", "k1", ""}, {"a", "k2", "big"}, {"b", "k1", ""}}, nil, map[string]int{"a": 2, "b": 1}},
		{"host keys", Limits{HostBytes: 1000, HostKeys: 2, TotalBytes: 10000},
			[][3]string{{"a", "k1", ""}, {"a", "k2", ""}, {"a", "k3", ""}, {"b", "k3", ""}}, map[string]int64{RefusedHost: 1}, map[string]int{"a": 2, "b": 1}},
		{"host bytes", Limits{HostBytes: 150, HostKeys: 10, TotalBytes: 10000},
			[][3]string{{"a", "k1", "big"}, {"a", "k2", "big"}, {"a", "k3", ""}}, map[string]int64{RefusedHost: 1}, map[string]int{"a": 2}},
		{"value alone too big", Limits{HostBytes: 50, HostKeys: 10, TotalBytes: 10000},
			[][3]string{{"a", "k1", "big"}, {"a", "k2", ""}}, map[string]int64{RefusedHost: 1}, map[string]int{"a": 1}},
		{"store full", Limits{HostBytes: 1000, HostKeys: 10, TotalBytes: 250},
			[][3]string{{"a", "k1", "big"}, {"b", "k1", "big"}, {"c", "k1", "big"}, {"a", "k1", ""}}, map[string]int64{RefusedStore: 1}, map[string]int{"a": 1, "b": 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := open(t, t.TempDir(), c.lim)
			for _, w := range c.writes {
				v := bytes.Repeat([]byte{2}, 10)
				if w[2] == "big" {
					v = big
				}
				s.Put(w[0], w[1], v)
				s.Flush() // one write per commit, so the order is the test's
			}
			for _, r := range Reasons {
				if got := s.Refused(r); got != c.refused[r] {
					t.Errorf("refused %s = %d, want %d", r, got, c.refused[r])
				}
			}
			for h, n := range c.kept {
				if got := len(s.Load(h)); got != n {
					t.Errorf("host %s keeps %d keys, want %d", h, got, n)
				}
			}
			if st := s.Stats(); st.Bytes > c.lim.TotalBytes {
				t.Errorf("store holds %d bytes, bound %d", st.Bytes, c.lim.TotalBytes)
			}
		})
	}
}

func TestQueueFullRefusesAndNeverBlocks(t *testing.T) {
	s := open(t, t.TempDir(), Limits{Queue: 4})
	for i := range 10 {
		s.Put("h", fmt.Sprint("k", i), []byte{1})
	}
	s.Put("h", "k0", []byte{2}) // replacing a queued key needs no room
	if got := s.Refused(RefusedQueue); got != 6 {
		t.Fatalf("queue_full refusals %d, want 6", got)
	}
	if got := s.Load("h"); len(got) != 4 || got["k0"][0] != 2 {
		t.Fatalf("pending writes not visible to Load: %v", got)
	}
}

func TestLoadSeesEveryStageAndReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Limits{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Load("nobody") != nil {
		t.Fatal("a host without writes has a record")
	}
	s.Put("h", "a", []byte("1"))
	if string(s.Load("h")["a"]) != "1" {
		t.Fatal("pending write not loaded")
	}
	s.Flush()
	s.Put("h", "b", []byte("2"))
	got := s.Load("h")
	if string(got["a"]) != "1" || string(got["b"]) != "2" {
		t.Fatalf("committed plus pending: %q", got)
	}
	if err := s.PutMeta("boot", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil { // Close commits b
		t.Fatal(err)
	}
	s2 := open(t, dir, Limits{})
	got = s2.Load("h")
	if string(got["a"]) != "1" || string(got["b"]) != "2" {
		t.Fatalf("after reopen: %q", got)
	}
	if m, ok, _ := s2.GetMeta("boot"); !ok || string(m) != "x" {
		t.Fatalf("meta after reopen: %q %v", m, ok)
	}
	if st := s2.Stats(); st.Hosts != 1 || st.Bytes == 0 {
		t.Fatalf("stats after reopen: %+v", st)
	}
}

func TestOpenHeldStoreFailsFast(t *testing.T) {
	dir := t.TempDir()
	open(t, dir, Limits{})
	_, err := Open(dir, Limits{}, nil)
	if err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second open: %v", err)
	}
	if err := Check(dir); err != nil {
		t.Fatalf("check of a store in use: %v", err)
	}
}

func TestConcurrentPutLoadFlush(t *testing.T) {
	s := open(t, t.TempDir(), Limits{Queue: 64})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				h := fmt.Sprint("h", (w*500+i)%50)
				s.Put(h, "k", []byte{byte(i)})
				s.Load(h)
				if i%50 == 0 {
					s.Flush()
				}
			}
		}()
	}
	wg.Wait()
	s.Flush()
	if st := s.Stats(); st.Hosts != 50 {
		t.Fatalf("hosts %d, want 50", st.Hosts)
	}
}

func TestSeedFile(t *testing.T) {
	cases := []struct {
		name    string
		prepare func(dir string)
		want    string // "" = a generated seed; otherwise an error substring
	}{
		{"generated", func(string) {}, ""},
		{"world readable", func(d string) { os.WriteFile(filepath.Join(d, SeedFile), []byte(strings.Repeat("a", 64)), 0o644) }, "mode"},
		{"too short", func(d string) { os.WriteFile(filepath.Join(d, SeedFile), []byte("abc\n"), 0o600) }, "shorter"},
		{"a directory", func(d string) { os.Mkdir(filepath.Join(d, SeedFile), 0o700) }, "regular"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			c.prepare(dir)
			seed, created, err := LoadSeed(dir, rand.Read)
			if c.want != "" {
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("err %v, want %q", err, c.want)
				}
				if Check(dir) == nil {
					t.Fatal("check accepted the bad seed file")
				}
				return
			}
			if err != nil || !created || len(seed) != 2*seedLen {
				t.Fatalf("seed %q created %v err %v", seed, created, err)
			}
			fi, _ := os.Stat(filepath.Join(dir, SeedFile))
			if fi.Mode().Perm() != 0o600 {
				t.Fatalf("seed file mode %#o", fi.Mode().Perm())
			}
			again, created, err := LoadSeed(dir, rand.Read)
			if err != nil || created || again != seed {
				t.Fatalf("second load: %q %v %v", again, created, err)
			}
			other, _, _ := LoadSeed(t.TempDir(), rand.Read)
			if other == seed {
				t.Fatal("two installs share a seed")
			}
			failing := func([]byte) (int, error) { return 0, errors.New("no entropy") }
			if _, _, err := LoadSeed(t.TempDir(), failing); err == nil {
				t.Fatal("seed generated without randomness")
			}
		})
	}
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	if err := Check(filepath.Join(dir, "new", "state")); err != nil {
		t.Fatalf("a directory run would create: %v", err)
	}
	f := filepath.Join(dir, "file")
	os.WriteFile(f, nil, 0o600)
	if Check(f) == nil || Check(filepath.Join(f, "sub")) == nil {
		t.Fatal("a file accepted as the state directory")
	}
	os.WriteFile(filepath.Join(dir, DBFile), []byte("not a database"), 0o600)
	if Check(dir) == nil {
		t.Fatal("a corrupt store accepted")
	}
}

// TestFormatRecorded: a new store records its format; a store of a newer format is refused
// with a message naming both formats, and left untouched.
func TestFormatRecorded(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Limits{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, err := bolt.Open(filepath.Join(dir, DBFile), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	db.View(func(tx *bolt.Tx) error {
		got = append(got, tx.Bucket(bucketMeta).Get(keyFormat)...)
		return nil
	})
	if f, _ := binary.Uvarint(got); f != Format {
		t.Fatalf("format record %x, want %d", got, Format)
	}
	db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyFormat, binary.AppendUvarint(nil, Format+1))
	})
	db.Close()
	_, err = Open(dir, Limits{}, nil)
	if err == nil || !strings.Contains(err.Error(), "newer icsnare (store format 2; this one reads format 1)") {
		t.Fatalf("Open of a newer store: %v", err)
	}
}
