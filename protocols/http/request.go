package http

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
)

// Request limits.
const (
	maxLine    = 8 << 10  // request line or one header line (the reader's buffer)
	maxHead    = 32 << 10 // the whole request head
	maxHeaders = 100
	maxBody    = 64 << 10 // request bodies (larger: 413 and close)
)

// request is a parsed request head.
type request struct {
	method, target, proto string
	minor                 int // HTTP/1.<minor>
	headers               []header
	raw                   []byte // the head as received

	contentLength int64 // -1 when absent
	chunked       bool
	closeConn     bool // Connection: close (or HTTP/1.0 without keep-alive)
	keepAlive10   bool // HTTP/1.0 with Connection: keep-alive
	expect100     bool
	host, ua      string
}

// httpError is a request the server answers with an error status and then closes.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return strconv.Itoa(e.status) + " " + e.msg }

func badRequest(msg string) error { return &httpError{status: 400, msg: msg} }

// parseRequest parses a complete request head (request line, header lines, blank line).
// Leading blank lines are ignored. It never panics on any input; errors are *httpError.
func parseRequest(head []byte) (*request, error) {
	r := &request{raw: head, contentLength: -1}
	rest := head
	var line []byte
	for {
		line, rest = nextLine(rest)
		if line == nil {
			return nil, badRequest("no request line")
		}
		if len(line) > 0 {
			break
		}
	}
	if len(line) > maxLine {
		return nil, &httpError{status: 414, msg: "request line too long"}
	}
	// method SP request-target SP HTTP-version
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return nil, badRequest("malformed request line")
	}
	sp2 := bytes.LastIndexByte(line, ' ')
	if sp2 == sp1 {
		return nil, badRequest("no HTTP version") // HTTP/0.9 simple requests are not served
	}
	r.method = internMethod(line[:sp1])
	if !isToken(r.method) {
		return nil, badRequest("malformed method")
	}
	target := line[sp1+1 : sp2]
	if len(target) == 0 || bytes.IndexByte(target, ' ') >= 0 {
		return nil, badRequest("malformed request target")
	}
	// Other control characters (a raw NUL, say) are left to path resolution, which never
	// matches them: such a request gets the 404 page like any other unknown path.
	r.target = string(target)
	proto := line[sp2+1:]
	if len(proto) != 8 || !bytes.HasPrefix(proto, []byte("HTTP/")) || proto[6] != '.' ||
		proto[5] < '0' || proto[5] > '9' || proto[7] < '0' || proto[7] > '9' {
		return nil, badRequest("malformed HTTP version")
	}
	r.proto = internProto(proto)
	if proto[5] != '1' {
		return nil, &httpError{status: 505, msg: "HTTP version not supported"}
	}
	r.minor = int(proto[7] - '0')

	var te, conn []string
	for {
		line, rest = nextLine(rest)
		if line == nil {
			return nil, badRequest("head not terminated")
		}
		if len(line) == 0 {
			break
		}
		if len(r.headers) >= maxHeaders {
			return nil, badRequest("too many header fields")
		}
		if line[0] == ' ' || line[0] == '\t' {
			return nil, badRequest("obsolete line folding")
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return nil, badRequest("malformed header field")
		}
		name := internHeader(line[:colon])
		if !isToken(name) {
			return nil, badRequest("malformed header field name")
		}
		value := bytes.Trim(line[colon+1:], " \t")
		for _, c := range value {
			if (c < ' ' && c != '\t') || c == 0x7f {
				return nil, badRequest("control character in header field")
			}
		}
		h := header{name: name, value: string(value)}
		r.headers = append(r.headers, h)
		switch lowerHeader(name) {
		case "host":
			if r.host != "" {
				return nil, badRequest("duplicate Host")
			}
			r.host = h.value
		case "user-agent":
			r.ua = h.value
		case "content-length":
			n, err := strconv.ParseInt(h.value, 10, 64)
			if err != nil || n < 0 || (r.contentLength >= 0 && r.contentLength != n) {
				return nil, badRequest("invalid Content-Length")
			}
			r.contentLength = n
		case "transfer-encoding":
			te = append(te, splitList(h.value)...)
		case "connection":
			conn = append(conn, splitList(h.value)...)
		case "expect":
			if strings.EqualFold(h.value, "100-continue") {
				r.expect100 = true
			}
		}
	}
	if len(te) > 0 {
		if r.minor == 0 {
			return nil, badRequest("Transfer-Encoding in an HTTP/1.0 request")
		}
		if !strings.EqualFold(te[len(te)-1], "chunked") {
			return nil, &httpError{status: 501, msg: "unsupported transfer coding"}
		}
		for _, c := range te[:len(te)-1] {
			if strings.EqualFold(c, "chunked") {
				return nil, badRequest("chunked applied twice")
			}
		}
		r.chunked = true
		r.closeConn = r.contentLength >= 0 // both: answer, then close (no smuggling)
		r.contentLength = -1
	}
	for _, c := range conn {
		switch strings.ToLower(c) {
		case "close":
			r.closeConn = true
		case "keep-alive":
			r.keepAlive10 = r.minor == 0
		}
	}
	if r.minor == 0 && !r.keepAlive10 {
		r.closeConn = true
	}
	return r, nil
}

// nextLine splits off one line ending in LF (a preceding CR is dropped). It returns nil
// when b holds no complete line.
func nextLine(b []byte) (line, rest []byte) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return nil, b
	}
	line = b[:i]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	return line, b[i+1:]
}

func splitList(v string) []string {
	var out []string
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// splitTarget separates a request target into its path part and query. It accepts the
// origin form ("/a?b") and the absolute form ("http://host/a?b", proxy style).
func splitTarget(target string) (p, query string) {
	p, query, _ = strings.Cut(target, "?")
	if i := strings.Index(p, "://"); i > 0 && !strings.Contains(p[:i], "/") {
		rest := p[i+3:]
		if j := strings.IndexByte(rest, '/'); j >= 0 {
			p = rest[j:]
		} else {
			p = "/"
		}
	}
	if j := strings.IndexByte(p, '#'); j >= 0 {
		p = p[:j]
	}
	return p, query
}

// errUnresolvable is any path that can never name a node.
var errUnresolvable = errors.New("unresolvable path")

// resolvePath percent-decodes the path part of a target and checks that it is an absolute,
// clean path: no "." or ".." segments, no empty segments but a trailing slash, no NUL,
// backslash or control character. ok is false for anything else, so traversal attempts
// ("/../", "%2e%2e/", "//etc/passwd", "/a%00.html") can only ever be a 404. Node lookup is
// a map lookup on the result; no request path is ever handed to a file system.
func resolvePath(raw string) (string, bool) {
	p, err := decodePath(raw)
	if err != nil || len(p) == 0 || p[0] != '/' {
		return "", false
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c < ' ' || c == 0x7f || c == '\\' {
			return "", false
		}
	}
	segs := strings.Split(p[1:], "/")
	for i, s := range segs {
		switch s {
		case ".", "..":
			return "", false
		case "":
			if i != len(segs)-1 { // "//" inside the path
				return "", false
			}
		}
	}
	return p, true
}

func decodePath(s string) (string, error) {
	if strings.IndexByte(s, '%') < 0 {
		return s, nil
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b = append(b, s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", errUnresolvable
		}
		h, l := unhex(s[i+1]), unhex(s[i+2])
		if h < 0 || l < 0 {
			return "", errUnresolvable
		}
		b = append(b, byte(h<<4|l))
		i += 2
	}
	return string(b), nil
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}

// methodKinds is the fixed set of metric kinds; anything else counts as "other".
var methodKinds = map[string]string{
	"GET": "GET", "HEAD": "HEAD", "POST": "POST", "PUT": "PUT", "DELETE": "DELETE",
	"OPTIONS": "OPTIONS", "TRACE": "TRACE", "CONNECT": "CONNECT", "PATCH": "PATCH",
	"PROPFIND": "PROPFIND",
}

func methodKind(m string) string {
	if k, ok := methodKinds[m]; ok {
		return k
	}
	return "other"
}

// The strings of a request that come from a small set are interned: the request path
// converts no bytes to strings for them (a conversion per request line and header field
// otherwise). Other values are converted as they come.

func internMethod(b []byte) string {
	switch string(b) { // compiled without a conversion
	case "GET":
		return "GET"
	case "HEAD":
		return "HEAD"
	case "POST":
		return "POST"
	case "OPTIONS":
		return "OPTIONS"
	case "PUT":
		return "PUT"
	}
	return string(b)
}

func internProto(b []byte) string {
	switch string(b) {
	case "HTTP/1.1":
		return "HTTP/1.1"
	case "HTTP/1.0":
		return "HTTP/1.0"
	}
	return string(b)
}

func internHeader(b []byte) string {
	switch string(b) {
	case "Host":
		return "Host"
	case "User-Agent":
		return "User-Agent"
	case "Accept":
		return "Accept"
	case "Accept-Encoding":
		return "Accept-Encoding"
	case "Accept-Language":
		return "Accept-Language"
	case "Connection":
		return "Connection"
	case "Content-Length":
		return "Content-Length"
	case "Content-Type":
		return "Content-Type"
	}
	return string(b)
}

// lowerHeader is strings.ToLower for a header field name, without a new string for the
// usual spellings of the names parseRequest looks at.
func lowerHeader(name string) string {
	switch name {
	case "Host":
		return "host"
	case "User-Agent":
		return "user-agent"
	case "Content-Length":
		return "content-length"
	case "Connection":
		return "connection"
	case "Accept", "Accept-Encoding", "Accept-Language", "Content-Type":
		return "" // none of the names parseRequest acts on
	}
	return strings.ToLower(name)
}
