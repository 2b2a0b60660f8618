package http

import (
	"encoding/base64"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/icsnare/icsnare/protocols"
)

// maxField bounds every attacker-supplied string in an event field.
const maxField = 1024

// clip shortens s to at most maxField bytes on a rune boundary.
func clip(s string) string {
	if len(s) <= maxField {
		return s
	}
	s = s[:maxField]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// emit records one answered request: an http.request event, and an http.login event when
// the request carried credentials (a login form's fields or Basic authorization).
func (s *service) emit(sess *protocols.Session, req *request, r *response, rawPath, query string, body []byte, respHead []byte) {
	reqBytes := req.raw
	if len(body) > 0 {
		reqBytes = append(append([]byte(nil), req.raw...), body...)
	}
	cr, found := credentials(req, query, body)
	// The request event's fields are built only when volume control keeps it.
	if !sess.Skip("request", reqBytes, respHead) {
		s.emitRequest(sess, req, r, rawPath, query, body, respHead, reqBytes, cr, found)
	}
	if found {
		sess.EmitText("login", nil, nil,
			protocols.F("path", clip(rawPath)), protocols.F("username", clip(cr.user)),
			protocols.F("password", clip(cr.pass)), protocols.F("auth", cr.kind), protocols.F("success", false))
	}
}

// emitRequest sends the http.request event.
func (s *service) emitRequest(sess *protocols.Session, req *request, r *response, rawPath, query string, body, respHead, reqBytes []byte, cr creds, found bool) {
	fields := []protocols.Field{
		protocols.F("method", clip(req.method)),
		protocols.F("path", clip(rawPath)),
		protocols.F("version", req.proto),
		protocols.F("status", r.status),
	}
	if query != "" {
		fields = append(fields, protocols.F("query", clip(query)))
	}
	if req.host != "" {
		fields = append(fields, protocols.F("host", clip(req.host)))
	}
	if req.ua != "" {
		fields = append(fields, protocols.F("user_agent", clip(req.ua)))
	}
	if len(body) > 0 {
		fields = append(fields, protocols.F("body", clip(string(body))), protocols.F("body_length", len(body)))
	}
	if r.node != "" {
		fields = append(fields, protocols.F("node", r.node))
	}
	if r.proxied != "" {
		fields = append(fields, protocols.F("upstream", r.proxied))
	}
	if found {
		fields = append(fields, protocols.F("username", clip(cr.user)), protocols.F("password", clip(cr.pass)), protocols.F("auth", cr.kind))
	}
	sess.EmitText("request", reqBytes, respHead, fields...)
}

type creds struct{ user, pass, kind string }

// Form field names login pages use for the user name and the password.
var (
	userFields = []string{"username", "user", "login", "usr", "uname", "user_name", "userid", "j_username", "account", "name", "benutzer"}
	passFields = []string{"password", "pass", "passwd", "pwd", "pw", "j_password", "secret", "kennwort", "passwort"}
)

// credentials finds a user name and password in a request: Basic authorization, or form
// fields in a url-encoded body or the query.
func credentials(req *request, query string, body []byte) (creds, bool) {
	for _, h := range req.headers {
		if !strings.EqualFold(h.name, "Authorization") {
			continue
		}
		scheme, val, _ := strings.Cut(h.value, " ")
		if !strings.EqualFold(scheme, "Basic") {
			continue
		}
		dec, err := base64.StdEncoding.DecodeString(strings.TrimSpace(val))
		if err != nil {
			continue
		}
		u, p, _ := strings.Cut(string(dec), ":")
		return creds{u, p, "basic"}, true
	}
	var sources []string
	if len(body) > 0 && formBody(req) {
		sources = append(sources, string(body))
	}
	if query != "" {
		sources = append(sources, query)
	}
	for _, src := range sources {
		q, _ := url.ParseQuery(src) // partial results are fine
		pass, okp := pick(q, passFields)
		if !okp {
			continue
		}
		user, _ := pick(q, userFields)
		return creds{user, pass, "form"}, true
	}
	return creds{}, false
}

func formBody(req *request) bool {
	for _, h := range req.headers {
		if strings.EqualFold(h.name, "Content-Type") {
			return strings.HasPrefix(strings.ToLower(strings.TrimSpace(h.value)), "application/x-www-form-urlencoded")
		}
	}
	return true // no type: a hand-made form post
}

// pick returns the first form value whose name matches one of names, case-insensitively.
func pick(q url.Values, names []string) (string, bool) {
	for _, n := range names {
		for k, v := range q {
			if strings.EqualFold(k, n) && len(v) > 0 {
				return v[0], true
			}
		}
	}
	return "", false
}
