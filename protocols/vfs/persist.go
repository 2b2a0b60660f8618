package vfs

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"sort"
	"strings"
	"time"
)

// What clients change in a host's filesystem outlives the host's eviction and the sensor's
// restarts as a manifest in the host's state (Host.Persist): the files they wrote by
// content hash (the content itself is the capture store's file of that name), the
// directories they made, the profile's files they removed and where they moved others.
// Permission changes of the profile's files are not kept.

// persistKey is the host-state key of the manifest.
const persistKey = "vfs.manifest"

// maxManifest bounds the manifest to a fair share of the host's state record (64 KiB for
// every protocol together by default); past it the latest changes live in memory only.
const maxManifest = 16 << 10

// Entry kinds.
const (
	kindCopy = "c" // a profile file moved: P holds the content seeded at O
	kindTomb = "x" // a profile path removed (or moved away)
	kindDir  = "d" // a directory a client made
	kindFile = "f" // a file a client wrote, content S
)

type entry struct {
	K string      `json:"k"`
	P string      `json:"p"`
	S string      `json:"s,omitempty"`
	O string      `json:"o,omitempty"`
	M fs.FileMode `json:"m,omitempty"`
	U int         `json:"u,omitempty"`
	G int         `json:"g,omitempty"`
	T int64       `json:"t,omitempty"` // mtime, unix seconds
}

func hashHex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// manifest lists the client changes, deterministically. Callers hold f.mu.
func (f *FS) manifest() []byte {
	var out []entry
	var walk func(n *node, p string)
	walk = func(n *node, p string) {
		e := entry{P: p, M: n.meta.Perm, U: n.meta.UID, G: n.meta.GID, T: n.meta.ModTime.Unix()}
		switch {
		case n.dir && !n.seeded && p != "/":
			e.K = kindDir
			out = append(out, e)
		case !n.dir && n.sha != "":
			e.K, e.S = kindFile, n.sha
			out = append(out, e)
		case !n.dir && n.seeded && n.origin != "" && n.origin != p:
			e.K, e.O = kindCopy, n.origin
			out = append(out, e)
		}
		names := make([]string, 0, len(n.children))
		for c := range n.children {
			names = append(names, c)
		}
		sort.Strings(names)
		for _, c := range names {
			walk(n.children[c], strings.TrimSuffix(p, "/")+"/"+c)
		}
	}
	walk(f.root, "/")
	tombs := make([]string, 0, len(f.tomb))
	for p := range f.tomb {
		tombs = append(tombs, p)
	}
	sort.Strings(tombs)
	for _, p := range tombs {
		out = append(out, entry{K: kindTomb, P: p})
	}
	if len(out) == 0 {
		return []byte("[]")
	}
	b, _ := json.Marshal(out)
	return b
}

// persist hands the manifest to the host's state when it changed. Callers hold f.mu.
func (f *FS) persist() {
	if f.save == nil {
		return
	}
	b := f.manifest()
	if bytes.Equal(b, f.last) || len(b) > maxManifest {
		return
	}
	if f.save(b) {
		f.last = b
	}
}

// restore applies the kept manifest after a seeding: moved profile files first (their
// origins are still there), then removals deepest first, directories, and the files
// clients wrote. Every step is skipped when already done or impossible (a content the
// store no longer has), so it runs again after each protocol's seeding. Callers hold f.mu.
func (f *FS) restore(content func(sha string) ([]byte, bool)) {
	if len(f.saved) == 0 {
		return
	}
	var es []entry
	if json.Unmarshal(f.saved, &es) != nil || len(es) > f.lim.MaxNodes {
		return
	}
	meta := func(e entry) Meta {
		t := time.Unix(e.T, 0).UTC()
		return Meta{Perm: e.M & fs.ModePerm, UID: e.U, GID: e.G, ModTime: t, ATime: t}
	}
	for _, e := range es {
		if e.K != kindCopy {
			continue
		}
		src, err1 := split(e.O)
		dst, err2 := split(e.P)
		if err1 != nil || err2 != nil || len(dst) == 0 {
			continue
		}
		if _, err := f.lookup(dst); err == nil {
			continue
		}
		n, err := f.lookup(src)
		if err != nil || n.dir || !n.seeded {
			continue
		}
		if dir, err := f.mkdirAll(dst[:len(dst)-1], Meta{Perm: 0o755}, false); err == nil &&
			f.put(dir, dst[len(dst)-1], n.data, meta(e), false) == nil {
			c := dir.children[dst[len(dst)-1]]
			c.seeded, c.origin = true, n.origin
		}
	}
	var tombs []entry
	for _, e := range es {
		if e.K == kindTomb {
			tombs = append(tombs, e)
		}
	}
	sort.Slice(tombs, func(i, j int) bool { return len(tombs[i].P) > len(tombs[j].P) })
	for _, e := range tombs {
		parts, err := split(e.P)
		if err != nil || len(parts) == 0 {
			continue
		}
		f.tomb[e.P] = true
		parent, err := f.lookup(parts[:len(parts)-1])
		if err != nil || !parent.dir {
			continue
		}
		n, ok := parent.children[parts[len(parts)-1]]
		if !ok || !n.seeded || (n.dir && len(n.children) > 0) || (!n.dir && n.origin != e.P) {
			continue
		}
		delete(parent.children, n.name)
		f.release(n)
	}
	for _, e := range es {
		parts, err := split(e.P)
		if err != nil || len(parts) == 0 {
			continue
		}
		switch e.K {
		case kindDir:
			if n, err := f.mkdirAll(parts, meta(e), false); err == nil && !n.seeded {
				n.meta = meta(e)
			}
		case kindFile:
			if n, err := f.lookup(parts); err == nil && n.sha == e.S {
				continue
			}
			if content == nil {
				continue
			}
			data, ok := content(e.S)
			if !ok || hashHex(data) != e.S {
				continue
			}
			dir, err := f.mkdirAll(parts[:len(parts)-1], Meta{Perm: 0o755}, false)
			if err == nil {
				f.put(dir, parts[len(parts)-1], data, meta(e), true)
			}
		}
	}
	f.last = f.manifest()
}
