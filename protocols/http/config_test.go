package http

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

func configure(t *testing.T, xml string, files map[string]string) (*service, []string, error) {
	t.Helper()
	p := testProfile(t, xml, files)
	svc, err := protocol{}.Configure(p.Sections["http"], nil)
	if err != nil {
		return nil, p.Warnings(), err
	}
	return svc.(*service), p.Warnings(), nil
}

func TestConfigErrors(t *testing.T) {
	wrap := func(htdocs string) string {
		return `<http enabled="True"><htdocs>` + htdocs + `</htdocs></http>`
	}
	tests := []struct{ name, xml, want string }{
		{"relative node", wrap(`<node name="index.html"/>`), `http.xml:1: <node>: node name "index.html" must be an absolute`},
		{"traversal node", wrap(`<node name="/../x"/>`), "must be an absolute, clean path"},
		{"duplicate node", wrap(`<node name="/a"/><node name="/a"/>`), `node "/a" defined twice`},
		{"alias to nothing", wrap(`<node name="/a"><alias>/b</alias></node>`), `alias "/b" names no node`},
		{"alias chain", wrap(`<node name="/a"><alias>/b</alias></node><node name="/b"><alias>/c</alias></node><node name="/c"/>`), "itself an alias"},
		{"bad status", wrap(`<node name="/a"><status>99</status></node>`), "<status>: status \"99\""},
		{"bad tarpit", wrap(`<node name="/a"><tarpit>1;x</tarpit></node>`), "<tarpit>: tarpit"},
		{"reversed tarpit", wrap(`<node name="/a"><tarpit>2;1</tarpit></node>`), "maximum below minimum"},
		{"huge tarpit", wrap(`<node name="/a"><tarpit>3600</tarpit></node>`), "more than 1m0s"},
		{"bad chunks", wrap(`<node name="/a"><chunks>10,-1</chunks></node>`), "chunk size \"-1\""},
		{"bad proxy", wrap(`<node name="/a"><proxy>ftp://x/</proxy></node>`), "<proxy>: proxy"},
		{"bad header", wrap(`<node name="/a"><headers><entity name="Bad Name">x</entity></headers></node>`), "not an HTTP token"},
		{"bad separator", wrap(`<node name="/a"><headers><entity name="X" separator=" : ">1</entity></headers></node>`), `separator " : "`},
		{"bad status page", `<http enabled="True"><statuscodes><status name="4040"/></statuscodes></http>`, "not an HTTP status code"},
		{"bad version", `<http enabled="True"><global><config><entity name="protocol_version">HTTP/2</entity></config></global></http>`, "protocol_version"},
		{"bad bool", `<http enabled="True"><global><config><entity name="disable_method_head">maybe</entity></config></global></http>`, "not a boolean"},
		{"eval error", wrap(`<node name="/a"><headers><entity name="Content-Type">text/html</entity></headers></node>`), "a:3: <condata>: eval"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			files := map[string]string{"htdocs/a": "x\n\n<condata source=\"eval\" key=\"1 +\"/>"}
			_, _, err := configure(t, tc.xml, files)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestConfigWarnings(t *testing.T) {
	xml := `<http enabled="True"><global><config><entity name="colour">red</entity></config>
<headers><entity name="Content-Length">5</entity></headers></global>
<htdocs><node name="/a"><bogus/></node><node name="/missing.html"/></htdocs></http>`
	_, warns, err := configure(t, xml, map[string]string{"htdocs/a": "x"})
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(warns, "\n")
	for _, w := range []string{`unknown config entity "colour"`, "Content-Length is computed", "<bogus>: unknown element", "no file htdocs/missing.html"} {
		if !strings.Contains(all, w) {
			t.Errorf("warnings lack %q:\n%s", w, all)
		}
	}
}

func TestConfigValues(t *testing.T) {
	xml := `<http enabled="True"><global><config>
<entity name="protocol_version">HTTP/1.0</entity><entity name="update_header_date">False</entity>
<entity name="disable_method_head">True</entity><entity name="tarpit">0.5;1.5</entity></config>
<headers><entity name="A">1</entity><entity name="B">2</entity></headers></global>
<htdocs><node name="/x"><headers><entity name="b">3</entity><entity name="C">4</entity></headers><tarpit>2</tarpit><chunks>3, 5</chunks></node></htdocs></http>`
	svc, _, err := configure(t, xml, map[string]string{"htdocs/x": "hello"})
	if err != nil {
		t.Fatal(err)
	}
	c := svc.cfg
	if c.version != "HTTP/1.0" || c.updateDate || !c.disableHead || c.tarpit != (tarpit{500 * time.Millisecond, 1500 * time.Millisecond}) {
		t.Errorf("global config %+v", c)
	}
	n := c.nodes["/x"]
	want := []header{{name: "A", value: "1"}, {name: "b", value: "3"}, {name: "C", value: "4"}}
	if len(n.merged) != len(want) {
		t.Fatalf("merged headers %v", n.merged)
	}
	for i := range want {
		if n.merged[i] != want[i] {
			t.Errorf("merged headers %v, want %v", n.merged, want)
		}
	}
	if *n.tarpit != (tarpit{2 * time.Second, 2 * time.Second}) || len(n.chunks) != 2 || n.chunks[1] != 5 {
		t.Errorf("node %+v", n)
	}
}

// TestSymlinkNotServed puts a symbolic link to a file outside the profile into htdocs.
func TestSymlinkNotServed(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("top secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := testProfile(t, `<http enabled="True"><htdocs><node name="/leak.html"/><node name="/dir/x"/></htdocs></http>`, nil)
	dir := p.Source
	htdocs := filepath.Join(dir, "http", "htdocs")
	if err := os.MkdirAll(htdocs, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(htdocs, "leak.html")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Dir(secret), filepath.Join(htdocs, "dir")); err != nil {
		t.Fatal(err)
	}
	p, err := profiles.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := protocol{}.Configure(p.Sections["http"], nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"/leak.html", "/dir/x"} {
		if b := svc.(*service).cfg.nodes[name].body; b != nil {
			t.Errorf("%s: symlinked file loaded: %q", name, b.static)
		}
	}
	if w := strings.Join(p.Warnings(), "\n"); strings.Count(w, "symbolic links are not served") != 2 {
		t.Errorf("warnings:\n%s", w)
	}
}

func TestDefaultProfileClean(t *testing.T) {
	p, err := profiles.Open(protocoltest.StationDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (protocol{}).Configure(p.Sections["http"], nil); err != nil {
		t.Fatal(err)
	}
	if w := p.Warnings(); len(w) > 0 {
		t.Fatalf("warnings: %v", w)
	}
	// Nothing of Conpot's fingerprints (conpot.md §5.1) ships in the pages.
	for _, dir := range []string{"http/htdocs", "http/statuscodes", "http"} {
		entries, _ := fsReadDir(p, dir)
		for _, e := range entries {
			b, _ := fsReadFile(p, dir+"/"+e)
			for _, bad := range []string{"Technodrome", "1993", "timeticks", "unittest", "Mouser", "Overview - ", "Set-cookie"} {
				if strings.Contains(string(b), bad) {
					t.Errorf("%s/%s contains %q", dir, e, bad)
				}
			}
		}
	}
	if _, ok := p.Sections["http"]; !ok {
		t.Fatal("default profile has no http section")
	}
}
