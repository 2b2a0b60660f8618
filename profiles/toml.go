package profiles

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"io/fs"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// Conpot's TOML templates (Conpot 2026, PRs #637 and #646): template.toml beside one
// <proto>.toml per protocol, in the template directory itself; auxiliary files (HTTP
// pages, MIBs) stay in <proto>/. Conpot prefers the TOML file of a protocol when both
// exist. The loader turns each TOML document into the Node tree of the equivalent XML
// (Conpot's element names and attributes), so the protocols' section parsers read both
// forms alike, and every Node keeps the TOML line it came from.

// tomlShape says how one array of tables of a protocol's TOML maps to XML elements.
type tomlShape struct {
	wrapper string   // element around the items; "" puts them straight into the parent
	item    string   // element name of each item; "" takes it from the item's "name" key
	attrs   []string // item keys that become attributes
	text    string   // item key whose value becomes the item's text
}

// tomlShapes maps "<protocol>.<key path>" of an array of tables to its XML shape.
// Arrays not listed become <key><singular-of-key …/></key>, tables become elements and
// scalars child elements, which is what every other section uses.
var tomlShapes = map[string]tomlShape{
	"modbus.slaves":                    {wrapper: "slaves", item: "slave", attrs: []string{"id"}},
	"modbus.slaves.blocks":             {wrapper: "blocks", item: "block", attrs: []string{"name"}},
	"snmp.config":                      {wrapper: "config", item: "entity", attrs: []string{"name", "command"}, text: "value"},
	"snmp.mibs":                        {wrapper: "mibs", item: "mib", attrs: []string{"name"}},
	"snmp.mibs.symbols":                {item: "symbol", attrs: []string{"name", "instance"}},
	"s7comm.system_status_lists":       {wrapper: "system_status_lists", item: "ssl", attrs: []string{"id", "name"}},
	"s7comm.system_status_lists.items": {attrs: []string{"id"}, text: "value"},
	"IEC104.categories":                {wrapper: "categories", item: "category", attrs: []string{"name", "id"}},
	"IEC104.categories.registers":      {item: "register", attrs: []string{"name", "rel"}},
	"ipmi.user_list":                   {wrapper: "user_list", item: "user"},
	"enip.tags":                        {wrapper: "tags", item: "tag", attrs: []string{"name"}},
	"bacnet.object_list":               {wrapper: "object_list", item: "object", attrs: []string{"name"}},
	"http.htdocs":                      {wrapper: "htdocs", item: "node", attrs: []string{"name"}},
	"http.htdocs.triggers":             {wrapper: "triggers", item: "entity", attrs: []string{"appendix"}, text: "value"},
	"http.statuscodes":                 {wrapper: "statuscodes", item: "status", attrs: []string{"name"}},
	"ftp.ftp_users.users":              {item: "user", attrs: []string{"uid"}},
	"ftp.ftp_vfs.files":                {item: "file", attrs: []string{"path"}},
	"ftp.ftp_vfs.dirs":                 {item: "dir", attrs: []string{"path", "recursive"}},
	"proxies.proxy":                    {item: "proxy", attrs: []string{"name", "host", "port", "keyfile", "certfile"}},
}

// tomlEntities are tables whose keys become <entity name="key">value</entity> elements;
// the value is the wrapper element ("" for none).
var tomlEntities = map[string]string{
	"http.global.config":       "config",
	"http.global.headers":      "headers",
	"http.htdocs.headers":      "headers",
	"http.statuscodes.headers": "",
}

// tomlDoc is a decoded TOML file with what is needed to give its values line numbers.
type tomlDoc struct {
	file  string
	data  map[string]any
	order map[string]int // key path (without array indexes) → first position in the file
	lines []string
	line  int // the cursor: values are visited in document order
	col   int
	res   map[string]*regexp.Regexp // seek's pattern per key
	depth int                       // tables being filled, bounded like XML nesting
}

func decodeTOML(fsys fs.FS, rel, display string) (*tomlDoc, error) {
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
	d := &tomlDoc{file: display, order: map[string]int{}, res: map[string]*regexp.Regexp{}, lines: strings.Split(buf.String(), "\n")}
	md, err := toml.Decode(buf.String(), &d.data)
	if err != nil {
		if pe, ok := err.(toml.ParseError); ok {
			return nil, &Error{File: display, Line: pe.Position.Line, Err: fmt.Errorf("malformed TOML: %s", pe.Message)}
		}
		return nil, &Error{File: display, Line: 1, Err: fmt.Errorf("malformed TOML: %v", err)}
	}
	for i, k := range md.Keys() {
		if _, ok := d.order[k.String()]; !ok {
			d.order[k.String()] = i
		}
	}
	return d, nil
}

// keys returns m's keys in document order.
func (d *tomlDoc) keys(path string, m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	pos := func(k string) int {
		if i, ok := d.order[joinKey(path, k)]; ok {
			return i
		}
		return math.MaxInt
	}
	sort.SliceStable(out, func(i, j int) bool {
		if pi, pj := pos(out[i]), pos(out[j]); pi != pj {
			return pi < pj
		}
		return out[i] < out[j]
	})
	return out
}

// joinKey joins a key path as toml.Key.String does (quoting keys that need it).
func joinKey(path, k string) string {
	key := toml.Key{k}
	if path == "" {
		return key.String()
	}
	return path + "." + key.String()
}

// seek moves the cursor to the next place key appears (as `key =` or in a table header)
// and returns that line.
func (d *tomlDoc) seek(key string) int {
	re, ok := d.res[key]
	if !ok {
		q := regexp.QuoteMeta(key)
		re = regexp.MustCompile(`(^|[\s{,.\[])("` + q + `"|'` + q + `'|` + q + `)\s*(=|\]|\.)`)
		d.res[key] = re
	}
	for l := d.line; l < len(d.lines); l++ {
		s := d.lines[l]
		from := 0
		if l == d.line {
			from = min(d.col, len(s))
		}
		if loc := re.FindStringIndex(s[from:]); loc != nil {
			d.line, d.col = l, from+loc[1]
			return l + 1
		}
	}
	return d.line + 1
}

// node makes an element positioned at line.
func (d *tomlDoc) node(name string, line int) *Node {
	return &Node{Name: name, File: d.file, Line: line}
}

// scalarText renders a TOML scalar as the text the XML form would hold.
func scalarText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case bool:
		if x {
			return "True"
		}
		return "False"
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		t := strconv.FormatFloat(x, 'f', -1, 64)
		if !strings.ContainsAny(t, ".eEN") { // 68.0 stays a float (BACnet REAL), as in XML
			t += ".0"
		}
		return t
	case []any: // e.g. FTP's enabled_commands
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = "'" + scalarText(e) + "'"
		}
		return strings.Join(parts, ", ")
	}
	return fmt.Sprint(v)
}

// isTables reports whether v is an array of tables.
func isTables(v any) ([]map[string]any, bool) {
	switch x := v.(type) {
	case []map[string]any:
		return x, true
	case []any:
		if len(x) == 0 {
			return nil, false
		}
		out := make([]map[string]any, 0, len(x))
		for _, e := range x {
			m, ok := e.(map[string]any)
			if !ok {
				return nil, false
			}
			out = append(out, m)
		}
		return out, true
	}
	return nil, false
}

// fill adds m's keys to n as child elements; shape is the protocol-relative path of m
// (for the shape tables) and path its key path in the document.
func (d *tomlDoc) fill(n *Node, m map[string]any, shape, path string) error {
	if d.depth++; d.depth > maxXMLDepth {
		return &Error{File: d.file, Line: d.line + 1, Err: fmt.Errorf("tables nested deeper than %d", maxXMLDepth)}
	}
	defer func() { d.depth-- }()
	for _, k := range d.keys(path, m) {
		v := m[k]
		line := d.seek(k)
		kshape, kpath := shape+"."+k, joinKey(path, k)
		if w, ok := tomlEntities[kshape]; ok {
			t, isMap := v.(map[string]any)
			if !isMap {
				return &Error{File: d.file, Line: line, Element: k, Err: fmt.Errorf("must be a table of names and values")}
			}
			parent := n
			if w != "" {
				parent = d.node(w, line)
				n.Children = append(n.Children, parent)
			}
			for _, name := range d.keys(kpath, t) {
				e := d.node("entity", d.seek(name))
				e.Attrs = append(e.Attrs, attr("name", name))
				e.Text = scalarText(t[name])
				parent.Children = append(parent.Children, e)
			}
			continue
		}
		if items, ok := isTables(v); ok {
			sh, known := tomlShapes[kshape]
			if !known {
				sh = tomlShape{wrapper: k, item: strings.TrimSuffix(k, "s"), attrs: []string{"name", "id"}}
			}
			parent := n
			if sh.wrapper != "" {
				parent = d.node(sh.wrapper, line)
				n.Children = append(n.Children, parent)
			}
			for _, it := range items {
				if err := d.item(parent, it, sh, kshape, kpath); err != nil {
					return err
				}
			}
			continue
		}
		switch x := v.(type) {
		case map[string]any:
			c := d.node(k, line)
			if err := d.fill(c, x, kshape, kpath); err != nil {
				return err
			}
			n.Children = append(n.Children, c)
		default:
			c := d.node(k, line)
			c.Text = scalarText(x)
			n.Children = append(n.Children, c)
		}
	}
	return nil
}

// item adds one element of an array of tables.
func (d *tomlDoc) item(parent *Node, it map[string]any, sh tomlShape, shape, path string) error {
	keys := d.keys(path, it)
	line := d.line + 1
	if len(keys) > 0 {
		line = d.seek(keys[0])
		// seek moved past the first key; step back so it is found again below.
		d.col = max(0, d.col-len(keys[0])-2)
	}
	name := sh.item
	if name == "" {
		s, ok := it["name"].(string)
		if !ok || !validElementName(s) {
			return &Error{File: d.file, Line: line, Err: fmt.Errorf("%s: each item needs a name that is an element name, got %v", path, it["name"])}
		}
		name = s
	}
	e := d.node(name, line)
	rest := map[string]any{}
	for _, k := range keys {
		switch {
		case sh.item == "" && k == "name":
			d.seek(k)
		case contains(sh.attrs, k) && !isMapOrList(it[k]):
			d.seek(k)
			e.Attrs = append(e.Attrs, attr(k, scalarText(it[k])))
		case k == sh.text && sh.text != "":
			d.seek(k)
			e.Text = scalarText(it[k])
		default:
			rest[k] = it[k]
		}
	}
	if err := d.fill(e, rest, shape, path); err != nil {
		return err
	}
	parent.Children = append(parent.Children, e)
	return nil
}

func isMapOrList(v any) bool {
	switch v.(type) {
	case map[string]any, []any, []map[string]any:
		return true
	}
	return false
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

var elementNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]*$`)

func validElementName(s string) bool { return elementNameRE.MatchString(s) }

// protocolTOML reads <proto>.toml into the root Node its XML form would have: the top
// table (named after the protocol; "proxies" for the proxy) with enabled, host and port
// as attributes.
func protocolTOML(fsys fs.FS, proto, display string) (*Node, error) {
	d, err := decodeTOML(fsys, proto+".toml", display)
	if err != nil {
		return nil, err
	}
	top := proto
	if proto == "proxy" {
		top = "proxies"
	}
	body, ok := d.data[top].(map[string]any)
	if !ok || len(d.data) != 1 {
		var have []string
		for k := range d.data {
			have = append(have, k)
		}
		sort.Strings(have)
		return nil, &Error{File: display, Line: 1, Err: fmt.Errorf("a protocol file holds one table [%s], found %v", top, have)}
	}
	root := d.node(top, d.seek(top))
	rest := map[string]any{}
	for _, k := range d.keys(toml.Key{top}.String(), body) {
		switch k {
		case "enabled", "host", "port":
			line := d.seek(k)
			if isMapOrList(body[k]) {
				return nil, &Error{File: display, Line: line, Element: k, Err: fmt.Errorf("must be a value")}
			}
			root.Attrs = append(root.Attrs, attr(k, scalarText(body[k])))
		default:
			rest[k] = body[k]
		}
	}
	if _, ok := body["enabled"]; !ok {
		// Conpot's schema requires it; the TOML loader refuses the template.
		return nil, &Error{File: display, Line: root.Line, Element: top, Err: fmt.Errorf("no enabled key (Conpot's schema requires enabled, host and port)")}
	}
	if _, ok := body["enabled"].(bool); !ok {
		return nil, &Error{File: display, Line: root.Line, Element: top, Err: fmt.Errorf("enabled must be true or false")}
	}
	d.line, d.col = root.Line-1, 0
	if err := d.fill(root, rest, top, toml.Key{top}.String()); err != nil {
		return nil, err
	}
	if top == "ftp" {
		ftpUsers(root)
	}
	return root, nil
}

// ftpUsers regroups ftp_users as ftp.xml has it: TOML's group, users, anon_enabled,
// anon_uid and anon_uname become <users group><user uid>… and <anon_login enabled uid>.
func ftpUsers(root *Node) {
	fu := root.Child("ftp_users")
	if fu == nil {
		return
	}
	users := &Node{Name: "users", File: fu.File, Line: fu.Line}
	anon := &Node{Name: "anon_login", File: fu.File, Line: fu.Line}
	var keep []*Node
	for _, c := range fu.Children {
		switch c.Name {
		case "group":
			users.Attrs = append(users.Attrs, attr("group", c.TextTrim()))
			users.Line = c.Line
		case "user":
			users.Children = append(users.Children, c)
		case "anon_enabled":
			anon.Attrs = append(anon.Attrs, attr("enabled", c.TextTrim()))
			anon.Line = c.Line
		case "anon_uid":
			anon.Attrs = append(anon.Attrs, attr("uid", c.TextTrim()))
		case "anon_uname":
			anon.Children = append(anon.Children, &Node{Name: "uname", Text: c.Text, File: c.File, Line: c.Line})
		default:
			keep = append(keep, c)
		}
	}
	if len(users.Attrs) > 0 || len(users.Children) > 0 {
		keep = append(keep, users)
	}
	if len(anon.Attrs) > 0 || len(anon.Children) > 0 {
		keep = append(keep, anon)
	}
	fu.Children = keep
}

// attr makes an XML attribute.
func attr(name, value string) xml.Attr { return xml.Attr{Name: xml.Name{Local: name}, Value: value} }

// templateTOML reads template.toml into the <core> Node of template.xml: the metadata
// entities and the databus keys. A databus value is a plain scalar (kept as it is),
// { value = "expression" } or { function = "dotted.Name", params = [...] }.
func templateTOML(fsys fs.FS, display string) (*Node, error) {
	d, err := decodeTOML(fsys, "template.toml", display)
	if err != nil {
		return nil, err
	}
	core := d.node("core", 1)
	cm, ok := d.data["core"].(map[string]any)
	if !ok {
		return nil, &Error{File: display, Line: 1, Err: fmt.Errorf("no [core] table")}
	}
	for _, k := range d.keys("core", cm) {
		line := d.seek(k)
		switch k {
		case "template":
			tm, ok := cm[k].(map[string]any)
			if !ok {
				return nil, &Error{File: display, Line: line, Element: "core.template", Err: fmt.Errorf("must be a table")}
			}
			t := d.node("template", line)
			for _, name := range d.keys("core.template", tm) {
				e := d.node("entity", d.seek(name))
				e.Attrs = append(e.Attrs, attr("name", name))
				if l, ok := tm[name].([]any); ok { // protocols = ["HTTP", …]
					parts := make([]string, len(l))
					for i, p := range l {
						parts[i] = scalarText(p)
					}
					e.Text = strings.Join(parts, ", ")
				} else {
					e.Text = scalarText(tm[name])
				}
				t.Children = append(t.Children, e)
			}
			core.Children = append(core.Children, t)
		case "databus":
			db, ok := cm[k].(map[string]any)
			if !ok {
				return nil, &Error{File: display, Line: line, Element: "core.databus", Err: fmt.Errorf("must be a table")}
			}
			dbn := d.node("databus", line)
			for _, mk := range d.keys("core.databus", db) {
				mline := d.seek(mk)
				kv, ok := db[mk].(map[string]any)
				if mk != "key_value_mappings" || !ok {
					dbn.Children = append(dbn.Children, d.node(mk, mline))
					continue
				}
				m := d.node("key_value_mappings", mline)
				for _, key := range d.keys("core.databus.key_value_mappings", kv) {
					kn, err := d.databusKey(key, kv[key])
					if err != nil {
						return nil, err
					}
					m.Children = append(m.Children, kn)
				}
				dbn.Children = append(dbn.Children, m)
			}
			core.Children = append(core.Children, dbn)
		default:
			core.Children = append(core.Children, d.node(k, line))
		}
	}
	return core, nil
}

// databusKey converts one key_value_mappings entry to <key name><value type param>.
func (d *tomlDoc) databusKey(key string, v any) (*Node, error) {
	line := d.seek(key)
	kn := d.node("key", line)
	kn.Attrs = append(kn.Attrs, attr("name", key))
	vn := d.node("value", line)
	kn.Children = append(kn.Children, vn)
	fail := func(format string, args ...any) error {
		return &Error{File: d.file, Line: line, Element: "key " + key, Err: fmt.Errorf(format, args...)}
	}
	switch x := v.(type) {
	case map[string]any:
		fn, isFn := x["function"]
		expr, isExpr := x["value"]
		switch {
		case isFn && !isExpr:
			s, ok := fn.(string)
			if !ok {
				return nil, fail("function must be a dotted name")
			}
			vn.Attrs = append(vn.Attrs, attr("type", "function"))
			vn.Text = s
			if p, ok := x["params"]; ok {
				l, ok := p.([]any)
				if !ok {
					return nil, fail("params must be a list")
				}
				lit, err := starlarkLiteral(l)
				if err != nil {
					return nil, fail("params: %v", err)
				}
				vn.Attrs = append(vn.Attrs, attr("param", lit))
			}
			for k := range x {
				if k != "function" && k != "params" {
					return nil, fail("unknown field %q beside function", k)
				}
			}
		case isExpr && !isFn && len(x) == 1:
			s, ok := expr.(string)
			if !ok {
				return nil, fail("value must be an expression in a string")
			}
			vn.Attrs = append(vn.Attrs, attr("type", "value"))
			vn.Text = s
		default:
			// Conpot raises "Unknown databus mapping" and stops.
			return nil, fail("a table must be { value = \"expression\" } or { function = \"name\", params = [...] }")
		}
	default:
		lit, err := starlarkLiteral(x)
		if err != nil {
			return nil, fail("%v", err)
		}
		vn.Attrs = append(vn.Attrs, attr("type", "value"))
		vn.Text = lit
	}
	return kn, nil
}

// starlarkLiteral writes a TOML value as the expression that evaluates to it.
func starlarkLiteral(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return strconv.Quote(x), nil
	case bool:
		return scalarText(x), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case float64:
		if math.IsInf(x, 0) || math.IsNaN(x) {
			return "", fmt.Errorf("%v is not a number the databus keeps", x)
		}
		s := strconv.FormatFloat(x, 'g', -1, 64)
		if !strings.ContainsAny(s, ".eE") {
			s += ".0"
		}
		return s, nil
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			s, err := starlarkLiteral(e)
			if err != nil {
				return "", err
			}
			parts[i] = s
		}
		return "[" + strings.Join(parts, ", ") + "]", nil
	case []map[string]any:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = e
		}
		return starlarkLiteral(l)
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			s, err := starlarkLiteral(x[k])
			if err != nil {
				return "", err
			}
			parts[i] = strconv.Quote(k) + ": " + s
		}
		return "{" + strings.Join(parts, ", ") + "}", nil
	}
	return "", fmt.Errorf("a TOML %T cannot be a databus value", v)
}
