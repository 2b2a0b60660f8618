package clone

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Template is the template directory a clone run builds: databus keys, one protocol
// section (<proto>/<proto>.xml) per cloned protocol and the files beside them.
type Template struct {
	Unit, Vendor, Description string

	target   netip.Addr
	keys     []dbKey
	keyIndex map[string]int
	sections map[string]section
	files    map[string][]byte // slash path → content
	ids      map[string]string // identifying value → databus key
	seeded   []SeededField
	engines  []EngineField
}

type dbKey struct{ name, expr, comment, fn string }

type section struct {
	port int
	body string // the children of the protocol's root element
	attr string // extra attributes of the root element
}

// NewTemplate starts an empty template for target.
func NewTemplate(target netip.Addr) *Template {
	return &Template{target: target, keyIndex: map[string]int{}, sections: map[string]section{},
		files: map[string][]byte{}, ids: map[string]string{}}
}

var keyChars = regexp.MustCompile(`[^A-Za-z0-9_]+`)

// Key adds a databus key whose value is the Starlark expression expr, named base (made
// unique) and returns its name.
func (t *Template) Key(base, expr, comment string) string {
	base = keyChars.ReplaceAllString(base, "_")
	if base == "" {
		base = "key"
	}
	name := base
	for i := 2; ; i++ {
		if _, ok := t.keyIndex[name]; !ok {
			break
		}
		name = base + "_" + strconv.Itoa(i)
	}
	t.keyIndex[name] = len(t.keys)
	t.keys = append(t.keys, dbKey{name: name, expr: expr, comment: comment})
	return name
}

// FunctionKey adds a databus key computed by the databus function fn with param (a
// Starlark list) and returns its name.
func (t *Template) FunctionKey(base, fn, param, comment string) string {
	k := t.Key(base, param, comment)
	t.keys[t.keyIndex[k]].fn = fn
	return k
}

// HasKey reports whether name is a databus key of the template.
func (t *Template) HasKey(name string) bool { _, ok := t.keyIndex[name]; return ok }

// Literal adds a databus key holding the string s as it is.
func (t *Template) Literal(base, s string) string { return t.Key(base, StarlarkString(s), "") }

// Section sets protocol proto's XML section: body is the children of its root element.
func (t *Template) Section(proto string, port int, body string) {
	t.sections[proto] = section{port: port, body: body}
}

// File adds a file at the slash path rel (e.g. "http/htdocs/index.html").
func (t *Template) File(rel string, data []byte) { t.files[rel] = data }

// drop removes what a failed prober left.
func (t *Template) drop(proto string) {
	delete(t.sections, proto)
	for k := range t.files {
		if strings.HasPrefix(k, proto+"/") {
			delete(t.files, k)
		}
	}
}

// Protocols lists the cloned protocols, sorted.
func (t *Template) Protocols() []string {
	var out []string
	for k := range t.sections {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Engine records that a protocol value became a value engine.
func (t *Template) Engine(proto, field, engine, observed string) {
	t.engines = append(t.engines, EngineField{Protocol: proto, Field: field, Engine: engine, Observed: observed})
}

// Identity kinds, each seeded per host in its own shape.
const (
	KindMAC      = "mac"      // keeps the OUI and the separators
	KindSerial   = "serial"   // keeps a vendor prefix and each character's class
	KindHostname = "hostname" // keeps the letters, draws the digits
	KindIP       = "ip"       // keeps the first two octets
	KindNumber   = "number"   // keeps the number of decimal digits
)

// Seed turns a value that identifies the one real unit into a per-host seeded databus key
// of the same shape and returns the key. The same value seen by several protocols (a
// serial in S7 and on a web page) shares one key.
func (t *Template) Seed(kind, proto, field, value string) string {
	if k, ok := t.ids[value]; ok {
		for _, f := range t.seeded {
			if f.Key == k {
				kind = f.Kind
				break
			}
		}
		t.seeded = append(t.seeded, SeededField{Protocol: proto, Field: field, Kind: kind, Key: k, Original: value, Expression: t.keys[t.keyIndex[k]].expr})
		return k
	}
	var expr string
	switch kind {
	case KindMAC:
		expr = macExpr(value)
	case KindIP:
		expr = ipExpr(value)
	case KindHostname:
		expr = hostnameExpr(value)
	default:
		expr = serialExpr(value)
	}
	base := map[string]string{KindMAC: "MacAddress", KindIP: "IPAddress", KindHostname: "HostName", KindSerial: "SerialNumber"}[kind]
	if base == "" {
		base = "Identity"
	}
	k := t.Key(base, expr, fmt.Sprintf("per host, in the shape of the device's %s", kind))
	t.ids[value] = k
	t.seeded = append(t.seeded, SeededField{Protocol: proto, Field: field, Kind: kind, Key: k, Original: value, Expression: expr})
	return k
}

// seededFields lists the fields seeded into key, for the report's deduplication.
func (t *Template) seededFields(key string) string {
	var out []string
	for _, f := range t.seeded {
		if f.Key == key {
			out = append(out, f.Protocol+" "+f.Field)
		}
	}
	return strings.Join(out, "\n")
}

// SeededKey returns the key an identifying value was seeded into, if it was.
func (t *Template) SeededKey(value string) (string, bool) { k, ok := t.ids[value]; return k, ok }

// StarlarkString quotes s as a Starlark string literal (s must be valid UTF-8).
func StarlarkString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case !unicode.IsPrint(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// joinExpr builds a Starlark expression concatenating parts (already expressions).
func joinExpr(parts []string) string {
	if len(parts) == 0 {
		return `""`
	}
	return strings.Join(parts, " + ")
}

// drawRun is an expression drawing n characters from alphabet.
func drawRun(alphabet string, n int) string {
	if n == 1 {
		return fmt.Sprintf("random.choice(%s)", StarlarkString(alphabet))
	}
	return fmt.Sprintf(`"".join([random.choice(%s) for i in range(%d)])`, StarlarkString(alphabet), n)
}

const (
	digits   = "0123456789"
	upper    = "ABCDEFGHJKLMNPRSTUVWXYZ"
	lower    = "abcdefghijkmnopqrstuvwxyz"
	hexLower = "0123456789abcdef"
	hexUpper = "0123456789ABCDEF"
)

// classExpr keeps literal the characters keep says to and draws the others from their
// character class, run by run.
func classExpr(s string, keep func(i int, r rune) bool) string {
	var parts []string
	lit := ""
	flushLit := func() {
		if lit != "" {
			parts = append(parts, StarlarkString(lit))
			lit = ""
		}
	}
	rs := []rune(s)
	for i := 0; i < len(rs); {
		r := rs[i]
		var alpha string
		switch {
		case keep(i, r):
		case r >= '0' && r <= '9':
			alpha = digits
		case r >= 'A' && r <= 'Z':
			alpha = upper
		case r >= 'a' && r <= 'z':
			alpha = lower
		}
		if alpha == "" {
			lit += string(r)
			i++
			continue
		}
		j := i
		for j < len(rs) && !keep(j, rs[j]) && classOf(rs[j]) == alpha {
			j++
		}
		flushLit()
		parts = append(parts, drawRun(alpha, j-i))
		i = j
	}
	flushLit()
	return joinExpr(parts)
}

func classOf(r rune) string {
	switch {
	case r >= '0' && r <= '9':
		return digits
	case r >= 'A' && r <= 'Z':
		return upper
	case r >= 'a' && r <= 'z':
		return lower
	}
	return ""
}

// serialExpr keeps a short vendor prefix ending in '-' or ' ' ("S C-" of a Siemens serial,
// "SN " …) and the punctuation, and draws every letter and digit from its class.
func serialExpr(s string) string {
	prefix := 0
	for i, r := range s {
		if i >= 5 || len(s)-i <= 4 {
			break
		}
		if r == '-' || r == ' ' {
			prefix = i + 1
		}
	}
	return classExpr(s, func(i int, r rune) bool { return i < prefix })
}

// hostnameExpr keeps a host name's letters and punctuation and draws one run of digits,
// the unit's number: the shortest run, the last of equally short ones ("PW12-CPU226": 12,
// "CP443-KA42": 42, "plc-hall3-07": 3). A name without digits gets two.
func hostnameExpr(s string) string {
	rs := []rune(s)
	bi, bj := -1, -1
	for i := 0; i < len(rs); {
		if rs[i] < '0' || rs[i] > '9' {
			i++
			continue
		}
		j := i
		for j < len(rs) && rs[j] >= '0' && rs[j] <= '9' {
			j++
		}
		if bi < 0 || j-i <= bj-bi {
			bi, bj = i, j
		}
		i = j
	}
	if bi < 0 {
		return StarlarkString(s+"-") + " + " + drawRun(digits, 2)
	}
	return classExpr(s, func(k int, r rune) bool { return k < bi || k >= bj })
}

var macRe = regexp.MustCompile(`^([0-9A-Fa-f]{2})([:-]?)([0-9A-Fa-f]{2})[:-]?([0-9A-Fa-f]{2})[:-]?([0-9A-Fa-f]{2})[:-]?([0-9A-Fa-f]{2})[:-]?([0-9A-Fa-f]{2})$`)

// macExpr keeps the OUI (the first three octets), the separator and the letter case.
func macExpr(s string) string {
	m := macRe.FindStringSubmatch(s)
	if m == nil || len(s) != 12+5*len(m[2]) { // one separator throughout, or none
		return serialExpr(s)
	}
	sep := m[2]
	alpha := hexLower
	if strings.ToUpper(s) == s && strings.ContainsAny(s, "ABCDEF") {
		alpha = hexUpper
	}
	oui := m[1] + sep + m[3] + sep + m[4] + sep
	octet := fmt.Sprintf("random.choice(%s) + random.choice(%s)", StarlarkString(alpha), StarlarkString(alpha))
	return fmt.Sprintf("%s + %s.join([%s for i in range(3)])", StarlarkString(oui), StarlarkString(sep), octet)
}

// ipExpr keeps the first two octets of an IPv4 address and draws the others (1-254).
func ipExpr(s string) string {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return serialExpr(s)
	}
	b := a.As4()
	return fmt.Sprintf(`"%d.%d." + str(random.randint(0, 255)) + "." + str(random.randint(1, 254))`, b[0], b[1])
}

// IsPrintable reports whether s can be written as XML text and read back the same: valid
// UTF-8 without control characters and without leading or trailing white space.
func IsPrintable(s string) bool {
	if !utf8.ValidString(s) || strings.TrimSpace(s) != s {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError || !unicode.IsPrint(r) && r != ' ' {
			return false
		}
	}
	return true
}

// X escapes s as XML text. Characters XML cannot
// carry become U+FFFD (IsPrintable tells the values that need another encoding).
func X(s string) string { return escape(s, false) }

// XA escapes s as a double-quoted XML attribute value.
func XA(s string) string { return escape(s, true) }

func escape(s string, attr bool) string {
	var b strings.Builder
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		switch {
		case r == '&':
			b.WriteString("&amp;")
		case r == '<':
			b.WriteString("&lt;")
		case r == '>':
			b.WriteString("&gt;")
		case r == '"' && attr:
			b.WriteString("&quot;")
		case r == '\n' || r == '\t':
			b.WriteRune(r)
		case r == '\r':
			b.WriteString("&#13;")
		case r < 0x20 || r == 0xFFFE || r == 0xFFFF:
			b.WriteRune('\uFFFD')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Write writes the template directory to dir (created; files there are overwritten).
func (t *Template) Write(dir string) error {
	if len(t.sections) == 0 {
		return fmt.Errorf("nothing to write: no protocol was cloned")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("template directory: %w", err)
	}
	var b strings.Builder
	b.WriteString("<core>\n    <template>\n")
	ent := func(name, v string) {
		fmt.Fprintf(&b, "        <entity name=\"%s\">%s</entity>\n", name, X(v))
	}
	ent("unit", t.Unit)
	ent("vendor", t.Vendor)
	ent("description", t.Description)
	ent("protocols", strings.Join(t.Protocols(), ", "))
	ent("creator", "icsnare clone")
	b.WriteString("    </template>\n    <databus>\n        <key_value_mappings>\n")
	for _, k := range t.keys {
		if k.comment != "" {
			fmt.Fprintf(&b, "            <!-- %s -->\n", strings.ReplaceAll(k.comment, "--", "- -"))
		}
		if k.fn != "" {
			fmt.Fprintf(&b, "            <key name=\"%s\">\n                <value type=\"function\" param=\"%s\">%s</value>\n            </key>\n", k.name, XA(k.expr), k.fn)
			continue
		}
		fmt.Fprintf(&b, "            <key name=\"%s\">\n                <value type=\"value\">%s</value>\n            </key>\n", k.name, X(k.expr))
	}
	b.WriteString("        </key_value_mappings>\n    </databus>\n</core>\n")
	if err := writeFile(dir, "template.xml", []byte(b.String())); err != nil {
		return err
	}
	for _, proto := range t.Protocols() {
		s := t.sections[proto]
		x := fmt.Sprintf("<%s enabled=\"True\" host=\"0.0.0.0\" port=\"%d\"%s>\n%s</%s>\n", proto, s.port, s.attr, s.body, proto)
		if err := writeFile(dir, proto+"/"+proto+".xml", []byte(x)); err != nil {
			return err
		}
	}
	for rel, data := range t.files {
		if err := writeFile(dir, rel, data); err != nil {
			return err
		}
	}
	return nil
}

func writeFile(dir, rel string, data []byte) error {
	p := filepath.Join(dir, filepath.FromSlash(rel))
	if !strings.HasPrefix(p, filepath.Clean(dir)+string(filepath.Separator)) {
		return fmt.Errorf("%s: outside the template directory", rel)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("template: %w", err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		return fmt.Errorf("template: %w", err)
	}
	return nil
}
