package profiles

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// conpotDir is where the repository keeps Conpot's templates as test data.
const conpotDir = "../testdata/conpot"

// shape renders a Node tree for comparison: names, sorted attributes and whitespace-free
// lower-cased text, children in a canonical order; positions and comments are ignored.
func shape(n *Node) string {
	attrs := make([]string, 0, len(n.Attrs))
	for _, a := range n.Attrs {
		attrs = append(attrs, a.Name.Local+"="+strings.ToLower(a.Value))
	}
	sort.Strings(attrs)
	text := strings.ToLower(strings.Join(strings.Fields(n.Text), ""))
	kids := make([]string, 0, len(n.Children))
	for _, c := range n.Children {
		kids = append(kids, shape(c))
	}
	sort.Strings(kids)
	return fmt.Sprintf("<%s %s>%s%s</%s>", n.Name, strings.Join(attrs, " "), text, strings.Join(kids, ""), n.Name)
}

// TestTOMLMatchesXML loads Conpot's default template in both forms: the metadata, every
// databus key (with its value) and every protocol section come out the same.
func TestTOMLMatchesXML(t *testing.T) {
	x, err := LoadDir(filepath.Join(conpotDir, "default"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := LoadDir(filepath.Join(conpotDir, "default-toml"))
	if err != nil {
		t.Fatal(err)
	}
	if !m.TOML || x.TOML {
		t.Fatalf("TOML flags: xml %v, toml %v", x.TOML, m.TOML)
	}
	if x.Meta != m.Meta {
		t.Errorf("meta: xml %+v, toml %+v", x.Meta, m.Meta)
	}
	if !reflect.DeepEqual(x.Schema.Keys(), m.Schema.Keys()) {
		t.Fatalf("databus keys:\nxml  %v\ntoml %v", x.Schema.Keys(), m.Schema.Keys())
	}
	for _, k := range x.Schema.Keys() {
		xv, err1 := x.Schema.Sample(k)
		mv, err2 := m.Schema.Sample(k)
		if err1 != nil || err2 != nil {
			t.Fatalf("%s: %v %v", k, err1, err2)
		}
		if k == "Uptime" {
			continue // seconds since start: both are numbers
		}
		if !reflect.DeepEqual(xv, mv) {
			t.Errorf("databus %s: xml %#v, toml %#v", k, xv, mv)
		}
	}
	if !reflect.DeepEqual(x.ProtocolNames(), m.ProtocolNames()) {
		t.Fatalf("sections: xml %v, toml %v", x.ProtocolNames(), m.ProtocolNames())
	}
	for _, name := range x.ProtocolNames() {
		xs, ms := x.Sections[name], m.Sections[name]
		if xs.Port != ms.Port || xs.Host != ms.Host {
			t.Errorf("%s: port/host xml %d %s, toml %d %s", name, xs.Port, xs.Host, ms.Port, ms.Host)
		}
		if a, b := shape(xs.Root), shape(ms.Root); a != b {
			t.Errorf("%s section differs:\nxml  %s\ntoml %s", name, a, b)
		}
		if ms.File != filepath.Join(conpotDir, "default-toml", name+".toml") {
			t.Errorf("%s: file %s", name, ms.File)
		}
	}
	// Auxiliary files stay in <proto>/: the HTTP pages are there for the TOML form too.
	if _, err := m.Sections["http"].FS.Open("htdocs/tests/unittest_base.html"); err != nil {
		t.Errorf("http pages of the TOML form: %v", err)
	}
}

// TestTOMLLines: nodes made from TOML carry the line of their key.
func TestTOMLLines(t *testing.T) {
	m, err := LoadDir(filepath.Join(conpotDir, "default-toml"))
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(filepath.Join(conpotDir, "default-toml", "enip.toml"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(src), "\n")
	sn := m.Sections["enip"].Root.Child("device_info").Child("SerialNumber")
	if sn == nil || !strings.HasPrefix(lines[sn.Line-1], "SerialNumber =") {
		t.Fatalf("SerialNumber at line %d", sn.Line)
	}
	tags := m.Sections["enip"].Root.Child("tags").ChildrenNamed("tag")
	if len(tags) != 3 {
		t.Fatalf("%d tags", len(tags))
	}
	for _, tag := range tags {
		name, _ := tag.Attr("name")
		v := tag.Child("value")
		if v == nil || !strings.HasPrefix(lines[v.Line-1], "value =") || !strings.Contains(lines[v.Line-4], `name = "`+name+`"`) {
			t.Errorf("tag %s: value at line %d", name, v.Line)
		}
	}
}

// TestTOMLErrors: where Conpot refuses a TOML template, the loader names file and line.
func TestTOMLErrors(t *testing.T) {
	const tmpl = "[core.template]\nunit = \"u\"\n\n[core.databus.key_value_mappings]\nA = \"a\"\n"
	tests := []struct {
		name, file, body string
		line             int
		want             string
	}{
		{"malformed", "template.toml", "[core.template]\nunit = \"u\n", 2, "malformed TOML"},
		{"bad databus table", "template.toml", tmpl + "B = { fn = \"x\" }\n", 6, "must be { value"},
		{"unknown function", "template.toml", tmpl + "C = { function = \"conpot.emulators.misc.nothing.Nope\" }\n", 6, "is not implemented by this icsnare"},
		{"bad expression", "template.toml", tmpl + "D = { value = \"[1,\" }\n", 6, "key \"D\""},
		{"no enabled", "modbus.toml", "[modbus]\nhost = \"0.0.0.0\"\nport = 5020\n", 1, "no enabled key"},
		{"wrong table", "modbus.toml", "[snmp]\nenabled = true\n", 1, "one table [modbus]"},
		{"enabled not a bool", "modbus.toml", "[modbus]\nenabled = \"yes\"\n", 1, "true or false"},
		{"item name not an element name", "s7comm.toml", "[s7comm]\nenabled = true\n[[s7comm.system_status_lists]]\nid = \"W#16#xy1C\"\nitems = [\n  { id = \"W#16#0001\", name = \"1 bad\", value = \"k\" },\n]\n", 6, "needs a name that is an element name"},
		{"host a table", "modbus.toml", "[modbus]\nenabled = true\n[modbus.host]\na = 1\n", 3, "must be a value"},
		{"nested too deep", "modbus.toml", "[modbus]\nenabled = true\nx = " + strings.Repeat("{ a = ", 100) + "1" + strings.Repeat(" }", 100) + "\n", 3, "nested deeper than 64"},
		{"entities not a table", "http.toml", "[http]\nenabled = true\n[http.global]\nconfig = 5\n", 4, "must be a table of names and values"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			files := map[string]string{"template.toml": tmpl}
			files[tt.file] = tt.body
			for f, b := range files {
				if err := os.WriteFile(filepath.Join(dir, f), []byte(b), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, err := LoadDir(dir)
			want := fmt.Sprintf("%s:%d: ", filepath.Join(dir, tt.file), tt.line)
			if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %s… %q", err, want, tt.want)
			}
		})
	}
}

// TestTOMLDatabusValues: plain scalars are kept as they are (a string is not evaluated),
// { value } is an expression, { function, params } a databus function with arguments.
func TestTOMLDatabusValues(t *testing.T) {
	dir := t.TempDir()
	body := `[core.template]
unit = "u"
[core.databus.key_value_mappings]
s = "[1, 2]"
i = 7
f = 2.5
b = true
l = [1, "a"]
e = { value = "[1, 2]" }
u = { function = "conpot.emulators.misc.uptime.Uptime", params = [0] }
`
	if err := os.WriteFile(filepath.Join(dir, "template.toml"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tftp.toml"), []byte("[tftp]\nenabled = false\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"s": "[1, 2]", "i": int64(7), "f": 2.5, "b": true, "l": []any{int64(1), "a"}, "e": []any{int64(1), int64(2)}}
	for k, w := range want {
		if v, err := p.Schema.Sample(k); err != nil || !reflect.DeepEqual(v, w) {
			t.Errorf("%s = %#v (%v), want %#v", k, v, err, w)
		}
	}
	if v, err := p.Schema.Sample("u"); err != nil || v.(int64) < 1_000_000_000 {
		t.Errorf("uptime since the epoch: %v %v", v, err)
	}
	if !reflect.DeepEqual(p.Disabled, []string{"tftp"}) {
		t.Errorf("disabled %v", p.Disabled)
	}
}
