package http

import (
	"bytes"
	"strconv"
	"strings"

	"github.com/icsnare/icsnare/protocols"
)

// ConpotSession implements protocols.ConpotSessioner: Conpot's HTTP server logs no
// connection documents, only one per request.
func (protocol) ConpotSession() protocols.ConpotSession { return protocols.ConpotSession{} }

// ConpotEvents implements protocols.ConpotEventer: one document per answered request, the
// request as the string Conpot logs, str((path, headers, body)) — the path with its query,
// the header lines as a list of (name, value) tuples as Python's http.client keeps them,
// the body as a str or None — and the response as the status code's string.
func (protocol) ConpotEvents(e *protocols.Event) []protocols.ConpotEvent {
	if e.Type != Name+".request" {
		return nil
	}
	status := -1
	for _, f := range e.Fields {
		if f.Key == "status" {
			if n, ok := f.Value.(int); ok {
				status = n
			}
		}
	}
	if status < 0 {
		return nil
	}
	return []protocols.ConpotEvent{{Request: ConpotRequest(e.Request), Response: strconv.Itoa(status)}}
}

// ConpotRequest renders a raw request (head and body) as Conpot logs it:
// ('/index.html', [('Host', 'x'), ('Accept', '*/*')], None).
func ConpotRequest(raw []byte) string {
	head, body, hasBody := bytes.Cut(raw, []byte("\r\n\r\n"))
	if !hasBody {
		head, body, hasBody = bytes.Cut(raw, []byte("\n\n"))
	}
	lines := strings.Split(strings.ReplaceAll(string(head), "\r\n", "\n"), "\n")
	path := ""
	if f := strings.Fields(lines[0]); len(f) >= 2 {
		path = f[1]
	}
	var b strings.Builder
	b.WriteByte('(')
	b.WriteString(protocols.PyRepr(path))
	b.WriteString(", [")
	n := 0
	for _, l := range lines[1:] {
		name, value, ok := strings.Cut(l, ":")
		if !ok || name == "" {
			continue
		}
		if n > 0 {
			b.WriteString(", ")
		}
		n++
		b.WriteByte('(')
		b.WriteString(protocols.PyRepr(name))
		b.WriteString(", ")
		// http.client keeps a value's trailing blanks and drops its leading ones.
		b.WriteString(protocols.PyRepr(strings.TrimRight(strings.TrimLeft(value, " \t"), "\r")))
		b.WriteByte(')')
	}
	b.WriteString("], ")
	if hasBody && len(body) > 0 {
		b.WriteString(protocols.PyRepr(strings.ToValidUTF8(string(body), "\ufffd")))
	} else {
		b.WriteString("None")
	}
	b.WriteByte(')')
	return b.String()
}
