package http

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	nethttp "net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// curl runs curl with args and fails the test on a curl error.
func curl(t *testing.T, args ...string) string {
	t.Helper()
	protocoltest.NeedTool(t, "curl")
	out, err := protocoltest.Run(t, 15*time.Second, "curl", append([]string{"-sS"}, args...)...)
	if err != nil {
		t.Fatalf("curl: %v", err)
	}
	return out
}

func TestCurlRedirect(t *testing.T) {
	srv, _ := start(t)
	out := curl(t, "-i", baseURL(srv)+"/")
	if !strings.HasPrefix(out, "HTTP/1.1 302 Found\r\n") || headerOf(out, "Location") != "/Portal0000.htm" ||
		headerOf(out, "Content-Type") != "text/html" || headerOf(out, "Content-Length") != "0" {
		t.Fatalf("redirect:\n%s", out)
	}
	if headerOf(out, "Server") != "" {
		t.Errorf("Server header without the profile setting one")
	}
	// -L follows it to the start page, which shows the host's databus values.
	page := curl(t, "-L", baseURL(srv)+"/")
	name, _ := srv.Host.Databus.GetString("sysName")
	if !strings.Contains(page, "<title>"+name+" - Start page</title>") {
		t.Fatalf("start page title does not show sysName %q:\n%s", name, page)
	}
}

func TestCurlAlias(t *testing.T) {
	srv, _ := start(t)
	// The page shows the clock, so compare two fetches of the target that agree.
	for try := 0; try < 5; try++ {
		a := curl(t, baseURL(srv)+"/Portal0000.htm")
		b := curl(t, baseURL(srv)+"/index.html")
		c := curl(t, baseURL(srv)+"/index.htm")
		a2 := curl(t, baseURL(srv)+"/Portal0000.htm")
		if a != a2 {
			continue // the clock ticked
		}
		if b != a || c != a {
			t.Fatalf("alias bytes differ:\n%s\n---\n%s", a, b)
		}
		return
	}
	t.Fatal("the page never stayed the same for four requests")
}

func TestCurlChunks(t *testing.T) {
	srv, _ := start(t)
	raw := curl(t, "--raw", "-i", baseURL(srv)+"/DiagBuffer.htm")
	head, body, _ := strings.Cut(raw, "\r\n\r\n")
	if headerOf(head, "Transfer-Encoding") != "chunked" || headerOf(head, "Content-Length") != "" {
		t.Fatalf("head:\n%s", head)
	}
	var sizes []int
	r := bufio.NewReader(strings.NewReader(body))
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("chunk size line: %v (sizes so far %v)", err, sizes)
		}
		var n int
		if _, err := fmt.Sscanf(strings.TrimSpace(line), "%x", &n); err != nil {
			t.Fatalf("chunk size %q: %v", line, err)
		}
		sizes = append(sizes, n)
		if n == 0 {
			break
		}
		if _, err := r.Discard(n + 2); err != nil {
			t.Fatal(err)
		}
	}
	if len(sizes) != 4 || sizes[0] != 1024 || sizes[1] != 512 || sizes[2] <= 0 || sizes[3] != 0 {
		t.Fatalf("chunk sizes %v, want [1024 512 <rest> 0]", sizes)
	}
	// Decoded, it is the whole page.
	if page := curl(t, baseURL(srv)+"/DiagBuffer.htm"); !strings.HasSuffix(page, "</html>\n") || len(page) != 1024+512+sizes[2] {
		t.Fatalf("decoded page of %d bytes", len(page))
	}
}

const switchesXML = `<http enabled="True">
<global><config>
<entity name="protocol_version">HTTP/1.1</entity>
<entity name="update_header_date">%s</entity>
<entity name="disable_method_head">%[2]s</entity>
<entity name="disable_method_trace">%[2]s</entity>
<entity name="disable_method_options">%[2]s</entity>
</config>
<headers><entity name="Date">Thu, 01 Jan 2015 00:00:00 GMT</entity><entity name="Server">Test-Server/1.0</entity><entity name="X-Mode">global</entity></headers></global>
<htdocs>
<node name="/a.html"><headers><entity name="Content-Type">text/html</entity><entity name="x-mode">node</entity></headers></node>
</htdocs>
<statuscodes>
<status name="404"><entity name="Content-Type">text/html</entity></status>
<status name="501"><headers><entity name="Content-Type">text/html</entity><entity name="X-Error">not-implemented</entity></headers></status>
</statuscodes>
</http>`

func TestCurlMethodSwitches(t *testing.T) {
	files := map[string]string{"htdocs/a.html": "<p><condata source=\"databus\" key=\"sysName\"/></p>\n", "statuscodes/501.status": "<h1>501</h1>\n", "statuscodes/404.status": "<h1>404</h1>\n"}
	for _, disabled := range []bool{false, true} {
		t.Run(fmt.Sprint("disabled=", disabled), func(t *testing.T) {
			srv, _ := startProfile(t, testProfile(t, fmt.Sprintf(switchesXML, "true", fmt.Sprint(disabled)), files), "127.0.0.1:0")
			u := baseURL(srv) + "/a.html"
			head := curl(t, "-I", u)
			opts := curl(t, "-i", "-X", "OPTIONS", u)
			trace := curl(t, "-i", "-X", "TRACE", "-H", "X-Probe: 1", u)
			if disabled {
				for name, out := range map[string]string{"HEAD": head, "OPTIONS": opts, "TRACE": trace} {
					if !strings.HasPrefix(out, "HTTP/1.1 501 Not Implemented\r\n") || headerOf(out, "X-Error") != "not-implemented" {
						t.Errorf("%s disabled:\n%s", name, out)
					}
				}
				if !strings.Contains(opts, "<h1>501</h1>") {
					t.Errorf("disabled OPTIONS without the 501 page:\n%s", opts)
				}
				return
			}
			if !strings.HasPrefix(head, "HTTP/1.1 200 OK\r\n") || headerOf(head, "Content-Length") != "15" {
				t.Errorf("HEAD:\n%s", head)
			}
			if !strings.HasPrefix(opts, "HTTP/1.1 200 OK\r\n") || headerOf(opts, "Allow") != "GET,HEAD,POST,OPTIONS,TRACE" {
				t.Errorf("OPTIONS:\n%s", opts)
			}
			if !strings.HasPrefix(trace, "HTTP/1.1 200 OK\r\n") || headerOf(trace, "Content-Type") != "message/http" ||
				!strings.Contains(trace, "\r\n\r\nTRACE /a.html HTTP/1.1\r\n") || !strings.Contains(trace, "X-Probe: 1\r\n") {
				t.Errorf("TRACE:\n%s", trace)
			}
		})
	}
}

func TestCurlHeaders(t *testing.T) {
	files := map[string]string{"htdocs/a.html": "x\n", "statuscodes/404.status": "<h1>404</h1>\n"}
	srv, _ := startProfile(t, testProfile(t, fmt.Sprintf(switchesXML, "false", "false"), files), "127.0.0.1:0")
	out := curl(t, "-i", baseURL(srv)+"/a.html")
	// The node's x-mode replaces the global X-Mode in place; Server only because the profile sets it.
	if strings.Count(strings.ToLower(out), "x-mode:") != 1 || headerOf(out, "X-Mode") != "node" {
		t.Errorf("node header did not override the global one:\n%s", out)
	}
	if headerOf(out, "Server") != "Test-Server/1.0" {
		t.Errorf("Server header missing:\n%s", out)
	}
	// update_header_date off: the profile's Date as written.
	if headerOf(out, "Date") != "Thu, 01 Jan 2015 00:00:00 GMT" {
		t.Errorf("Date with update_header_date off:\n%s", out)
	}
}

func TestCurlDateIsLive(t *testing.T) {
	srv, _ := start(t)
	d1 := headerOf(curl(t, "-I", baseURL(srv)+"/Login.htm"), "Date")
	time.Sleep(1100 * time.Millisecond)
	d2 := headerOf(curl(t, "-I", baseURL(srv)+"/Login.htm"), "Date")
	if d1 == d2 {
		t.Fatalf("Date did not change: %q", d1)
	}
	for _, d := range []string{d1, d2} {
		ts, err := nethttp.ParseTime(d)
		if err != nil || time.Since(ts).Abs() > time.Minute {
			t.Errorf("Date %q is not now (%v)", d, err)
		}
	}
}

func TestCurl404(t *testing.T) {
	srv, _ := start(t)
	out := curl(t, "-i", baseURL(srv)+"/tests/unittest_base.html")
	if !strings.HasPrefix(out, "HTTP/1.1 404 Not Found\r\n") || headerOf(out, "Content-Type") != "text/html" ||
		headerOf(out, "Cache-Control") != "no-cache" || !strings.Contains(out, "<title>404 Not Found</title>") {
		t.Fatalf("404:\n%s", out)
	}
}

// TestTraversal sends traversal attempts, with curl and raw, and wants the 404 page for each.
func TestTraversal(t *testing.T) {
	srv, _ := start(t)
	want := curl(t, "-i", baseURL(srv)+"/no-such-page")
	wantBody := want[strings.Index(want, "\r\n\r\n"):]
	for _, p := range []string{
		"/../http.xml", "/../../../../etc/passwd", "/htdocs/../http.xml", "/css/../../http.xml",
		"/%2e%2e/http.xml", "/%2e%2e/%2e%2e/etc/passwd", "/%2E%2E%2Fhttp.xml", "/.%2e/template.xml",
		"//etc/passwd", "/etc/passwd", "/http/http.xml", "/statuscodes/404.status", "/htdocs/Portal0000.htm",
		"/..%5c..%5cwindows%5cwin.ini", "/Portal0000.htm%00", "/Portal0000.htm%00.jpg", "/%00",
	} {
		out := curl(t, "-i", "--path-as-is", baseURL(srv)+p)
		if !strings.HasPrefix(out, "HTTP/1.1 404 Not Found\r\n") || !strings.HasSuffix(out, wantBody) {
			t.Errorf("%s:\n%s", p, out)
		}
	}
	// Raw requests curl will not send: a NUL byte, absolute paths and absolute-form targets.
	for _, target := range []string{"/Portal0000.htm\x00", "/\x00/../etc/passwd", "C:\\Windows\\win.ini",
		"/C:/Windows/win.ini", "http://x/../../etc/passwd", "file:///etc/passwd", "*"} {
		out := rawRequest(t, srv.Addr.String(), "GET "+target+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		if !strings.HasPrefix(out, "HTTP/1.1 404 Not Found\r\n") || !strings.HasSuffix(out, wantBody) {
			t.Errorf("%q:\n%s", target, out)
		}
	}
}

func rawRequest(t *testing.T, addr, req string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	_, _ = b.ReadFrom(c)
	return b.String()
}

func TestCurlLoginRecorded(t *testing.T) {
	srv, _ := start(t)
	out := curl(t, "-i", "--data-urlencode", "Login=admin", "--data-urlencode", "Password=Siemens#1",
		"--data-urlencode", "Redirection=/Portal0000.htm", "-A", "Mozilla/5.0 test", baseURL(srv)+"/FormLogin?lang=de")
	if !strings.HasPrefix(out, "HTTP/1.1 200 OK\r\n") || !strings.Contains(out, "Login failed") {
		t.Fatalf("login answer:\n%s", out)
	}
	e := nthEvent(t, srv, "http.request", 1)
	for k, want := range map[string]any{"method": "POST", "path": "/FormLogin", "query": "lang=de", "status": 200,
		"user_agent": "Mozilla/5.0 test", "host": srv.Addr.String(), "username": "admin", "password": "Siemens#1", "auth": "form"} {
		if got := field(e, k); got != want {
			t.Errorf("request event %s = %v, want %v", k, got, want)
		}
	}
	if !strings.Contains(fmt.Sprint(field(e, "body")), "Password=Siemens%231") || !e.Text {
		t.Errorf("body field %v", field(e, "body"))
	}
	l := nthEvent(t, srv, "http.login", 1)
	if field(l, "username") != "admin" || field(l, "password") != "Siemens#1" {
		t.Errorf("login event %+v", l.Fields)
	}
	// Basic authorization counts too.
	curl(t, "-u", "operator:1234", baseURL(srv)+"/Login.htm")
	if l := nthEvent(t, srv, "http.login", 2); field(l, "username") != "operator" || field(l, "password") != "1234" || field(l, "auth") != "basic" {
		t.Errorf("basic login event %+v", l.Fields)
	}
}

func TestDatabusSetShows(t *testing.T) {
	srv, _ := start(t)
	srv.Host.Databus.Set("sysLocation", "Pumpenhaus <Nord> & Sued")
	page := curl(t, baseURL(srv)+"/Portal0000.htm")
	if !strings.Contains(page, "<td>Pumpenhaus &lt;Nord&gt; &amp; Sued</td>") {
		t.Fatalf("sysLocation set on the databus does not show (escaped):\n%s", page)
	}
	if m := regexp.MustCompile(`Module time:</td><td>(\d\d\.\d\d\.\d{4} \d\d:\d\d:\d\d)</td>`).FindStringSubmatch(page); m == nil {
		t.Errorf("no module time on the start page")
	}
	if strings.Contains(page, "condata") || strings.Contains(page, "1993") {
		t.Errorf("template leak or fixed date on the page")
	}
}
