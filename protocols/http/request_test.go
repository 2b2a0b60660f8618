package http

import (
	"errors"
	"strings"
	"testing"
)

func TestParseRequest(t *testing.T) {
	tests := []struct {
		name   string
		head   string
		status int // 0: parses
		check  func(t *testing.T, r *request)
	}{
		{"curl", "GET / HTTP/1.1\r\nHost: 127.0.0.1:8800\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n", 0, func(t *testing.T, r *request) {
			if r.method != "GET" || r.target != "/" || r.minor != 1 || r.host != "127.0.0.1:8800" || r.ua != "curl/7.88.1" || r.closeConn {
				t.Errorf("got %+v", r)
			}
		}},
		{"leading blank lines and bare LF", "\r\n\nHEAD /x HTTP/1.0\nConnection: keep-alive\n\n", 0, func(t *testing.T, r *request) {
			if r.method != "HEAD" || r.minor != 0 || !r.keepAlive10 || r.closeConn {
				t.Errorf("got %+v", r)
			}
		}},
		{"HTTP/1.0 closes by default", "GET / HTTP/1.0\r\n\r\n", 0, func(t *testing.T, r *request) {
			if !r.closeConn {
				t.Error("HTTP/1.0 without keep-alive must close")
			}
		}},
		{"connection close", "GET / HTTP/1.1\r\nConnection: TE, close\r\n\r\n", 0, func(t *testing.T, r *request) {
			if !r.closeConn {
				t.Error("want close")
			}
		}},
		{"content length", "POST /FormLogin HTTP/1.1\r\nContent-Length: 12\r\nExpect: 100-continue\r\n\r\n", 0, func(t *testing.T, r *request) {
			if r.contentLength != 12 || !r.expect100 {
				t.Errorf("got %+v", r)
			}
		}},
		{"chunked with content length closes", "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 0, func(t *testing.T, r *request) {
			if !r.chunked || r.contentLength != -1 || !r.closeConn {
				t.Errorf("got %+v", r)
			}
		}},
		{"raw NUL in target is left to path resolution", "GET /a\x00b HTTP/1.1\r\n\r\n", 0, func(t *testing.T, r *request) {
			if _, ok := resolvePath(r.target); ok {
				t.Error("NUL path resolved")
			}
		}},
		{"absolute form", "GET http://example.com/index.html?a=1 HTTP/1.1\r\n\r\n", 0, func(t *testing.T, r *request) {
			if p, q := splitTarget(r.target); p != "/index.html" || q != "a=1" {
				t.Errorf("split = %q %q", p, q)
			}
		}},
		{"no version", "GET /\r\n\r\n", 400, nil},
		{"http2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, nil},
		{"bad version", "GET / HTTP/1.1x\r\n\r\n", 400, nil},
		{"space in target", "GET /a b HTTP/1.1\r\n\r\n", 400, nil},
		{"bad method", "G(T / HTTP/1.1\r\n\r\n", 400, nil},
		{"obs fold", "GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", 400, nil},
		{"space before colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400, nil},
		{"no colon", "GET / HTTP/1.1\r\nHost\r\n\r\n", 400, nil},
		{"NUL in header", "GET / HTTP/1.1\r\nA: b\x00c\r\n\r\n", 400, nil},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, nil},
		{"bad content length", "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400, nil},
		{"conflicting content lengths", "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400, nil},
		{"gzip transfer coding", "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501, nil},
		{"TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400, nil},
		{"unterminated", "GET / HTTP/1.1\r\nHost: x\r\n", 400, nil},
		{"too many headers", "GET / HTTP/1.1\r\n" + strings.Repeat("A: b\r\n", maxHeaders+1) + "\r\n", 400, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := parseRequest([]byte(tc.head))
			if tc.status == 0 {
				if err != nil {
					t.Fatalf("parse: %v", err)
				}
				tc.check(t, r)
				return
			}
			var he *httpError
			if !errors.As(err, &he) || he.status != tc.status {
				t.Fatalf("err = %v, want status %d", err, tc.status)
			}
		})
	}
}

func TestResolvePath(t *testing.T) {
	tests := []struct {
		in   string
		want string // "" means unresolvable
	}{
		{"/", "/"},
		{"/index.html", "/index.html"},
		{"/index%2ehtml", "/index.html"},
		{"/css/station.css", "/css/station.css"},
		{"/dir/", "/dir/"},
		{"/a%20b", "/a b"},
		{"/../etc/passwd", ""},
		{"/..", ""},
		{"/a/./b", ""},
		{"/a/../b", ""},
		{"/%2e%2e/%2e%2e/etc/passwd", ""},
		{"/%2E%2E/etc/passwd", ""},
		{"/.%2e/x", ""},
		{"//etc/passwd", ""},
		{"/a//b", ""},
		{"etc/passwd", ""},
		{"C:\\windows\\win.ini", ""},
		{"/..\\..\\windows", ""},
		{"/a%5c..%5cb", ""},
		{"/index.html%00", ""},
		{"/index.html\x00.jpg", ""},
		{"/a%0d%0aSet-Cookie:x", ""},
		{"/bad%zz", ""},
		{"/trunc%2", ""},
		{"%2fetc%2fpasswd", "/etc/passwd"}, // resolves, but names no node: a 404
		{"", ""},
		{"*", ""},
	}
	for _, tc := range tests {
		got, ok := resolvePath(tc.in)
		if tc.want == "" {
			if ok {
				t.Errorf("resolvePath(%q) = %q, want unresolvable", tc.in, got)
			}
			continue
		}
		if !ok || got != tc.want {
			t.Errorf("resolvePath(%q) = %q, %v; want %q", tc.in, got, ok, tc.want)
		}
	}
}

func TestSplitTarget(t *testing.T) {
	tests := []struct{ in, path, query string }{
		{"/a?b=c", "/a", "b=c"},
		{"/a", "/a", ""},
		{"http://h:80/x/y?q", "/x/y", "q"},
		{"HTTP://h", "/", ""},
		{"/a#frag", "/a", ""},
		{"/p?u=http://x/", "/p", "u=http://x/"},
		{"*", "*", ""},
	}
	for _, tc := range tests {
		p, q := splitTarget(tc.in)
		if p != tc.path || q != tc.query {
			t.Errorf("splitTarget(%q) = %q, %q; want %q, %q", tc.in, p, q, tc.path, tc.query)
		}
	}
}

// FuzzParseRequest feeds arbitrary heads to the parser and the path resolver and checks
// that a resolved path can never reach outside the document tree.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: 127.0.0.1:8800\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n", // curl (probe-clients.pcap)
		"GET /index.html HTTP/1.1\r\nHost: 127.0.0.1:8800\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n",
		"GET / HTTP/1.1\r\nConnection: close\r\nUser-Agent: Mozilla/5.0 (compatible; Nmap Scripting Engine; https://nmap.org/book/nse.html)\r\nHost: 127.0.0.1\r\n\r\n",
		"OPTIONS / RTSP/1.0\r\n\r\n",
		"TRACE /index.html HTTP/1.1\r\nHost: localhost\r\n\r\n",
		"POST /FormLogin HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 27\r\n\r\n",
		"GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\n\r\n",
		"GET http://example.com/../x?y HTTP/1.1\r\n\r\n",
		"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, head []byte) {
		r, err := parseRequest(head)
		if err != nil {
			var he *httpError
			if !errors.As(err, &he) || he.status < 400 {
				t.Fatalf("error %v is not an HTTP error", err)
			}
			return
		}
		p, _ := splitTarget(r.target)
		checkResolved(t, p)
	})
}

// FuzzResolvePath checks the resolver's promise on arbitrary paths.
func FuzzResolvePath(f *testing.F) {
	for _, s := range []string{"/", "/index.html", "/../x", "/%2e%2e/", "//etc", "/a%00", "/a/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) { checkResolved(t, p) })
}

func checkResolved(t *testing.T, raw string) {
	p, ok := resolvePath(raw)
	if !ok {
		return
	}
	if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "\x00\\") {
		t.Fatalf("resolvePath(%q) = %q", raw, p)
	}
	for i, seg := range strings.Split(p[1:], "/") {
		if seg == "." || seg == ".." || (seg == "" && i != strings.Count(p[1:], "/")) {
			t.Fatalf("resolvePath(%q) = %q has segment %q", raw, p, seg)
		}
	}
}
