// Package vfs is the per-host virtual filesystem FTP and TFTP (and any other protocol that
// serves files) share: an in-memory tree with Unix owner, permission and time metadata,
// bounded per host and, for the bytes attackers write, across all hosts. Paths are
// resolved lexically inside a jail, so no path can name anything outside it, and the real
// filesystem is never touched (see capture.go for the one directory uploads are copied to).
package vfs

import (
	"errors"
	"io/fs"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/icsnare/icsnare/protocols"
)

// Errors of the filesystem operations; callers map them to their protocol's replies.
var (
	ErrNotExist = errors.New("no such file or directory")
	ErrExist    = errors.New("file exists")
	ErrNotDir   = errors.New("not a directory")
	ErrIsDir    = errors.New("is a directory")
	ErrNotEmpty = errors.New("directory not empty")
	ErrOutside  = errors.New("path points outside the root directory")
	ErrInvalid  = errors.New("invalid path")
	ErrNoSpace  = errors.New("no space left on device")
	ErrRoot     = errors.New("operation not permitted on the root directory")
)

// Path bounds.
const (
	MaxPath      = 1024 // bytes of a path as given
	MaxComponent = 255  // bytes of one name
	MaxDepth     = 32   // directories below the root
)

// Limits bound one host's filesystem.
type Limits struct {
	MaxBytes    int64 // file content in bytes
	MaxNodes    int   // files and directories
	MaxFileSize int64 // one file
}

// DefaultLimits are the per-host bounds used by ForHost.
var DefaultLimits = Limits{MaxBytes: 16 << 20, MaxNodes: 4096, MaxFileSize: 8 << 20}

// Pool bounds the bytes written into filesystems (not seeded from the profile) across all
// hosts that share it.
type Pool struct {
	max  int64
	used atomic.Int64
}

// NewPool returns a pool of max bytes.
func NewPool(max int64) *Pool { return &Pool{max: max} }

// Used returns the bytes in use.
func (p *Pool) Used() int64 { return p.used.Load() }

// Take reserves n bytes; false (and nothing reserved) when the pool has no room.
func (p *Pool) Take(n int64) bool { return p.take(n) }

// Give returns n bytes taken before.
func (p *Pool) Give(n int64) { p.give(n) }

func (p *Pool) take(n int64) bool {
	if p == nil || n <= 0 {
		return true
	}
	if p.used.Add(n) > p.max {
		p.used.Add(-n)
		return false
	}
	return true
}

func (p *Pool) give(n int64) {
	if p != nil && n > 0 {
		p.used.Add(-n)
	}
}

// DefaultPool bounds what attackers write across every host of the process.
var DefaultPool = NewPool(256 << 20)

// InFlight bounds the upload bytes being received (not yet stored) across every host and
// protocol of the process, so many slow uploads cannot add up to unbounded memory.
var InFlight = NewPool(128 << 20)

// Meta is a node's Unix metadata.
type Meta struct {
	Perm     fs.FileMode // permission bits (0o777 at most)
	UID, GID int
	ModTime  time.Time
	ATime    time.Time
}

// Info describes a file or directory.
type Info struct {
	Name string
	Dir  bool
	Size int64
	Meta
}

type node struct {
	name     string
	dir      bool
	data     []byte // never modified once stored; replaced on write
	owned    int64  // bytes of data counted against the pool
	sha      string // hex SHA-256 of data for files clients wrote (their capture name)
	seeded   bool   // from the profile, not a client
	origin   string // a seeded file's path when it was seeded (it may have been renamed)
	meta     Meta
	children map[string]*node
}

func (n *node) info() Info {
	return Info{Name: n.name, Dir: n.dir, Size: int64(len(n.data)), Meta: n.meta}
}

// FS is one host's filesystem. It is safe for concurrent use.
type FS struct {
	mu     sync.RWMutex
	root   *node
	lim    Limits
	acct   *acct
	bytes  int64
	nodes  int
	seeded map[string]bool

	seeding bool            // inside SeedOnce: new nodes are the profile's
	tomb    map[string]bool // seeded paths clients removed or moved away
	save    func([]byte) bool
	saved   []byte // the manifest kept for the host (see persist.go)
	last    []byte // the manifest last handed to save
}

// acct is what a filesystem holds of its pool. It lives apart from the FS so that a
// filesystem dropped without Close (an evicted host) still gives its bytes back.
type acct struct {
	pool  *Pool
	owned atomic.Int64
}

func (a *acct) take(n int64) bool {
	if !a.pool.take(n) {
		return false
	}
	a.owned.Add(n)
	return true
}

func (a *acct) give(n int64) {
	a.pool.give(n)
	a.owned.Add(-n)
}

// New returns an empty filesystem (a root directory owned by uid 0, mode 0755). The bytes
// written into it count against pool until it is closed or garbage-collected.
func New(lim Limits, pool *Pool) *FS {
	now := time.Now()
	f := &FS{lim: lim, acct: &acct{pool: pool}, nodes: 1, seeded: map[string]bool{}, tomb: map[string]bool{},
		root: &node{name: "/", dir: true, children: map[string]*node{},
			meta: Meta{Perm: 0o755, ModTime: now, ATime: now}}}
	runtime.AddCleanup(f, func(a *acct) { a.pool.give(a.owned.Swap(0)) }, f.acct)
	return f
}

// stateKey is the Host.State key of a host's filesystem.
const stateKey = "vfs"

// ForHost returns the host's filesystem, creating it empty with DefaultLimits and
// DefaultPool on first use. Every protocol of the host sees the same one; what clients
// change in it is kept in the host's state (see persist.go).
func ForHost(h *protocols.Host) *FS {
	return h.State(stateKey, func() any {
		f := New(DefaultLimits, DefaultPool)
		if b, ok := h.Persisted(persistKey); ok {
			f.saved, f.last = b, b
		}
		f.save = func(b []byte) bool { return h.Persist(persistKey, b) }
		return f
	}).(*FS)
}

// SeedOnce runs fn on the filesystem the first time it is called with key (a protocol
// seeding its directory), so several protocols can each seed their part exactly once.
// Seeded content is not counted against the pool. Then what clients changed before the
// host was last evicted or the sensor restarted is put back (see persist.go), the files
// they wrote read by content from the capture stores.
func (f *FS) SeedOnce(key string, fn func(s *Seeder) error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.seeded[key] {
		return nil
	}
	f.seeded[key] = true
	f.seeding = true
	err := fn(&Seeder{f: f})
	f.seeding = false
	if err != nil {
		return err
	}
	f.restore(LoadCapture)
	return nil
}

// Seeder adds the profile's files; it is valid only inside SeedOnce.
type Seeder struct{ f *FS }

// Dir creates the directory p (and its parents) with meta.
func (s *Seeder) Dir(p string, meta Meta) error {
	parts, err := split(p)
	if err != nil {
		return err
	}
	_, err = s.f.mkdirAll(parts, meta, true)
	return err
}

// File stores data at p (creating parents with dirMeta). data is shared, not copied: it
// must not be modified afterwards (so one seed slice serves every host).
func (s *Seeder) File(p string, data []byte, meta Meta, dirMeta Meta) error {
	parts, err := split(p)
	if err != nil {
		return err
	}
	if len(parts) == 0 {
		return ErrRoot
	}
	dir, err := s.f.mkdirAll(parts[:len(parts)-1], dirMeta, false)
	if err != nil {
		return err
	}
	name := parts[len(parts)-1]
	if err := s.f.put(dir, name, data, meta, false); err != nil {
		return err
	}
	dir.children[name].origin = "/" + strings.Join(parts, "/")
	return nil
}

// SetMeta changes p's metadata; apply is given the current one.
func (s *Seeder) SetMeta(p string, recursive bool, apply func(m *Meta)) error {
	parts, err := split(p)
	if err != nil {
		return err
	}
	n, err := s.f.lookup(parts)
	if err != nil {
		return err
	}
	walk(n, recursive, apply)
	return nil
}

func walk(n *node, recursive bool, apply func(m *Meta)) {
	apply(&n.meta)
	if recursive && n.dir {
		for _, c := range n.children {
			walk(c, true, apply)
		}
	}
}

// split cleans an absolute or relative path against "/" and returns its components.
func split(p string) ([]string, error) {
	return resolve(nil, p)
}

// resolve applies p to the components of the directory base: "/" or "\" separate names,
// a leading separator starts from the root, "." is skipped and ".." goes up, failing with
// ErrOutside above the root. NUL, other control bytes and over-long paths are ErrInvalid.
func resolve(base []string, p string) ([]string, error) {
	if len(p) > MaxPath {
		return nil, ErrInvalid
	}
	for i := 0; i < len(p); i++ {
		if p[i] < 0x20 || p[i] == 0x7f {
			return nil, ErrInvalid
		}
	}
	p = strings.ReplaceAll(p, "\\", "/")
	var out []string
	if !strings.HasPrefix(p, "/") {
		out = append(out, base...)
	}
	for _, c := range strings.Split(p, "/") {
		switch c {
		case "", ".":
		case "..":
			if len(out) == 0 {
				return nil, ErrOutside
			}
			out = out[:len(out)-1]
		default:
			if len(c) > MaxComponent {
				return nil, ErrInvalid
			}
			out = append(out, c)
		}
		if len(out) > MaxDepth {
			return nil, ErrInvalid
		}
	}
	return out, nil
}

// Join resolves p against the jail-relative directory cwd and returns the clean
// jail-relative path ("/" or "/a/b"). It never leaves the jail: ".." above its root is
// ErrOutside.
func Join(cwd, p string) (string, error) {
	base, err := resolve(nil, cwd)
	if err != nil {
		return "", err
	}
	parts, err := resolve(base, p)
	if err != nil {
		return "", err
	}
	return "/" + strings.Join(parts, "/"), nil
}

// lookup returns the node at parts. Callers hold f.mu.
func (f *FS) lookup(parts []string) (*node, error) {
	n := f.root
	for _, c := range parts {
		if !n.dir {
			return nil, ErrNotDir
		}
		next, ok := n.children[c]
		if !ok {
			return nil, ErrNotExist
		}
		n = next
	}
	return n, nil
}

// parentOf returns the directory holding the last component of parts.
func (f *FS) parentOf(parts []string) (*node, string, error) {
	if len(parts) == 0 {
		return nil, "", ErrRoot
	}
	dir, err := f.lookup(parts[:len(parts)-1])
	if err != nil {
		return nil, "", err
	}
	if !dir.dir {
		return nil, "", ErrNotDir
	}
	return dir, parts[len(parts)-1], nil
}

func (f *FS) mkdirAll(parts []string, meta Meta, setLast bool) (*node, error) {
	n := f.root
	for i, c := range parts {
		next, ok := n.children[c]
		if !ok {
			if f.nodes >= f.lim.MaxNodes {
				return nil, ErrNoSpace
			}
			next = &node{name: c, dir: true, meta: meta, children: map[string]*node{}, seeded: f.seeding}
			n.children[c] = next
			f.nodes++
		} else if !next.dir {
			return nil, ErrNotDir
		} else if setLast && i == len(parts)-1 {
			next.meta = meta
		}
		n = next
	}
	return n, nil
}

// put stores data as name in dir, replacing a file of that name. owned counts the bytes
// against the pool.
func (f *FS) put(dir *node, name string, data []byte, meta Meta, owned bool) error {
	size := int64(len(data))
	if size > f.lim.MaxFileSize {
		return ErrNoSpace
	}
	old, exists := dir.children[name]
	if exists && old.dir {
		return ErrIsDir
	}
	var oldSize int64
	if exists {
		oldSize = int64(len(old.data))
	} else if f.nodes >= f.lim.MaxNodes {
		return ErrNoSpace
	}
	if f.bytes-oldSize+size > f.lim.MaxBytes {
		return ErrNoSpace
	}
	var take int64
	if owned {
		take = size
		if !f.acct.take(take) {
			return ErrNoSpace
		}
	}
	if exists {
		f.acct.give(old.owned)
	} else {
		f.nodes++
	}
	f.bytes += size - oldSize
	n := &node{name: name, data: data, owned: take, meta: meta, seeded: f.seeding}
	if owned {
		n.sha = hashHex(data)
	}
	if exists && old.seeded {
		f.tomb[old.origin] = true
	}
	dir.children[name] = n
	return nil
}

// vacate records that the profile's nodes at and below n (now at p) left their seeded
// places. Callers hold f.mu.
func (f *FS) vacate(n *node, p string) {
	if !n.seeded {
		return
	}
	if n.dir {
		f.tomb[p] = true
		for name, c := range n.children {
			f.vacate(c, strings.TrimSuffix(p, "/")+"/"+name)
		}
		return
	}
	if n.origin != "" {
		f.tomb[n.origin] = true
	}
}

// release gives back what n and everything below it hold. Callers hold f.mu.
func (f *FS) release(n *node) {
	f.nodes--
	f.bytes -= int64(len(n.data))
	f.acct.give(n.owned)
	for _, c := range n.children {
		f.release(c)
	}
}

// Usage returns the bytes and nodes in use.
func (f *FS) Usage() (bytes int64, nodes int) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.bytes, f.nodes
}

// Close gives the filesystem's written bytes back to its pool (an evicted host).
func (f *FS) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.root.children {
		f.release(c)
	}
	f.root.children = map[string]*node{}
}

// View is a filesystem seen from a jail directory: every path a client gives is resolved
// inside it. The zero View is unusable; make one with FS.View.
type View struct {
	fs   *FS
	root []string
}

// View returns the filesystem jailed at dir (created on first write if missing).
func (f *FS) View(dir string) (*View, error) {
	parts, err := split(dir)
	if err != nil {
		return nil, err
	}
	return &View{fs: f, root: parts}, nil
}

// FS returns the underlying filesystem.
func (v *View) FS() *FS { return v.fs }

// abs maps a jail-relative path (resolved with Join) to full components.
func (v *View) abs(p string) ([]string, error) {
	rel, err := resolve(nil, p)
	if err != nil {
		return nil, err
	}
	if len(v.root)+len(rel) > MaxDepth {
		return nil, ErrInvalid
	}
	return append(append([]string(nil), v.root...), rel...), nil
}

// Stat describes p. The jail's root is always a directory, even before it exists.
func (v *View) Stat(p string) (Info, error) {
	parts, err := v.abs(p)
	if err != nil {
		return Info{}, err
	}
	v.fs.mu.RLock()
	defer v.fs.mu.RUnlock()
	n, err := v.fs.lookup(parts)
	if err != nil {
		if len(parts) == len(v.root) {
			return Info{Name: "/", Dir: true, Meta: v.fs.root.meta}, nil
		}
		return Info{}, err
	}
	inf := n.info()
	if len(parts) == len(v.root) {
		inf.Name = "/"
	}
	return inf, nil
}

// ReadDir lists the directory p, sorted by name. A file lists as itself.
func (v *View) ReadDir(p string) ([]Info, error) {
	parts, err := v.abs(p)
	if err != nil {
		return nil, err
	}
	v.fs.mu.RLock()
	defer v.fs.mu.RUnlock()
	n, err := v.fs.lookup(parts)
	if err != nil {
		if len(parts) == len(v.root) && errors.Is(err, ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	if !n.dir {
		return []Info{n.info()}, nil
	}
	out := make([]Info, 0, len(n.children))
	for _, c := range n.children {
		out = append(out, c.info())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// ReadFile returns p's content, which the caller must not modify, and its metadata.
func (v *View) ReadFile(p string) ([]byte, Info, error) {
	parts, err := v.abs(p)
	if err != nil {
		return nil, Info{}, err
	}
	v.fs.mu.Lock()
	defer v.fs.mu.Unlock()
	n, err := v.fs.lookup(parts)
	if err != nil {
		return nil, Info{}, err
	}
	if n.dir {
		return nil, Info{}, ErrIsDir
	}
	n.meta.ATime = time.Now()
	return n.data, n.info(), nil
}

// WriteFile stores data at p, replacing a file there (or appending to it), creating the
// jail's root and, with mkParents, missing parent directories (TFTP's habit) with meta.
// data is kept, not copied. Over a limit it fails with ErrNoSpace and changes nothing.
func (v *View) WriteFile(p string, data []byte, appendTo, mkParents bool, meta Meta) error {
	parts, err := v.abs(p)
	if err != nil {
		return err
	}
	if len(parts) == len(v.root) {
		return ErrIsDir
	}
	v.fs.mu.Lock()
	defer v.fs.mu.Unlock()
	var dir *node
	if mkParents {
		dm := meta
		dm.Perm |= (dm.Perm & 0o444) >> 2 // directories searchable where readable
		dir, err = v.fs.mkdirAll(parts[:len(parts)-1], dm, false)
	} else {
		if _, err = v.fs.mkdirAll(v.root, Meta{Perm: 0o755, ModTime: meta.ModTime, ATime: meta.ATime}, false); err != nil {
			return err
		}
		dir, _, err = v.fs.parentOf(parts)
	}
	if err != nil {
		return err
	}
	name := parts[len(parts)-1]
	if appendTo {
		if old, ok := dir.children[name]; ok && !old.dir {
			if int64(len(old.data))+int64(len(data)) > v.fs.lim.MaxFileSize {
				return ErrNoSpace
			}
			joined := make([]byte, 0, len(old.data)+len(data))
			data = append(append(joined, old.data...), data...)
			meta.Perm, meta.UID, meta.GID = old.meta.Perm, old.meta.UID, old.meta.GID
		}
	}
	if err := v.fs.put(dir, name, data, meta, true); err != nil {
		return err
	}
	v.fs.persist()
	return nil
}

// Mkdir creates the directory p; its parent must exist (the jail's root is created).
func (v *View) Mkdir(p string, meta Meta) error {
	parts, err := v.abs(p)
	if err != nil {
		return err
	}
	if len(parts) == len(v.root) {
		return ErrExist
	}
	v.fs.mu.Lock()
	defer v.fs.mu.Unlock()
	if _, err := v.fs.mkdirAll(v.root, Meta{Perm: 0o755, ModTime: meta.ModTime, ATime: meta.ATime}, false); err != nil {
		return err
	}
	dir, name, err := v.fs.parentOf(parts)
	if err != nil {
		return err
	}
	if _, ok := dir.children[name]; ok {
		return ErrExist
	}
	if v.fs.nodes >= v.fs.lim.MaxNodes {
		return ErrNoSpace
	}
	dir.children[name] = &node{name: name, dir: true, meta: meta, children: map[string]*node{}}
	v.fs.nodes++
	v.fs.persist()
	return nil
}

// Remove deletes the file p (dir false) or the empty directory p (dir true).
func (v *View) Remove(p string, dir bool) error {
	parts, err := v.abs(p)
	if err != nil {
		return err
	}
	if len(parts) == len(v.root) {
		return ErrRoot
	}
	v.fs.mu.Lock()
	defer v.fs.mu.Unlock()
	parent, name, err := v.fs.parentOf(parts)
	if err != nil {
		return err
	}
	n, ok := parent.children[name]
	switch {
	case !ok:
		return ErrNotExist
	case dir && !n.dir:
		return ErrNotDir
	case !dir && n.dir:
		return ErrIsDir
	case dir && len(n.children) > 0:
		return ErrNotEmpty
	}
	delete(parent.children, name)
	v.fs.vacate(n, "/"+strings.Join(parts, "/"))
	v.fs.release(n)
	v.fs.persist()
	return nil
}

// Rename moves from to to, replacing a file at to. A directory cannot move below itself.
func (v *View) Rename(from, to string) error {
	src, err := v.abs(from)
	if err != nil {
		return err
	}
	dst, err := v.abs(to)
	if err != nil {
		return err
	}
	if len(src) == len(v.root) || len(dst) == len(v.root) {
		return ErrRoot
	}
	if len(dst) > len(src) && strings.Join(dst[:len(src)], "/") == strings.Join(src, "/") {
		return ErrInvalid
	}
	v.fs.mu.Lock()
	defer v.fs.mu.Unlock()
	sp, sname, err := v.fs.parentOf(src)
	if err != nil {
		return err
	}
	n, ok := sp.children[sname]
	if !ok {
		return ErrNotExist
	}
	dp, dname, err := v.fs.parentOf(dst)
	if err != nil {
		return err
	}
	if old, ok := dp.children[dname]; ok {
		if old == n {
			return nil
		}
		if old.dir || n.dir {
			return ErrExist
		}
		v.fs.vacate(old, "/"+strings.Join(dst, "/"))
		v.fs.release(old)
	}
	delete(sp.children, sname)
	v.fs.vacate(n, "/"+strings.Join(src, "/"))
	n.name = dname
	dp.children[dname] = n
	v.fs.persist()
	return nil
}

// SetMeta changes p's metadata; apply is given the current one.
func (v *View) SetMeta(p string, apply func(m *Meta)) error {
	parts, err := v.abs(p)
	if err != nil {
		return err
	}
	v.fs.mu.Lock()
	defer v.fs.mu.Unlock()
	n, err := v.fs.lookup(parts)
	if err != nil {
		return err
	}
	apply(&n.meta)
	v.fs.persist()
	return nil
}
