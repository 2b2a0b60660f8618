package http

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"

	"github.com/icsnare/icsnare/profiles"
)

// Limits on the files a profile ships.
const (
	maxFileSize  = 1 << 20  // one page
	maxTotalSize = 32 << 20 // every page of a profile together
	maxBodySize  = 1 << 20  // one rendered response body
)

// loader reads a profile's pages once, at configure time, from the section's fs.FS. Requests
// never touch the file system: they only look nodes up in a map.
type loader struct {
	sec   *profiles.Section
	fsys  fs.FS
	total int
}

// errSymlink marks a path with a symbolic link in it; such files are never served.
var errSymlink = errors.New("symbolic links are not served")

// read returns the file at rel (slash-separated, relative to the section directory), or
// nil when it does not exist or is a directory.
func (l *loader) read(rel string) ([]byte, error) {
	if !fs.ValidPath(rel) || strings.ContainsRune(rel, 0) || strings.Contains(rel, "\\") {
		return nil, fmt.Errorf("%s: invalid path", rel)
	}
	// Refuse symbolic links anywhere on the way, from the top down: a link could lead
	// outside the profile.
	parts := strings.Split(rel, "/")
	for i := range parts {
		p := strings.Join(parts[:i+1], "/")
		st, err := fs.Lstat(l.fsys, p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		if st.Mode()&fs.ModeSymlink != 0 {
			return nil, fmt.Errorf("%s: %w", p, errSymlink)
		}
		if i == len(parts)-1 && !st.Mode().IsRegular() {
			return nil, nil // a directory ("/") or something else: no body
		}
	}
	f, err := l.fsys.Open(rel)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("%s: %w", rel, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: read: %w", rel, err)
	}
	if len(b) > maxFileSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", rel, maxFileSize)
	}
	l.total += len(b)
	if l.total > maxTotalSize {
		return nil, fmt.Errorf("%s: pages larger than %d bytes in total", rel, maxTotalSize)
	}
	return b, nil
}

// load reads and compiles the page of rel. templated pages get condata substitution;
// html pages have substituted values escaped.
func (l *loader) load(at *profiles.Node, rel string, templated, html bool) (*page, error) {
	b, err := l.read(rel)
	if err != nil {
		if errors.Is(err, errSymlink) {
			l.sec.Warnf(at, "%v: not served", err)
			return nil, nil
		}
		return nil, at.Errorf("%v", err)
	}
	if b == nil {
		return nil, nil
	}
	display := path.Join(path.Dir(l.sec.File), rel)
	if !templated {
		return &page{name: display, static: b}, nil
	}
	return compilePage(l.sec, display, b, html)
}

// loadContent fills in every node's body.
func loadContent(sec *profiles.Section, c *config) error {
	l := &loader{sec: sec, fsys: sec.FS}
	for _, n := range c.nodes {
		if n.alias != "" {
			continue
		}
		at := nodeAt(sec, n)
		tmpl, html := templatedType(n.merged)
		rel := "htdocs" + n.name
		if n.file != "" {
			rel = "htdocs" + n.file
		}
		rel = strings.TrimSuffix(rel, "/")
		p, err := l.load(at, rel, tmpl, html)
		if err != nil {
			return err
		}
		n.body = p
		if p == nil && (n.status == 0 || n.status < 300) && n.proxy == nil && !strings.HasSuffix(n.name, "/") {
			sec.Warnf(at, "node %s: no file htdocs%s, the body is empty", n.name, n.name)
		}
		for i := range n.triggers {
			tr := &n.triggers[i]
			tp, err := l.load(at, rel+"_"+tr.body.name, tmpl, html)
			if err != nil {
				return err
			}
			if tp == nil {
				return at.Errorf("trigger file htdocs%s_%s does not exist", n.name, tr.body.name)
			}
			tr.body = tp
		}
	}
	for code, n := range c.status {
		// Status pages are always templated (Conpot does the same).
		_, html := templatedType(n.merged)
		p, err := l.load(nodeAt(sec, n), fmt.Sprintf("statuscodes/%d.status", code), true, html || !hasHeader(n.merged, "Content-Type"))
		if err != nil {
			return err
		}
		n.body = p
	}
	return nil
}

// nodeAt finds the XML element of n for messages; it falls back to the section root.
func nodeAt(sec *profiles.Section, n *node) *profiles.Node {
	for _, grp := range []string{"htdocs", "statuscodes"} {
		g := sec.Root.Child(grp)
		if g == nil {
			continue
		}
		for _, c := range g.Children {
			if name, _ := c.Attr("name"); strings.TrimSpace(name) == n.name {
				return c
			}
		}
	}
	return sec.Root
}

// templatedType reports whether a response with these headers is templated, and whether
// it is HTML (substituted values are then escaped).
func templatedType(hs []header) (templated, html bool) {
	ct := strings.ToLower(headerValue(hs, "Content-Type"))
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.TrimSpace(mt)
	html = mt == "text/html" || mt == "application/xhtml+xml"
	templated = html || strings.HasPrefix(mt, "text/") || strings.HasSuffix(mt, "/xml") ||
		strings.HasSuffix(mt, "+xml") || strings.HasSuffix(mt, "/json") || strings.HasSuffix(mt, "/javascript")
	return templated, html
}

func headerValue(hs []header, name string) string {
	for _, h := range hs {
		if strings.EqualFold(h.name, name) {
			return h.value
		}
	}
	return ""
}

func hasHeader(hs []header, name string) bool {
	for _, h := range hs {
		if strings.EqualFold(h.name, name) {
			return true
		}
	}
	return false
}

// lineAt returns the 1-based line of offset off in b.
func lineAt(b []byte, off int) int { return 1 + bytes.Count(b[:off], []byte{'\n'}) }
