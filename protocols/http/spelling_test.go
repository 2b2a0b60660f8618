package http

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// rawExchange sends one raw request and returns the whole answer (the server closes).
func rawExchange(t *testing.T, addr, req string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(io.LimitReader(c, 1<<16))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestHeaderSpelling: a profile writes headers in its device's order and spelling: a
// separator without the space, and the computed Content-Length and Connection where the
// profile places them.
func TestHeaderSpelling(t *testing.T) {
	xml := `<http enabled="True"><global><config><entity name="protocol_version">HTTP/1.0</entity>
<entity name="update_header_date">false</entity></config></global>
<htdocs><node name="/"><status>302</status><reason>Object Moved</reason><file>/e</file><headers>
<entity name="Content-Type" separator=":">text/html</entity><entity name="Content-Length"></entity>
<entity name="Connection">close</entity><entity name="Location">/x</entity></headers></node>
<node name="/plain"><file>/e</file><headers><entity name="Content-Type" separator=": ">text/plain</entity></headers></node>
<node name="/len"><file>/e</file><headers><entity name="Content-Length" separator=":"></entity><entity name="X-After">1</entity></headers></node>
</htdocs></http>`
	srv, _ := startProfile(t, testProfile(t, xml, map[string]string{"htdocs/e": ""}), "127.83.81.1:0")
	for _, tc := range []struct{ path, req, want string }{
		{"/", "GET / HTTP/1.0\r\n\r\n", "HTTP/1.0 302 Object Moved\r\nContent-Type:text/html\r\nContent-Length: 0\r\nConnection: close\r\nLocation: /x\r\n\r\n"},
		// An HTTP/1.0 server closes after each answer, keep-alive asked or not.
		{"/", "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", "HTTP/1.0 302 Object Moved\r\nContent-Type:text/html\r\nContent-Length: 0\r\nConnection: close\r\nLocation: /x\r\n\r\n"},
		{"/plain", "GET /plain HTTP/1.0\r\n\r\n", "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n\r\n"},
		{"/len", "GET /len HTTP/1.0\r\n\r\n", "HTTP/1.0 200 OK\r\nContent-Length:0\r\nX-After: 1\r\n\r\n"},
	} {
		if got := rawExchange(t, srv.Addr.String(), tc.req); got != tc.want {
			t.Errorf("%q:\n got %q\nwant %q", tc.req, got, tc.want)
		}
	}
}

// TestS71200Signature: the S7-1200 persona's answer to nmap's GetRequest matches the
// "Siemens Simatic S7-1200 PLC httpd" line of nmap-service-probes.
func TestS71200Signature(t *testing.T) {
	const probes = "/usr/share/nmap/nmap-service-probes"
	b, err := os.ReadFile(probes)
	if os.IsNotExist(err) {
		if protocoltest.InCI() {
			t.Fatalf("%s missing in CI", probes)
		}
		t.Skipf("%s missing", probes)
	}
	if err != nil {
		t.Fatal(err)
	}
	var re *regexp.Regexp
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "match http m|") && strings.Contains(l, "p/Siemens Simatic S7-1200 PLC httpd/") {
			pat := strings.TrimPrefix(l, "match http m|")
			re = regexp.MustCompile(pat[:strings.Index(pat, "|")])
		}
	}
	if re == nil {
		t.Fatal("nmap-service-probes has no S7-1200 httpd line")
	}
	srv, _ := startProfile(t, protocoltest.Profile(t, "s7-1200"), "127.83.81.2:0")
	got := rawExchange(t, srv.Addr.String(), "GET / HTTP/1.0\r\n\r\n")
	if !re.MatchString(got) {
		t.Errorf("the answer %q does not match nmap's %s", got, re)
	}
}

// FuzzServeConnSpelled runs whole connections through the S7-1200 persona's server, whose
// profile places and spells its headers: every answer is one HTTP/1.0 response with at
// most one Content-Length and one Connection header, and a Content-Length the body has.
func FuzzServeConnSpelled(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.0\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n",
		"GET /Portal/Portal.mwsl HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
		"HEAD / HTTP/1.0\r\n\r\n",
		"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
		"GET /nope HTTP/1.1\r\n\r\n",
		"\x00\x01garbage\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	svc, sess := memServiceOf(f, "s7-1200")
	f.Fuzz(func(t *testing.T, in []byte) {
		c := &memConn{in: bytes.NewReader(in)}
		svc.ServeConn(context.Background(), sess, c)
		out := c.out.Bytes()
		if len(out) == 0 {
			return
		}
		if !bytes.HasPrefix(out, []byte("HTTP/1.0 ")) {
			t.Fatalf("answer does not start with an HTTP/1.0 status line: %q", out[:min(len(out), 80)])
		}
		i := bytes.Index(out, []byte("\r\n\r\n"))
		if i < 0 {
			t.Fatalf("answer head not terminated: %q", out)
		}
		counts := map[string]int{}
		length := -1
		for _, l := range strings.Split(string(out[:i]), "\r\n")[1:] {
			name, v, ok := strings.Cut(l, ":")
			if !ok {
				t.Fatalf("header line without a colon: %q", l)
			}
			counts[strings.ToLower(name)]++
			if strings.EqualFold(name, "Content-Length") {
				if length, ok = atoiOK(strings.TrimPrefix(v, " ")); !ok {
					t.Fatalf("Content-Length %q", v)
				}
			}
		}
		if counts["content-length"] > 1 || counts["connection"] > 1 {
			t.Fatalf("repeated computed headers: %v\n%q", counts, out[:i])
		}
		if body := len(out) - i - 4; length >= 0 && body != 0 && body != length {
			t.Fatalf("Content-Length %d, body %d", length, body)
		}
	})
}

func atoiOK(s string) (int, bool) {
	n, err := strconv.Atoi(s)
	return n, err == nil && n >= 0
}

// TestHeaderSpelling11: on an HTTP/1.1 server the placed Connection says close only when
// the connection ends, and keep-alive answers carry none.
func TestHeaderSpelling11(t *testing.T) {
	xml := `<http enabled="True"><global><config><entity name="update_header_date">false</entity></config></global>
<htdocs><node name="/"><file>/e</file><headers><entity name="Connection">close</entity>
<entity name="Content-Length" separator=":"></entity><entity name="X-Last">1</entity></headers></node></htdocs></http>`
	srv, _ := startProfile(t, testProfile(t, xml, map[string]string{"htdocs/e": "ok"}), "127.83.81.3:0")
	got := rawExchange(t, srv.Addr.String(), "GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	want := "HTTP/1.1 200 OK\r\nContent-Length:2\r\nX-Last: 1\r\n\r\nok" +
		"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length:2\r\nX-Last: 1\r\n\r\nok"
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}
