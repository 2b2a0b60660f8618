package http

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/icsnare/icsnare/profiles"
)

// Limits on what a profile may configure.
const (
	maxTarpit    = 60 * time.Second
	maxChunks    = 1024
	maxNodes     = 4096
	maxStatusMin = 100
	maxStatusMax = 599
)

// header is one response header as the profile spells it.
type header struct {
	name, value string
	// sep is what the profile writes between name and value ("" is ": "): a device's
	// own spelling, as nmap's signatures match it ("Content-Type:text/html").
	sep string
	// slot marks a computed header (Content-Length, Connection) the profile places: the
	// server writes its own value at this position, with sep; value "close" on
	// Connection says "Connection: close" whenever the connection ends.
	slot bool
}

// tarpit delays a response by a random duration in [min, max].
type tarpit struct{ min, max time.Duration }

func (t tarpit) delay() time.Duration {
	if t.max <= t.min {
		return t.min
	}
	return t.min + rand.N(t.max-t.min+1)
}

// config is a parsed <http> section.
type config struct {
	version        string // "HTTP/1.1" or "HTTP/1.0": the status line's version
	updateDate     bool
	disableHead    bool
	disableTrace   bool
	disableOptions bool
	tarpit         tarpit
	headers        []header
	nodes          map[string]*node
	status         map[int]*node
}

// node is one <htdocs> node or one <statuscodes> page.
type node struct {
	name     string // the path ("/index.html") or the status code ("404")
	status   int    // 0: 200 for htdocs nodes; the code for status pages
	headers  []header
	tarpit   *tarpit // nil: the global tarpit
	alias    string
	target   *node // the alias' node, resolved at configure time
	chunks   []int
	trailers []header
	proxy    *upstream
	triggers []trigger
	body     *page
	// reason replaces the status line's reason phrase when hasReason ("" drops it, as
	// some embedded servers do: "HTTP/1.0 302").
	reason    string
	hasReason bool
	// file is the htdocs path of the body when it is not the node's own name.
	file string
	// merged is the global headers with this node's headers applied, in order.
	merged []header
}

// trigger is a Conpot "subselect": when every parameter matches the query, serve body.
type trigger struct {
	params [][2]string
	body   *page
}

func parseConfig(sec *profiles.Section) (*config, error) {
	root := sec.Root
	if root.Name != "http" {
		return nil, root.Errorf("root element must be <http>")
	}
	c := &config{version: "HTTP/1.1", updateDate: true, nodes: map[string]*node{}, status: map[int]*node{}}
	sec.CheckChildren(root, "global", "htdocs", "statuscodes")
	if g := root.Child("global"); g != nil {
		if err := c.parseGlobal(sec, g); err != nil {
			return nil, err
		}
	}
	if h := root.Child("htdocs"); h != nil {
		sec.CheckChildren(h, "node")
		for _, n := range h.ChildrenNamed("node") {
			nd, err := parseNode(sec, n, false)
			if err != nil {
				return nil, err
			}
			if _, dup := c.nodes[nd.name]; dup {
				return nil, n.Errorf("node %q defined twice", nd.name)
			}
			if len(c.nodes) >= maxNodes {
				return nil, n.Errorf("more than %d nodes", maxNodes)
			}
			c.nodes[nd.name] = nd
		}
	}
	if s := root.Child("statuscodes"); s != nil {
		sec.CheckChildren(s, "status")
		for _, n := range s.ChildrenNamed("status") {
			nd, err := parseNode(sec, n, true)
			if err != nil {
				return nil, err
			}
			if _, dup := c.status[nd.status]; dup {
				return nil, n.Errorf("status %d defined twice", nd.status)
			}
			c.status[nd.status] = nd
		}
	}
	// Resolve aliases (one level) and merge headers.
	for _, n := range allNodes(c) {
		n.merged = mergeHeaders(c.headers, n.headers)
	}
	for _, n := range c.nodes {
		if n.alias == "" {
			continue
		}
		t, ok := c.nodes[n.alias]
		if !ok {
			return nil, nodeAt(sec, n).Errorf("alias %q names no node", n.alias)
		}
		if t.alias != "" {
			return nil, nodeAt(sec, n).Errorf("alias %q is itself an alias (one level only)", n.alias)
		}
		n.target = t
	}
	return c, nil
}

func allNodes(c *config) []*node {
	out := make([]*node, 0, len(c.nodes)+len(c.status))
	for _, n := range c.nodes {
		out = append(out, n)
	}
	for _, n := range c.status {
		out = append(out, n)
	}
	return out
}

func (c *config) parseGlobal(sec *profiles.Section, g *profiles.Node) error {
	sec.CheckChildren(g, "config", "headers")
	if cf := g.Child("config"); cf != nil {
		for _, e := range entities(sec, cf) {
			name, _ := e.Attr("name")
			v := e.TextTrim()
			var err error
			switch name {
			case "protocol_version":
				switch strings.ToUpper(v) {
				case "HTTP/1.1", "HTTP/1.0":
					c.version = strings.ToUpper(v)
				default:
					return e.Errorf("protocol_version %q: want HTTP/1.1 or HTTP/1.0", v)
				}
			case "update_header_date":
				c.updateDate, err = profiles.ParseBool(v)
			case "disable_method_head":
				c.disableHead, err = profiles.ParseBool(v)
			case "disable_method_trace":
				c.disableTrace, err = profiles.ParseBool(v)
			case "disable_method_options":
				c.disableOptions, err = profiles.ParseBool(v)
			case "tarpit":
				var t *tarpit
				t, err = parseTarpit(v)
				if t != nil {
					c.tarpit = *t
				}
			default:
				sec.Warnf(e, "unknown config entity %q, ignored", name)
			}
			if err != nil {
				return e.Errorf("%s: %v", name, err)
			}
		}
	}
	if h := g.Child("headers"); h != nil {
		hs, err := parseHeaders(sec, h)
		if err != nil {
			return err
		}
		c.headers = hs
	}
	return nil
}

// entities returns n's <entity> children, warning about anything else.
func entities(sec *profiles.Section, n *profiles.Node) []*profiles.Node {
	sec.CheckChildren(n, "entity")
	return n.ChildrenNamed("entity")
}

// computed headers are written by the server itself; a profile cannot set them.
var computed = map[string]bool{"content-length": true, "transfer-encoding": true, "connection": true, "trailer": true}

func parseHeaders(sec *profiles.Section, n *profiles.Node) ([]header, error) {
	var out []header
	for _, e := range entities(sec, n) {
		h, err := parseHeader(e)
		if err != nil {
			return nil, err
		}
		if computed[strings.ToLower(h.name)] {
			if h.slot = slottable(h); !h.slot {
				sec.Warnf(e, "header %s is computed by the server, ignored (an empty Content-Length or Connection, or Connection close, places the server's own)", h.name)
				continue
			}
		}
		out = mergeHeaders(out, []header{h})
	}
	return out, nil
}

func parseHeader(e *profiles.Node) (header, error) {
	name, _ := e.Attr("name")
	name = strings.TrimSpace(name)
	if name == "" || !isToken(name) {
		return header{}, e.Errorf("header name %q is not an HTTP token", name)
	}
	v := e.TextTrim()
	if strings.ContainsAny(v, "\r\n\x00") {
		return header{}, e.Errorf("header %s: value contains a line break or NUL", name)
	}
	sep, ok := e.Attr("separator")
	switch {
	case !ok:
		sep = ""
	case sep == ": ":
		sep = ""
	case sep != ":":
		return header{}, e.Errorf("header %s: separator %q: want \":\" or \": \"", name, sep)
	}
	return header{name: name, value: v, sep: sep}, nil
}

// slottable reports whether a computed header in a profile places the server's own: an
// empty Content-Length, an empty Connection or Connection close.
func slottable(h header) bool {
	switch strings.ToLower(h.name) {
	case "content-length":
		return h.value == ""
	case "connection":
		return h.value == "" || strings.EqualFold(h.value, "close")
	}
	return false
}

// mergeHeaders returns base with each of over applied: a header of the same name
// (case-insensitively) is replaced in place, a new one is appended.
func mergeHeaders(base, over []header) []header {
	out := append([]header(nil), base...)
outer:
	for _, h := range over {
		for i := range out {
			if strings.EqualFold(out[i].name, h.name) {
				out[i] = h
				continue outer
			}
		}
		out = append(out, h)
	}
	return out
}

func parseNode(sec *profiles.Section, n *profiles.Node, isStatus bool) (*node, error) {
	name, _ := n.Attr("name")
	name = strings.TrimSpace(name)
	nd := &node{name: name}
	if isStatus {
		code, err := strconv.Atoi(name)
		if err != nil || code < maxStatusMin || code > maxStatusMax {
			return nil, n.Errorf("status name %q is not an HTTP status code", name)
		}
		nd.status = code
		sec.CheckChildren(n, "tarpit", "headers", "entity", "chunks", "proxy", "trailers", "reason")
	} else {
		if p, ok := resolvePath(name); !ok || p != name {
			return nil, n.Errorf("node name %q must be an absolute, clean path (no '.', '..', '//', '?', control characters or %%-escapes)", name)
		}
		sec.CheckChildren(n, "status", "tarpit", "headers", "alias", "chunks", "proxy", "triggers", "trailers", "reason", "file")
	}
	for _, c := range n.Children {
		var err error
		switch c.Name {
		case "status":
			nd.status, err = strconv.Atoi(c.TextTrim())
			if err != nil || nd.status < 200 || nd.status > maxStatusMax {
				return nil, c.Errorf("status %q: want a code between 200 and 599", c.TextTrim())
			}
		case "tarpit":
			nd.tarpit, err = parseTarpit(c.TextTrim())
		case "reason":
			nd.reason, nd.hasReason = c.TextTrim(), true
			if strings.ContainsAny(nd.reason, "\r\n") || len(nd.reason) > 64 {
				return nil, c.Errorf("reason %q: one line of at most 64 characters", nd.reason)
			}
		case "file":
			nd.file = c.TextTrim()
			if p, ok := resolvePath(nd.file); !ok || p != nd.file || p == "/" {
				return nil, c.Errorf("file %q is not an absolute, clean path of a file under htdocs", nd.file)
			}
		case "headers":
			var hs []header
			hs, err = parseHeaders(sec, c)
			nd.headers = mergeHeaders(nd.headers, hs)
		case "entity": // Conpot's XSD puts status page headers directly under <status>
			var h header
			h, err = parseHeader(c)
			if err == nil && computed[strings.ToLower(h.name)] {
				sec.Warnf(c, "header %s is computed by the server, ignored", h.name)
			} else if err == nil {
				nd.headers = mergeHeaders(nd.headers, []header{h})
			}
		case "alias":
			nd.alias = c.TextTrim()
			if p, ok := resolvePath(nd.alias); !ok || p != nd.alias {
				return nil, c.Errorf("alias %q is not an absolute, clean path", nd.alias)
			}
		case "chunks":
			nd.chunks, err = parseChunks(c.TextTrim())
		case "trailers":
			nd.trailers, err = parseHeaders(sec, c)
		case "proxy":
			nd.proxy, err = parseUpstream(c.TextTrim())
		case "triggers":
			for _, e := range entities(sec, c) {
				tr, terr := parseTrigger(e)
				if terr != nil {
					return nil, terr
				}
				nd.triggers = append(nd.triggers, tr)
			}
		}
		if err != nil {
			if pe := (*profiles.Error)(nil); errors.As(err, &pe) {
				return nil, err
			}
			return nil, c.Errorf("%v", err)
		}
	}
	if len(nd.trailers) > 0 && len(nd.chunks) == 0 {
		sec.Warnf(n, "trailers need chunks; ignored")
	}
	return nd, nil
}

// parseTarpit reads "x" or "x;y" seconds; an empty or zero value is no tarpit.
func parseTarpit(s string) (*tarpit, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return &tarpit{}, nil
	}
	lo, hi, two := strings.Cut(s, ";")
	a, err := parseSeconds(lo)
	if err != nil {
		return nil, err
	}
	b := a
	if two {
		if b, err = parseSeconds(hi); err != nil {
			return nil, err
		}
		if b < a {
			return nil, fmt.Errorf("tarpit %q: maximum below minimum", s)
		}
	}
	return &tarpit{min: a, max: b}, nil
}

func parseSeconds(s string) (time.Duration, error) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || f < 0 || f != f {
		return 0, fmt.Errorf("tarpit %q: want seconds, \"x\" or \"x;y\"", s)
	}
	d := time.Duration(f * float64(time.Second))
	if d > maxTarpit {
		return 0, fmt.Errorf("tarpit %q: more than %v", s, maxTarpit)
	}
	return d, nil
}

// parseChunks reads "130,15,…": the sizes of the first chunks; the rest goes in one more.
func parseChunks(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 || n > maxBodySize {
			return nil, fmt.Errorf("chunk size %q: want a positive byte count", f)
		}
		out = append(out, n)
		if len(out) > maxChunks {
			return nil, fmt.Errorf("more than %d chunk sizes", maxChunks)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("chunks %q: no sizes", s)
	}
	return out, nil
}

func parseTrigger(e *profiles.Node) (trigger, error) {
	app, _ := e.Attr("appendix")
	if app == "" || strings.ContainsAny(app, "/\\\x00") || app == "." || app == ".." {
		return trigger{}, e.Errorf("trigger appendix %q: want a file name suffix", app)
	}
	var tr trigger
	for _, kv := range strings.Split(e.TextTrim(), ";") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		tr.params = append(tr.params, [2]string{k, v})
	}
	if len(tr.params) == 0 {
		return trigger{}, e.Errorf("trigger without parameters")
	}
	// The appendix is kept in body's name until the content is loaded.
	tr.body = &page{name: app}
	return tr, nil
}

// matches reports whether every parameter of the trigger appears in the query.
func (t trigger) matches(q url.Values) bool {
	for _, p := range t.params {
		found := false
		for _, v := range q[p[0]] {
			if v == p[1] {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if !tokenChar[s[i]] {
			return false
		}
	}
	return s != ""
}

var tokenChar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return
}()
