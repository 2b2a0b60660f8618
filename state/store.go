// Package state keeps what attackers changed on emulated hosts (databus writes, an S7 CPU's
// mode …) and the deployment's seed and boot record in a state directory, so host eviction
// and sensor restarts lose nothing.
//
// The store is bbolt (go.etcd.io/bbolt): an embedded, pure-Go B+tree in one file with
// ACID transactions, no cgo and no background compaction to tune. Each host's record is
// small and read whole, the sensor is the only writer and reads must never wait for a
// write: bbolt's single writer plus lock-free MVCC readers over an mmap fits that exactly.
// (An LSM store such as pebble or badger brings compaction threads, several files and far
// more code for write rates a honeypot does not see; SQLite needs cgo or a translated C
// library.) Writes never touch the disk on the caller's goroutine: Put queues them in a
// bounded map and one goroutine commits them in batches.
//
// Layout: bucket "hosts" maps a host id (its address and profile) to one record holding
// every kept key of that host; bucket "meta" holds the deployment's records ("boot").
// Every record, the number of keys per host, the total size and the queue are bounded.
package state

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// DBFile is the store's file name inside the state directory.
const DBFile = "hosts.db"

var (
	bucketHosts = []byte("hosts")
	bucketMeta  = []byte("meta")
	// keyFormat in bucket "meta" holds the layout version the store was written in.
	keyFormat = []byte("format")
)

// Format is the layout version this icsnare writes and reads. Stores written before the
// version was recorded are format 1. A later icsnare that changes the layout migrates
// older formats on Open; an older icsnare refuses a newer format rather than misread it.
const Format = 1

// Limits bound the store. Zero fields take the defaults.
type Limits struct {
	HostBytes  int   // one host's record: keys and values together
	HostKeys   int   // keys kept per host
	TotalBytes int64 // every record together (the file is at most about twice this)
	Queue      int   // writes waiting for the disk
	Interval   time.Duration
}

// DefaultLimits are the bounds used for zero fields.
var DefaultLimits = Limits{HostBytes: 64 << 10, HostKeys: 64, TotalBytes: 256 << 20, Queue: 8192, Interval: 200 * time.Millisecond}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	if l.HostBytes <= 0 {
		l.HostBytes = d.HostBytes
	}
	if l.HostKeys <= 0 {
		l.HostKeys = d.HostKeys
	}
	if l.TotalBytes <= 0 {
		l.TotalBytes = d.TotalBytes
	}
	if l.Queue <= 0 {
		l.Queue = d.Queue
	}
	if l.Interval <= 0 {
		l.Interval = d.Interval
	}
	return l
}

// Refusal reasons, the values of the refused-writes metric's label.
const (
	RefusedQueue = "queue_full" // the disk is behind: more writes waiting than Limits.Queue
	RefusedHost  = "host_full"  // the host's record would pass HostBytes or HostKeys
	RefusedStore = "store_full" // every record together would pass TotalBytes
)

// Reasons lists the refusal reasons.
var Reasons = []string{RefusedQueue, RefusedHost, RefusedStore}

// recordOverhead is what the accounting charges per kept key besides its bytes.
const recordOverhead = 8

// storeShards splits the queue and the index of hosts with records, so creating hosts on
// many goroutines never meets on one lock.
const storeShards = 64

type storeShard struct {
	mu       sync.Mutex
	pending  map[string]map[string][]byte // host → key → value, not yet committed
	inflight map[string]map[string][]byte // being committed now
	has      map[string]struct{}          // hosts with a committed record
	_        [32]byte
}

func (s *Store) shard(host string) *storeShard {
	h := uint32(2166136261)
	for i := 0; i < len(host); i++ {
		h = (h ^ uint32(host[i])) * 16777619
	}
	return &s.shards[h%storeShards]
}

// Store is the host state store. Its methods are safe for concurrent use.
type Store struct {
	db  *bolt.DB
	lim Limits
	log *slog.Logger

	shards   [storeShards]storeShard
	npending atomic.Int64 // queued writes in every shard
	flushMu  sync.Mutex   // one commit at a time
	wake     chan struct{}

	total     atomic.Int64 // bytes of committed records
	hosts     atomic.Int64
	written   atomic.Int64
	refused   [3]atomic.Int64
	lastLog   [3]atomic.Int64 // unix nanoseconds of the last refusal log line per reason
	loggedAt  [3]atomic.Int64 // refusals counted when that line was written
	runOnce   sync.Once
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// Open opens (creating) the store in dir. It fails at once, rather than waiting, when
// another process holds it.
func Open(dir string, lim Limits, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	path := filepath.Join(dir, DBFile)
	lim = lim.withDefaults()
	// Map the file's whole bounded size at once: bbolt then never remaps while a reader
	// (a host being regenerated on the packet path) holds the map. Address space, not memory.
	mmap := int(min(2*lim.TotalBytes+1<<20, 4<<30))
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 500 * time.Millisecond, InitialMmapSize: mmap})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("state: %s is in use by another process", path)
		}
		return nil, fmt.Errorf("state: open %s: %w", path, err)
	}
	s := &Store{db: db, lim: lim, log: log, wake: make(chan struct{}, 1), done: make(chan struct{})}
	for i := range s.shards {
		s.shards[i].pending = map[string]map[string][]byte{}
		s.shards[i].has = map[string]struct{}{}
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketHosts, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		switch v := meta.Get(keyFormat); {
		case v == nil:
			if err := meta.Put(keyFormat, binary.AppendUvarint(nil, Format)); err != nil {
				return err
			}
		default:
			f, n := binary.Uvarint(v)
			if n <= 0 {
				return fmt.Errorf("unreadable format record %x", v)
			}
			if f > Format {
				return fmt.Errorf("written by a newer icsnare (store format %d; this one reads format %d): run that version, or move the directory away to start afresh (identities come from the seed file, keep it)", f, Format)
			}
		}
		var total, hosts int64
		err := tx.Bucket(bucketHosts).ForEach(func(k, v []byte) error {
			total += int64(len(k) + len(v))
			hosts++
			s.shard(string(k)).has[string(k)] = struct{}{}
			return nil
		})
		s.total.Store(total)
		s.hosts.Store(hosts)
		return err
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("state: %s: %w", path, err)
	}
	return s, nil
}

// Put queues value under (host, key) and returns at once. It reports false, counting the
// refusal, when the queue is full or the value alone passes the host bound. Put keeps
// value: the caller must not change it afterwards.
func (s *Store) Put(host, key string, value []byte) bool {
	if len(key)+len(value)+recordOverhead > s.lim.HostBytes {
		s.refuse(RefusedHost)
		return false
	}
	sh := s.shard(host)
	sh.mu.Lock()
	m := sh.pending[host]
	if _, dup := m[key]; !dup {
		if s.npending.Add(1) > int64(s.lim.Queue) {
			s.npending.Add(-1)
			sh.mu.Unlock()
			s.refuse(RefusedQueue)
			return false
		}
		if m == nil {
			m = map[string][]byte{}
			sh.pending[host] = m
		}
	}
	m[key] = value
	sh.mu.Unlock()
	if s.npending.Load() >= int64(s.lim.Queue/2) {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	return true
}

// Load returns every key kept for host, including writes not yet on disk, or nil. A host
// without a record costs a map lookup, never a disk read.
func (s *Store) Load(host string) map[string][]byte {
	sh := s.shard(host)
	sh.mu.Lock()
	fl, pe := sh.inflight[host], sh.pending[host]
	_, has := sh.has[host]
	var out map[string][]byte
	if has || fl != nil || pe != nil {
		out = make(map[string][]byte, len(fl)+len(pe))
	}
	// copy under the lock: the flusher merges these maps into records later
	for k, v := range fl {
		out[k] = v
	}
	for k, v := range pe {
		out[k] = v
	}
	sh.mu.Unlock()
	if !has {
		return out
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		rec, err := decodeRecord(tx.Bucket(bucketHosts).Get([]byte(host)))
		for k, v := range rec {
			if _, newer := out[k]; !newer {
				out[k] = v
			}
		}
		return err
	})
	if err != nil {
		s.log.Warn("state: host record unreadable; serving the host as generated", "err", err)
	}
	return out
}

// Run commits queued writes every Limits.Interval (sooner when half the queue is used)
// until ctx is done, then commits what is left. Call Close after Run returns.
func (s *Store) Run(ctx context.Context) {
	s.runOnce.Do(func() {
		defer close(s.done)
		t := time.NewTicker(s.lim.Interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				s.Flush()
				return
			case <-t.C:
			case <-s.wake:
			}
			s.Flush()
		}
	})
}

// Flush commits every queued write now. Refused writes are counted and logged.
func (s *Store) Flush() {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	batch := map[string]map[string][]byte{}
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		if len(sh.pending) > 0 {
			n := 0
			for h, m := range sh.pending {
				batch[h] = m
				n += len(m)
			}
			sh.inflight, sh.pending = sh.pending, map[string]map[string][]byte{}
			s.npending.Add(int64(-n))
		}
		sh.mu.Unlock()
	}
	if len(batch) == 0 {
		return
	}

	var refused [3]int64
	committed := make([]string, 0, len(batch))
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketHosts)
		total := s.total.Load()
		hosts := make([]string, 0, len(batch))
		for h := range batch {
			hosts = append(hosts, h)
		}
		sort.Strings(hosts) // sequential keys: fewer pages touched
		for _, h := range hosts {
			old := b.Get([]byte(h))
			rec, err := decodeRecord(old)
			if err != nil {
				s.log.Warn("state: replacing an unreadable host record", "err", err)
				rec = map[string][]byte{}
			}
			size := int64(recordSize(rec))
			changed := false
			for k, v := range batch[h] {
				ov, had := rec[k]
				delta := int64(len(v) - len(ov))
				if !had {
					delta += int64(len(k) + recordOverhead)
					if len(rec) >= s.lim.HostKeys {
						refused[1]++
						continue
					}
				}
				if size+delta > int64(s.lim.HostBytes) {
					refused[1]++
					continue
				}
				if delta > 0 && total+delta+int64(len(h)) > s.lim.TotalBytes {
					refused[2]++
					continue
				}
				rec[k], size, total, changed = v, size+delta, total+delta, true
			}
			if !changed {
				continue
			}
			if old == nil {
				total += int64(len(h))
			}
			if err := b.Put([]byte(h), encodeRecord(rec)); err != nil {
				return err
			}
			committed = append(committed, h)
		}
		s.total.Store(total)
		return nil
	})
	if err == nil {
		for _, h := range committed {
			sh := s.shard(h)
			sh.mu.Lock()
			if _, had := sh.has[h]; !had {
				sh.has[h] = struct{}{}
				s.hosts.Add(1)
			}
			sh.mu.Unlock()
		}
	}
	for i := range s.shards { // only now: Load saw these writes in inflight until they were on disk
		sh := &s.shards[i]
		sh.mu.Lock()
		sh.inflight = nil
		sh.mu.Unlock()
	}
	if err != nil {
		// The disk failed (full, read-only): these writes stay in memory only.
		n := int64(0)
		for _, m := range batch {
			n += int64(len(m))
		}
		refused = [3]int64{0, 0, n}
		s.log.Error("state: commit failed; writes kept in memory only", "writes", n, "err", err)
	}
	var n int64
	for _, m := range batch {
		n += int64(len(m))
	}
	s.written.Add(n - refused[1] - refused[2])
	for i, c := range refused {
		if c > 0 {
			s.refuseN(Reasons[i], c)
		}
	}
}

// Close commits what is queued and closes the file. Stop Run first (cancel its context).
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.Flush()
		s.closeErr = s.db.Close()
	})
	return s.closeErr
}

// Wait returns when Run has returned.
func (s *Store) Wait() { <-s.done }

func (s *Store) refuse(reason string) { s.refuseN(reason, 1) }

// refuseN counts refusals and logs at most one line per reason every ten seconds.
func (s *Store) refuseN(reason string, n int64) {
	i := 0
	for i < len(Reasons) && Reasons[i] != reason {
		i++
	}
	total := s.refused[i].Add(n)
	now := time.Now().UnixNano()
	last := s.lastLog[i].Load()
	if now-last < int64(10*time.Second) || !s.lastLog[i].CompareAndSwap(last, now) {
		return
	}
	since := total - s.loggedAt[i].Swap(total)
	s.log.Warn("state: writes refused; attackers' changes past the bound are not kept",
		"reason", reason, "refused", since, "refused_total", total,
		"host_bytes", s.lim.HostBytes, "host_keys", s.lim.HostKeys, "total_bytes", s.lim.TotalBytes)
}

// Stats is what the store counts, for metrics.
type Stats struct {
	Bytes   int64            // committed record bytes
	Hosts   int64            // hosts with a record
	Written int64            // writes committed
	Refused map[string]int64 // writes refused, by reason
}

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	st := Stats{Bytes: s.total.Load(), Hosts: s.hosts.Load(), Written: s.written.Load(), Refused: map[string]int64{}}
	for i, r := range Reasons {
		st.Refused[r] = s.refused[i].Load()
	}
	return st
}

// Refused returns how many writes were refused for reason.
func (s *Store) Refused(reason string) int64 {
	for i, r := range Reasons {
		if r == reason {
			return s.refused[i].Load()
		}
	}
	return 0
}

// GetMeta returns a deployment record (synchronously; for start-up).
func (s *Store) GetMeta(key string) ([]byte, bool, error) {
	var out []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get([]byte(key)); v != nil {
			out = append([]byte(nil), v...)
		}
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("state: read %s: %w", key, err)
	}
	return out, out != nil, nil
}

// PutMeta writes a deployment record and waits for the disk (for start-up).
func (s *Store) PutMeta(key string, value []byte) error {
	if len(value) > 4096 {
		return fmt.Errorf("state: record %s: %d bytes is too big", key, len(value))
	}
	err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put([]byte(key), value) })
	if err != nil {
		return fmt.Errorf("state: write %s: %w", key, err)
	}
	return nil
}

// recordSize is the accounted size of a record: what encodeRecord writes, roughly.
func recordSize(rec map[string][]byte) int {
	n := 0
	for k, v := range rec {
		n += len(k) + len(v) + recordOverhead
	}
	return n
}

// encodeRecord writes a host's keys: count, then (key length, key, value length, value),
// keys sorted so equal records encode equally.
func encodeRecord(rec map[string][]byte) []byte {
	keys := make([]string, 0, len(rec))
	for k := range rec {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b := binary.AppendUvarint(make([]byte, 0, recordSize(rec)+4), uint64(len(keys)))
	for _, k := range keys {
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
		b = binary.AppendUvarint(b, uint64(len(rec[k])))
		b = append(b, rec[k]...)
	}
	return b
}

var errRecord = errors.New("state: corrupt host record")

// decodeRecord reads encodeRecord's output, copying out of b (bbolt's memory is valid only
// during its transaction). nil decodes to an empty record.
func decodeRecord(b []byte) (map[string][]byte, error) {
	rec := map[string][]byte{}
	if b == nil {
		return rec, nil
	}
	n, m := binary.Uvarint(b)
	if m <= 0 || n > uint64(len(b)) {
		return rec, errRecord
	}
	b = b[m:]
	next := func() ([]byte, bool) {
		l, m := binary.Uvarint(b)
		if m <= 0 || l > uint64(len(b)-m) {
			return nil, false
		}
		v := b[m : m+int(l)]
		b = b[m+int(l):]
		return v, true
	}
	for range n {
		k, ok1 := next()
		v, ok2 := next()
		if !ok1 || !ok2 {
			return rec, errRecord
		}
		rec[string(k)] = append([]byte(nil), v...)
	}
	return rec, nil
}

// SeedFile is the deployment seed's file name inside the state directory.
const SeedFile = "seed"

// seedLen is the length of a generated seed in bytes (written as hex).
const seedLen = 32

// LoadSeed returns the deployment seed kept in dir, generating and writing one (mode 0600)
// on first use; created reports that. A seed file readable by group or others is an error:
// whoever reads it can tell the emulated hosts from real devices.
func LoadSeed(dir string, rnd func([]byte) (int, error)) (seed string, created bool, err error) {
	path := filepath.Join(dir, SeedFile)
	if seed, err := ReadSeed(dir); err == nil {
		return seed, false, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", false, err
	}
	buf := make([]byte, seedLen)
	if _, err := rnd(buf); err != nil {
		return "", false, fmt.Errorf("state: generate seed: %w", err)
	}
	seed = fmt.Sprintf("%x", buf)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", false, fmt.Errorf("state: create seed: %w", err)
	}
	_, err = f.WriteString(seed + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return "", false, fmt.Errorf("state: write seed: %w", err)
	}
	return seed, true, nil
}

// ReadSeed reads the seed file in dir and checks its mode and form.
func ReadSeed(dir string) (string, error) {
	path := filepath.Join(dir, SeedFile)
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("state: seed: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("state: seed: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("state: %s is not a regular file", path)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("state: %s has mode %#o; it must be readable by its owner only (chmod 600)", path, fi.Mode().Perm())
	}
	buf := make([]byte, 256)
	n, err := f.Read(buf)
	if err != nil || n == len(buf) {
		return "", fmt.Errorf("state: %s: not a seed file", path)
	}
	seed := string(buf[:n])
	for len(seed) > 0 && (seed[len(seed)-1] == '\n' || seed[len(seed)-1] == '\r' || seed[len(seed)-1] == ' ') {
		seed = seed[:len(seed)-1]
	}
	if len(seed) < 16 {
		return "", fmt.Errorf("state: %s: seed shorter than 16 characters", path)
	}
	return seed, nil
}

// Check validates a state directory without changing it: a directory (or one that can be
// created), a well-formed private seed file if there is one, and a readable store. A store
// held by a running sensor is fine.
func Check(dir string) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, os.ErrNotExist) {
		parent := filepath.Dir(filepath.Clean(dir))
		for {
			pfi, perr := os.Stat(parent)
			if perr == nil {
				if !pfi.IsDir() {
					return fmt.Errorf("state: %s: %s is not a directory", dir, parent)
				}
				return nil // run creates it
			}
			if parent == filepath.Dir(parent) {
				return fmt.Errorf("state: %s: %w", dir, perr)
			}
			parent = filepath.Dir(parent)
		}
	}
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("state: %s is not a directory", dir)
	}
	if _, err := ReadSeed(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	path := filepath.Join(dir, DBFile)
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("state: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 200 * time.Millisecond})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil // a running sensor holds it
	}
	if err != nil {
		return fmt.Errorf("state: %s: %w", path, err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketHosts) == nil {
			return fmt.Errorf("no %q bucket", bucketHosts)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("state: %s: %w", path, err)
	}
	return nil
}
