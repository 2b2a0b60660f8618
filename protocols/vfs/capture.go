package vfs

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
)

// ErrQuota is returned by Store.Save when the source's or the store's quota is spent: the
// device answers "disk full".
var ErrQuota = errors.New("capture quota exceeded")

// Quotas bound a capture store.
type Quotas struct {
	Total     int64 // bytes in the directory
	PerSource int64 // bytes from one source address
	Sources   int   // source addresses tracked; past that, new sources are refused
}

// DefaultQuotas are used where the configuration sets none.
var DefaultQuotas = Quotas{Total: 1 << 30, PerSource: 64 << 20, Sources: 65536}

// Capture is one stored upload.
type Capture struct {
	SHA256    string // hex
	Size      int64
	Path      string // the file in the capture directory; "" when the store keeps no files
	Duplicate bool   // the same content was captured before (not counted again)
}

// Store keeps uploaded files in one directory, each named by the hex SHA-256 of its
// content, within quotas per source and in total. A Store with no directory only hashes
// and counts. It is safe for concurrent use.
type Store struct {
	dir string
	q   Quotas

	warned atomic.Bool

	mu        sync.Mutex
	total     int64
	perSource map[netip.Addr]int64
	known     map[string]bool
}

var (
	storesMu sync.Mutex
	stores   = map[string]*Store{}
)

// OpenStore returns the store for dir, shared by every protocol and profile that names the
// same directory (so they share its quotas). The files already in it count against the
// total. The directory is created (mode 0700) on the first upload, so after the sensor has
// dropped its privileges: it belongs to the sensor's user.
func OpenStore(dir string, q Quotas) (*Store, error) {
	key := dir
	if dir != "" {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return nil, fmt.Errorf("capture directory %s: %w", dir, err)
		}
		key = abs
	}
	storesMu.Lock()
	defer storesMu.Unlock()
	if s, ok := stores[key]; ok {
		return s, nil
	}
	s := &Store{dir: key, q: q, perSource: map[netip.Addr]int64{}, known: map[string]bool{}}
	if key != "" {
		ents, err := os.ReadDir(key)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("capture directory: %w", err)
		}
		for _, e := range ents {
			if len(e.Name()) != 64 || !e.Type().IsRegular() {
				continue
			}
			if inf, err := e.Info(); err == nil {
				s.total += inf.Size()
				s.known[e.Name()] = true
			}
		}
	}
	stores[key] = s
	return s, nil
}

// FirstFailure reports true once per store: callers log the first failure to write a
// capture (a full or read-only disk) and count the rest, so a broken disk cannot flood the log.
func (s *Store) FirstFailure() bool { return !s.warned.Swap(true) }

// Dir returns the capture directory ("" when none).
func (s *Store) Dir() string { return s.dir }

// Allowed reports whether src may still upload at least one byte.
func (s *Store) Allowed(src netip.Addr) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, tracked := s.perSource[src]
	if !tracked && len(s.perSource) >= s.q.Sources {
		return false
	}
	return s.perSource[src] < s.q.PerSource && s.total < s.q.Total
}

// Save stores data uploaded by src. Over a quota it returns ErrQuota and stores nothing.
func (s *Store) Save(src netip.Addr, data []byte) (Capture, error) {
	sum := sha256.Sum256(data)
	c := Capture{SHA256: hex.EncodeToString(sum[:]), Size: int64(len(data))}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.known[c.SHA256] {
		c.Duplicate = true
		if s.dir != "" {
			c.Path = filepath.Join(s.dir, c.SHA256)
		}
		return c, nil
	}
	_, tracked := s.perSource[src]
	if (!tracked && len(s.perSource) >= s.q.Sources) ||
		s.perSource[src]+c.Size > s.q.PerSource || s.total+c.Size > s.q.Total {
		return c, ErrQuota
	}
	if s.dir != "" {
		c.Path = filepath.Join(s.dir, c.SHA256)
		if err := os.MkdirAll(s.dir, 0o700); err != nil {
			return c, fmt.Errorf("capture directory: %w", err)
		}
		if err := writeNew(s.dir, c.Path, data); err != nil {
			return c, err
		}
	}
	s.known[c.SHA256] = true
	s.perSource[src] += c.Size
	s.total += c.Size
	return c, nil
}

// Load returns the captured content named sha (hex SHA-256), checked against its name.
func (s *Store) Load(sha string) ([]byte, bool) {
	if s.dir == "" || len(sha) != 64 || strings.Trim(sha, "0123456789abcdef") != "" {
		return nil, false
	}
	f, err := os.Open(filepath.Join(s.dir, sha))
	if err != nil {
		return nil, false
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, DefaultLimits.MaxFileSize+1))
	if err != nil || int64(len(b)) > DefaultLimits.MaxFileSize || hashHex(b) != sha {
		return nil, false
	}
	return b, true
}

// LoadCapture finds the content named sha in any capture store of the process.
func LoadCapture(sha string) ([]byte, bool) {
	storesMu.Lock()
	list := make([]*Store, 0, len(stores))
	for _, s := range stores {
		list = append(list, s)
	}
	storesMu.Unlock()
	for _, s := range list {
		if b, ok := s.Load(sha); ok {
			return b, true
		}
	}
	return nil, false
}

// writeNew writes data to a temporary file in dir and renames it to path.
func writeNew(dir, path string, data []byte) error {
	f, err := os.CreateTemp(dir, ".upload-*")
	if err != nil {
		return fmt.Errorf("capture: %w", err)
	}
	_, werr := f.Write(data)
	cerr := f.Close()
	if werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(f.Name(), path)
	}
	if werr != nil {
		os.Remove(f.Name())
		return fmt.Errorf("capture: %w", werr)
	}
	return nil
}
