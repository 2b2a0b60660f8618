package http

import (
	"bufio"
	"io"
	"net"
	"os"
	"regexp"
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
