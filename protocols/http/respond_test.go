package http

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

func TestAppendChunks(t *testing.T) {
	tests := []struct {
		body     string
		sizes    []int
		trailers []header
		want     string
	}{
		{"abcdefghij", []int{3, 4}, nil, "3\r\nabc\r\n4\r\ndefg\r\n3\r\nhij\r\n0\r\n\r\n"},
		{"abcdefghij", []int{3, 7}, nil, "3\r\nabc\r\n7\r\ndefghij\r\n0\r\n\r\n"},
		{"abc", []int{2, 5, 9}, nil, "2\r\nab\r\n1\r\nc\r\n0\r\n\r\n"},
		{"", []int{4}, nil, "0\r\n\r\n"},
		{strings.Repeat("z", 300), []int{256}, []header{{name: "X-Sum", value: "1"}}, "100\r\n" + strings.Repeat("z", 256) + "\r\n2c\r\n" + strings.Repeat("z", 44) + "\r\n0\r\nX-Sum: 1\r\n\r\n"},
	}
	for _, tc := range tests {
		if got := string(appendChunks(nil, []byte(tc.body), tc.sizes, tc.trailers)); got != tc.want {
			t.Errorf("appendChunks(%q, %v) = %q, want %q", tc.body, tc.sizes, got, tc.want)
		}
	}
}

// exchange runs raw client bytes through a fresh in-memory connection.
func exchange(t *testing.T, svc *service, sess sessionT, in string) string {
	t.Helper()
	c := &memConn{in: bytes.NewReader([]byte(in))}
	svc.ServeConn(context.Background(), sess, c)
	return c.out.String()
}

func TestExchanges(t *testing.T) {
	svc, sess := memService(t)
	big := strings.Repeat("a", maxLine+10)
	tests := []struct {
		name, in string
		want     []string // in order
		not      []string
	}{
		{"pipelined keep-alive", "GET /Login.htm HTTP/1.1\r\n\r\nHEAD / HTTP/1.1\r\n\r\nGET /x HTTP/1.1\r\nConnection: close\r\n\r\n",
			[]string{"HTTP/1.1 200 OK", "HTTP/1.1 302 Found", "HTTP/1.1 404 Not Found", "Connection: close\r\n"}, nil},
		{"HTTP/1.0 closes", "GET /Login.htm HTTP/1.0\r\n\r\nGET / HTTP/1.0\r\n\r\n", []string{"HTTP/1.1 200 OK"}, []string{"302", "Connection:"}},
		{"HTTP/1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /nope HTTP/1.0\r\n\r\n",
			[]string{"HTTP/1.1 302 Found", "Connection: keep-alive\r\n", "HTTP/1.1 404"}, nil},
		{"HTTP/1.0 gets no chunks", "GET /DiagBuffer.htm HTTP/1.0\r\n\r\n", []string{"HTTP/1.1 200 OK", "Content-Length: "}, []string{"Transfer-Encoding"}},
		{"HEAD of a chunked node", "HEAD /DiagBuffer.htm HTTP/1.1\r\n\r\n", []string{"Transfer-Encoding: chunked\r\n\r\n"}, []string{"<html>", "0\r\n"}},
		{"expect continue", "POST /FormLogin HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nLogin",
			[]string{"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK"}, nil},
		{"chunked request body", "POST /FormLogin HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nLogin\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n",
			[]string{"HTTP/1.1 200 OK", "HTTP/1.1 302 Found"}, nil},
		{"body too large", "POST /FormLogin HTTP/1.1\r\nContent-Length: 999999\r\n\r\n", []string{"HTTP/1.1 413 Request Entity Too Large", "Connection: close"}, []string{"100 Continue"}},
		{"uri too long", "GET /" + big + " HTTP/1.1\r\n\r\n", []string{"HTTP/1.1 414 Request URI Too Long", "<title>414"}, nil},
		{"header too long", "GET / HTTP/1.1\r\nX: " + big + "\r\n\r\n", []string{"HTTP/1.1 400 Bad Request", "<title>400 Bad Request"}, nil},
		{"TLS client hello", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", []string{"HTTP/1.1 400 Bad Request", "Connection: close"}, nil},
		{"TRACE disabled", "TRACE / HTTP/1.1\r\n\r\n", []string{"HTTP/1.1 405 Method Not Allowed", "Allow: GET,HEAD,POST,OPTIONS\r\n", "<title>405"}, nil},
		{"unknown method", "PROPFIND / HTTP/1.1\r\n\r\n", []string{"HTTP/1.1 501 Not Implemented", "<title>501"}, nil},
		{"CONNECT", "CONNECT example.com:443 HTTP/1.1\r\n\r\n", []string{"HTTP/1.1 501 Not Implemented"}, nil},
		{"smuggling: TE and CL close", "POST /Login.htm HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n",
			[]string{"HTTP/1.1 200 OK", "Connection: close"}, []string{"302"}},
		{"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", []string{"HTTP/1.1 505 HTTP Version Not Supported"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := exchange(t, svc, sess, tc.in)
			rest := out
			for _, w := range tc.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("answer lacks %q (in order):\n%s", w, out)
				}
				rest = rest[i+len(w):]
			}
			for _, n := range tc.not {
				if strings.Contains(out, n) {
					t.Errorf("answer contains %q:\n%s", n, out)
				}
			}
		})
	}
}

func TestTemplate(t *testing.T) {
	files := map[string]string{
		"htdocs/p.html": `<title><condata source="databus" key="sysName" /></title>` +
			`<b><condata source="eval" key="str(random.randint(7, 7)) + '!'" /></b>` +
			`<i><condata source="eval" key="time.strftime('%Y', time.gmtime())"/></i>` +
			`<u><condata source='databus' key='Uptime' format='duration'></condata></u>` +
			`<s><condata source="time" key="%d.%m.%Y %H:%M" since="Uptime" tz="utc"/></s>`,
		"htdocs/t.txt":           `<condata source="databus" key="sysLocation"/>`,
		"htdocs/sub":             "plain",
		"htdocs/sub_on":          "triggered",
		"statuscodes/404.status": `<p><condata source="databus" key="sysName"/></p>`,
	}
	xml := `<http enabled="True"><htdocs>
<node name="/p.html"><headers><entity name="Content-Type">text/html; charset=utf-8</entity></headers></node>
<node name="/t.txt"><headers><entity name="Content-Type">text/plain</entity></headers></node>
<node name="/sub"><triggers><entity appendix="on">a=1;b=2</entity></triggers></node>
</htdocs><statuscodes><status name="404"/></statuscodes></http>`
	p := testProfile(t, xml, files)
	svc, err := protocol{}.Configure(p.Sections["http"], nil)
	if err != nil {
		t.Fatal(err)
	}
	_, sess := memService(t)
	sess.Host = hostOf(p)
	sess.Host.Databus.Set("sysLocation", "<raw & text>")
	s := svc.(*service)
	now := time.Now().UTC()
	boot := now.Add(-72 * time.Hour)
	tests := []struct{ req, want string }{
		{"GET /p.html", "<title>cp-test</title><b>7!</b><i>" + now.Format("2006") + "</i><u>3d 00h 00m 0"},
		{"GET /p.html", "<s>" + boot.Format("02.01.2006 15:04") + "</s>"},
		{"GET /t.txt", "\r\n\r\n<raw & text>"}, // not HTML: not escaped
		{"GET /sub?a=1", "\r\n\r\nplain"},
		{"GET /sub?b=2&a=1", "\r\n\r\ntriggered"},
		{"GET /none", "<p>cp-test</p>"},
	}
	for _, tc := range tests {
		out := exchange(t, s, sess, tc.req+" HTTP/1.1\r\nConnection: close\r\n\r\n")
		if !strings.Contains(out, tc.want) {
			t.Errorf("%s: lacks %q:\n%s", tc.req, tc.want, out)
		}
	}
}

func TestStrftime(t *testing.T) {
	tm := time.Date(2026, 3, 7, 14, 5, 9, 123456789, time.UTC)
	tests := []struct{ f, want string }{
		{"%H:%M:%S", "14:05:09"},
		{"%d.%m.%Y %y %j", "07.03.2026 26 066"},
		{"%I%p %a %A %b %B %e", "02PM Sat Saturday Mar March  7"},
		{"%S.%L %f %Z %z %% %q", "09.123 123456 UTC +0000 % %q"},
		{"trailing %", "trailing %"},
	}
	for _, tc := range tests {
		if got := strftime(tc.f, tm); got != tc.want {
			t.Errorf("strftime(%q) = %q, want %q", tc.f, got, tc.want)
		}
	}
	if got := formatDuration(93784); got != "1d 02h 03m 04s" {
		t.Errorf("formatDuration = %q", got)
	}
}
