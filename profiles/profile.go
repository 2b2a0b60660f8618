// Package profiles models an emulated device: it loads Conpot template directories
// (template.xml plus <proto>/<proto>.xml), evaluates databus expressions in Starlark,
// runs value engines and keeps each host's databus.
package profiles

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Meta is the <core><template> metadata of a template.
type Meta struct {
	Unit, Vendor, Description, Protocols, Creator, Type string
}

// Profile is a loaded device personality.
type Profile struct {
	Name     string // the embedded name or the directory's base name
	Source   string // "embedded:NAME" or the directory path
	FS       fs.FS  // the template directory
	Meta     Meta
	Schema   *Schema             // the databus definition
	Sections map[string]*Section // enabled protocol sections by directory name
	Disabled []string            // protocol sections present but not enabled
	TOML     bool                // loaded from Conpot's TOML form (template.toml)

	mu       sync.Mutex
	warnings []string
}

// Section is one protocol's part of a template: <proto>/<proto>.xml whose root is enabled.
type Section struct {
	Protocol string // the directory name, e.g. "modbus"
	File     string // the file's display path, used in errors
	Root     *Node
	FS       fs.FS // the protocol's directory (htdocs, mibs …)
	Host     string
	Port     int // the root's port attribute; 0 when absent
	Profile  *Profile
}

// Warnf records a non-fatal template problem positioned at n (an unknown element, say).
func (s *Section) Warnf(n *Node, format string, args ...any) {
	s.Profile.warnf("%s:%d: <%s>: %s", n.File, n.Line, n.Name, fmt.Sprintf(format, args...))
}

// CheckChildren warns about every child element of n whose name is not in known.
func (s *Section) CheckChildren(n *Node, known ...string) {
	for _, c := range n.Children {
		found := false
		for _, k := range known {
			if c.Name == k {
				found = true
				break
			}
		}
		if !found {
			s.Warnf(c, "unknown element inside <%s>, ignored", n.Name)
		}
	}
}

func (p *Profile) warnf(format string, args ...any) {
	p.mu.Lock()
	p.warnings = append(p.warnings, fmt.Sprintf(format, args...))
	p.mu.Unlock()
}

// Warnings returns the non-fatal problems found while loading and configuring the profile.
func (p *Profile) Warnings() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.warnings...)
}

// ProtocolNames returns the enabled sections' names, sorted.
func (p *Profile) ProtocolNames() []string {
	names := make([]string, 0, len(p.Sections))
	for n := range p.Sections {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// maxTemplateFile bounds the size of any XML file read from a template.
const maxTemplateFile = 8 << 20

// Load reads a Conpot template directory from fsys. name is the profile's name and display
// is the path shown in errors (the directory, or "embedded:NAME").
func Load(fsys fs.FS, name, display string) (*Profile, error) {
	p := &Profile{Name: name, Source: display, FS: fsys, Sections: map[string]*Section{}}
	var root *Node
	var err error
	if _, serr := fs.Stat(fsys, "template.toml"); serr == nil {
		// Conpot prefers template.toml when both exist.
		p.TOML = true
		root, err = templateTOML(fsys, path.Join(display, "template.toml"))
	} else {
		root, err = readXML(fsys, "template.xml", path.Join(display, "template.xml"))
	}
	if err != nil {
		return nil, err
	}
	if root.Name != "core" {
		return nil, root.Errorf("root element must be <core>")
	}
	for _, c := range root.Children {
		switch c.Name {
		case "template":
			p.Meta = parseMeta(p, c)
		case "databus":
			if p.Schema, err = parseDatabus(p, c); err != nil {
				return nil, err
			}
		default:
			p.warnf("%s:%d: <%s>: unknown element inside <core>, ignored", c.File, c.Line, c.Name)
		}
	}
	if p.Schema == nil {
		p.Schema = &Schema{index: map[string]int{}}
	}
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("read template directory %s: %w", display, err)
	}
	seen := map[string]bool{}
	for _, e := range entries {
		var proto, rel string
		var r *Node
		switch {
		case !e.IsDir() && strings.HasSuffix(e.Name(), ".toml") && e.Name() != "template.toml":
			// <proto>.toml beside template.toml; Conpot prefers it to <proto>/<proto>.xml.
			proto, rel = strings.TrimSuffix(e.Name(), ".toml"), e.Name()
			if r, err = protocolTOML(fsys, proto, path.Join(display, rel)); err != nil {
				return nil, err
			}
		case e.IsDir():
			proto, rel = e.Name(), path.Join(e.Name(), e.Name()+".xml")
			if _, err := fs.Stat(fsys, rel); err != nil {
				continue
			}
			if _, err := fs.Stat(fsys, proto+".toml"); err == nil {
				continue // the TOML file wins
			}
			if r, err = readXML(fsys, rel, path.Join(display, rel)); err != nil {
				return nil, err
			}
		default:
			continue
		}
		if seen[proto] {
			continue
		}
		seen[proto] = true
		file := path.Join(display, rel)
		enabled, err := rootBool(r, "enabled")
		if err != nil {
			return nil, err
		}
		if !enabled {
			p.Disabled = append(p.Disabled, proto)
			continue
		}
		var sub fs.FS = emptyFS{}
		if st, err := fs.Stat(fsys, proto); err == nil && st.IsDir() {
			if sub, err = fs.Sub(fsys, proto); err != nil {
				return nil, fmt.Errorf("open %s: %w", proto, err)
			}
		}
		sec := &Section{Protocol: proto, File: file, Root: r, FS: sub, Profile: p}
		sec.Host, _ = r.Attr("host")
		if ps, ok := r.Attr("port"); ok && strings.TrimSpace(ps) != "" {
			port, err := strconv.Atoi(strings.TrimSpace(ps))
			if err != nil || port < 1 || port > 65535 {
				return nil, r.Errorf("port %q is not a port number", ps)
			}
			sec.Port = port
		}
		p.Sections[proto] = sec
	}
	return p, nil
}

// emptyFS is the auxiliary directory of a protocol that has none (a <proto>.toml alone).
type emptyFS struct{}

func (emptyFS) Open(name string) (fs.File, error) {
	return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
}

// LoadDir loads a template directory from the file system.
func LoadDir(dir string) (*Profile, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("profile %s: %w", dir, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("profile %s: not a directory", dir)
	}
	return Load(os.DirFS(dir), path.Base(strings.TrimRight(dir, "/")), dir)
}

// Open loads an embedded profile by name, or a template directory when nameOrDir is a path.
func Open(nameOrDir string) (*Profile, error) {
	if strings.ContainsAny(nameOrDir, "/.") {
		return LoadDir(nameOrDir)
	}
	if sub, ok := embeddedFS(nameOrDir); ok {
		return Load(sub, nameOrDir, "embedded:"+nameOrDir)
	}
	if st, err := os.Stat(nameOrDir); err == nil && st.IsDir() {
		return LoadDir(nameOrDir)
	}
	return nil, fmt.Errorf("profile %q: no embedded profile of that name (have %s) and no such directory",
		nameOrDir, strings.Join(Embedded(), ", "))
}

func readXML(fsys fs.FS, rel, display string) (*Node, error) {
	f, err := fsys.Open(rel)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", display, err)
	}
	defer f.Close()
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(f, maxTemplateFile+1))
	if err != nil {
		return nil, fmt.Errorf("%s: read: %w", display, err)
	}
	if n > maxTemplateFile {
		return nil, fmt.Errorf("%s: larger than %d bytes", display, maxTemplateFile)
	}
	return ParseXML(display, &buf)
}

// ParseBool reads Conpot's Python-literal booleans ("True"/"False") and the usual spellings.
func ParseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "1", "yes", "on":
		return true, nil
	case "false", "0", "no", "off", "":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean (True or False)", s)
}

func rootBool(n *Node, attr string) (bool, error) {
	v, ok := n.Attr(attr)
	if !ok {
		return false, nil
	}
	b, err := ParseBool(v)
	if err != nil {
		return false, n.Errorf("attribute %s: %v", attr, err)
	}
	return b, nil
}

func parseMeta(p *Profile, n *Node) Meta {
	var m Meta
	for _, e := range n.Children {
		if e.Name != "entity" {
			p.warnf("%s:%d: <%s>: unknown element inside <template>, ignored", e.File, e.Line, e.Name)
			continue
		}
		name, _ := e.Attr("name")
		v := e.TextTrim()
		switch name {
		case "unit":
			m.Unit = v
		case "vendor":
			m.Vendor = v
		case "description":
			m.Description = v
		case "protocols":
			m.Protocols = v
		case "creator":
			m.Creator = v
		case "type":
			m.Type = v
		default:
			p.warnf("%s:%d: <entity name=%q>: unknown template entity, ignored", e.File, e.Line, name)
		}
	}
	return m
}
