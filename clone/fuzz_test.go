package clone

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/icsnare/icsnare/profiles"
)

// FuzzSeed: every value of every kind gives an expression that compiles and draws a value
// of the same length in runes (an IPv4 address excepted).
func FuzzSeed(f *testing.F) {
	for _, s := range []string{"00:1b:1b:5f:26:2f", "S C-C2UR28922012", "PW12-CPU226", "192.0.2.1", "", "\"\\\n\x00", "ü-7"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) || len(s) > 200 {
			return
		}
		for _, kind := range []string{KindMAC, KindSerial, KindHostname, KindIP} {
			tpl := NewTemplate(netip.MustParseAddr("127.38.0.1"))
			k := tpl.Seed(kind, "fuzz", "f", s)
			expr := tpl.keys[tpl.keyIndex[k]].expr
			e, err := profiles.CompileExpr("fuzz", expr)
			if err != nil {
				t.Fatalf("%s of %q: %s: %v", kind, s, expr, err)
			}
			v, err := e.Eval(7)
			if err != nil {
				t.Fatalf("%s of %q: %s: %v", kind, s, expr, err)
			}
			got, _ := v.(string)
			if kind == KindIP && strings.Count(got, ".") == 3 {
				continue
			}
			want := utf8.RuneCountInString(s)
			if kind == KindHostname && !strings.ContainsAny(s, digits) {
				want += 3
			}
			if utf8.RuneCountInString(got) != want {
				t.Fatalf("%s of %q drew %q", kind, s, got)
			}
		}
	})
}

// FuzzPageLinks: links of any page are clean absolute paths of the same site.
func FuzzPageLinks(f *testing.F) {
	f.Add("/", `<a href="Portal0000.htm">x</a><img src='/img/a.png'><a href=../../etc/passwd>`, "")
	f.Add("/a/b.htm", `<a href="http://other/x">`, "/next?x=1")
	f.Add("/", `<a href="javascript:alert(1)"><a href="//evil/x"><a href="?cmd=stop">`, "http://dev/Portal.htm")
	f.Fuzz(func(t *testing.T, pth, body, loc string) {
		if !strings.HasPrefix(pth, "/") {
			return
		}
		h := http.Header{"Content-Type": {"text/html"}}
		if loc != "" {
			h.Set("Location", loc)
		}
		for _, l := range pageLinks(&httpPage{path: pth, header: h, body: []byte(body)}) {
			if !strings.HasPrefix(l, "/") || strings.Contains(l, "..") || strings.ContainsAny(l, "?\"<>\\") {
				t.Fatalf("link %q from %q", l, body)
			}
		}
	})
}
