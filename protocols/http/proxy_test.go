package http

import (
	"fmt"
	"io"
	nethttp "net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

const proxyXML = `<http enabled="True">
<global><config><entity name="update_header_date">true</entity></config></global>
<htdocs>
<node name="/plc"><proxy>%[1]s</proxy></node>
<node name="/slow"><proxy>%[1]s</proxy></node>
<node name="/big"><proxy>http://%[1]s/</proxy></node>
<node name="/down"><proxy>127.0.0.1:1</proxy></node>
</htdocs>
<statuscodes>
<status name="404"><proxy>%[1]s</proxy></status>
<status name="503"><entity name="Content-Type">text/html</entity></status>
</statuscodes>
</http>`

// TestProxy forwards to a local test server only: node proxy, status page proxy, and the
// 503 page when the upstream is down, too slow or too large.
func TestProxy(t *testing.T) {
	up := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		body, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/slow":
			time.Sleep(time.Second)
		case "/big":
			w.Write([]byte(strings.Repeat("x", 4096)))
			return
		}
		w.Header().Set("X-Upstream", "yes")
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(201)
		fmt.Fprintf(w, "%s %s?%s ua=%q body=%s", r.Method, r.URL.Path, r.URL.RawQuery, r.UserAgent(), body)
	}))
	defer up.Close()
	host := strings.TrimPrefix(up.URL, "http://")
	srv, _ := startProfile(t, testProfile(t, fmt.Sprintf(proxyXML, host), map[string]string{"statuscodes/503.status": "<h1>busy</h1>\n"}), "127.0.0.1:0",
		func(svc *service) {
			svc.cfg.nodes["/slow"].proxy.timeout = 200 * time.Millisecond
			svc.cfg.nodes["/big"].proxy.limit = 1024
		})

	tests := []struct {
		name, path string
		args       []string
		status     string
		contains   []string
	}{
		{"node", "/plc?a=1", []string{"-A", ""}, "201 Created", []string{"X-Upstream: yes", `GET /plc?a=1 ua="" body=`}},
		{"post body", "/plc", []string{"-d", "k=v"}, "201 Created", []string{`POST /plc? ua="curl/7.88.1" body=k=v`}},
		{"status page", "/unknown", nil, "201 Created", []string{"GET /unknown?"}},
		{"timeout", "/slow", nil, "503 Service Unavailable", []string{"<h1>busy</h1>"}},
		{"too large", "/big", nil, "503 Service Unavailable", []string{"<h1>busy</h1>"}},
		{"down", "/down", nil, "503 Service Unavailable", []string{"<h1>busy</h1>"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := curl(t, append(append([]string{"-i"}, tc.args...), baseURL(srv)+tc.path)...)
			if !strings.HasPrefix(out, "HTTP/1.1 "+tc.status+"\r\n") {
				t.Fatalf("got:\n%s", out)
			}
			for _, w := range tc.contains {
				if !strings.Contains(out, w) {
					t.Errorf("answer lacks %q:\n%s", w, out)
				}
			}
			if n := strings.Count(out, "\r\nDate: "); n != 1 {
				t.Errorf("%d Date headers", n)
			}
		})
	}
}
