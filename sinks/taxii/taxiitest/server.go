// Package taxiitest is a TAXII 2.1 server for tests, written from the specification
// (OASIS TAXII 2.1 §4-§5): discovery, one API root, its collections, their objects (get
// and add) and status resources, with basic or bearer authentication. No TAXII server is
// packaged for the test machines, so the tests run this one.
package taxiitest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// MediaType is the TAXII 2.1 media type.
const MediaType = "application/taxii+json;version=2.1"

// Server is the TAXII 2.1 server. Set its exported fields in New's configure function.
type Server struct {
	Srv        *httptest.Server
	User, Pass string // basic authentication required when set
	Token      string // bearer token required when set
	Collection string // the collection's id
	MaxLen     int64  // max_content_length
	HideMaxLen bool   // the API root information does not tell max_content_length
	Pending    bool   // answer posts with a pending status first, complete on the next GET
	Garbage    bool   // answer posts with 202 and a body that is no status resource
	Huge       bool   // answer posts with 202 and 8 MiB of status resource
	Redirect   string // answer every request with a 307 to this URL
	// DiscoveryRoot is the API root discovery names (default: this server's /api1/).
	DiscoveryRoot string
	Stall         chan struct{}
	// Refuse answers the first posts with these HTTP statuses (503, or 429 with
	// Retry-After: 1; 0 drops the connection) before accepting.
	Refuse []int
	// Addr is the address to listen on, port 0 (default 127.76.0.1:0).
	Addr string

	mu       sync.Mutex
	posts    int // posts answered 202
	refused  int
	objects  []json.RawMessage
	statuses map[string]map[string]any
	polled   map[string]int
	problems []string
}

// New starts a server (with TLS, for 127.76.0.1, when tlsOn), configured by configure;
// it stops at the end of the test.
func New(t testing.TB, tlsOn bool, configure func(*Server)) *Server {
	s := &Server{Collection: "91a7b528-80eb-42ed-a74d-c6fbd5a26116", MaxLen: 10 << 20, Addr: "127.76.0.1:0",
		statuses: map[string]map[string]any{}, polled: map[string]int{}}
	if configure != nil {
		configure(s)
	}
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	s.Srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.Srv.Listener.Close()
	s.Srv.Listener = ln
	if tlsOn {
		s.Srv.TLS = &tls.Config{Certificates: []tls.Certificate{loopbackCert(t)}}
		s.Srv.StartTLS()
	} else {
		s.Srv.Start()
	}
	t.Cleanup(func() {
		if s.Stall != nil {
			close(s.Stall)
		}
		s.Srv.Close()
	})
	return s
}

// loopbackCert makes a self-signed certificate for 127.76.0.1 (httptest's own names
// 127.0.0.1 only).
func loopbackCert(t testing.TB) tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "taxii test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.76.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func (s *Server) problem(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.problems = append(s.problems, fmt.Sprintf(format, args...))
}

func uuid4() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

func (s *Server) reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", MediaType)
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func (s *Server) fail(w http.ResponseWriter, code int, title string) {
	s.reply(w, code, map[string]any{"title": title, "http_status": fmt.Sprint(code)})
}

func (s *Server) authorised(r *http.Request) bool {
	if s.Token != "" {
		return r.Header.Get("Authorization") == "Bearer "+s.Token
	}
	if s.User != "" {
		u, p, ok := r.BasicAuth()
		return ok && u == s.User && p == s.Pass
	}
	return true
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if s.Stall != nil {
		select {
		case <-s.Stall:
		case <-r.Context().Done():
		}
		return
	}
	if s.Redirect != "" {
		http.Redirect(w, r, s.Redirect, http.StatusTemporaryRedirect)
		return
	}
	if !s.authorised(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="taxii"`)
		s.fail(w, http.StatusUnauthorized, "unauthorised")
		return
	}
	// §1.6.8: clients ask for the TAXII media type; a server answers 406 otherwise
	if a := strings.ReplaceAll(r.Header.Get("Accept"), " ", ""); a != MediaType {
		s.problem("Accept %q", r.Header.Get("Accept"))
		s.fail(w, http.StatusNotAcceptable, "not acceptable")
		return
	}
	root := "/api1/"
	coll := root + "collections/" + s.Collection + "/"
	switch p := r.URL.Path; {
	case p == "/taxii2/" && r.Method == http.MethodGet:
		apiRoot := s.Srv.URL + root
		if s.DiscoveryRoot != "" {
			apiRoot = s.DiscoveryRoot
		}
		s.reply(w, 200, map[string]any{"title": "icsnare test TAXII server", "default": apiRoot,
			"api_roots": []string{apiRoot}})
	case p == root && r.Method == http.MethodGet:
		info := map[string]any{"title": "test API root", "versions": []string{MediaType}, "max_content_length": s.MaxLen}
		if s.HideMaxLen {
			delete(info, "max_content_length")
		}
		s.reply(w, 200, info)
	case p == root+"collections/" && r.Method == http.MethodGet:
		s.reply(w, 200, map[string]any{"collections": []any{s.collectionResource()}})
	case p == coll && r.Method == http.MethodGet:
		s.reply(w, 200, s.collectionResource())
	case p == coll+"objects/" && r.Method == http.MethodGet:
		s.mu.Lock()
		objs := append([]json.RawMessage(nil), s.objects...)
		s.mu.Unlock()
		s.reply(w, 200, map[string]any{"more": false, "objects": objs})
	case p == coll+"objects/" && r.Method == http.MethodPost:
		s.add(w, r)
	case strings.HasPrefix(p, root+"status/") && r.Method == http.MethodGet:
		id := strings.TrimSuffix(strings.TrimPrefix(p, root+"status/"), "/")
		s.mu.Lock()
		st, ok := s.statuses[id]
		if ok {
			s.polled[id]++
			if st["status"] == "pending" {
				st["status"], st["success_count"], st["pending_count"] = "complete", st["total_count"], 0
			}
		}
		s.mu.Unlock()
		if !ok {
			s.fail(w, 404, "no such status")
			return
		}
		s.reply(w, 200, st)
	default:
		s.fail(w, http.StatusNotFound, "not found")
	}
}

func (s *Server) collectionResource() map[string]any {
	return map[string]any{"id": s.Collection, "title": "icsnare events", "can_read": true, "can_write": true,
		"media_types": []string{"application/stix+json;version=2.1"}}
}

// add is "Add Objects" (§5.4): an envelope in, a status resource out (202).
func (s *Server) add(w http.ResponseWriter, r *http.Request) {
	if ct := strings.ReplaceAll(r.Header.Get("Content-Type"), " ", ""); ct != MediaType {
		s.problem("Content-Type %q", r.Header.Get("Content-Type"))
		s.fail(w, http.StatusUnsupportedMediaType, "unsupported media type")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, s.MaxLen+1))
	if err != nil {
		return
	}
	if int64(len(body)) > s.MaxLen {
		s.problem("post of %d bytes above max_content_length %d", len(body), s.MaxLen)
		s.fail(w, http.StatusRequestEntityTooLarge, "too large")
		return
	}
	s.mu.Lock()
	if len(s.Refuse) > 0 {
		code := s.Refuse[0]
		s.Refuse = s.Refuse[1:]
		s.refused++
		s.mu.Unlock()
		if code == 0 { // a network error: the connection drops without an answer
			if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
				conn.Close()
			}
			return
		}
		if code == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "1")
		}
		s.fail(w, code, "try again later")
		return
	}
	s.mu.Unlock()
	var env struct {
		Objects []json.RawMessage `json:"objects"`
	}
	if err := json.Unmarshal(body, &env); err != nil || len(env.Objects) == 0 {
		s.problem("envelope: %v (%d objects)", err, len(env.Objects))
		s.fail(w, http.StatusBadRequest, "bad envelope")
		return
	}
	id := uuid4()
	n := len(env.Objects)
	st := map[string]any{"id": id, "status": "complete", "request_timestamp": time.Now().UTC().Format(time.RFC3339Nano),
		"total_count": n, "success_count": n, "failure_count": 0, "pending_count": 0}
	if s.Pending {
		st["status"], st["success_count"], st["pending_count"] = "pending", 0, n
	}
	s.mu.Lock()
	s.posts++
	s.objects = append(s.objects, env.Objects...)
	s.statuses[id] = st
	cp := map[string]any{}
	for k, v := range st {
		cp[k] = v
	}
	s.mu.Unlock()
	if s.Huge {
		w.Header().Set("Content-Type", MediaType)
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprintf(w, `{"id":%q,"status":"complete","total_count":%d,"success_count":%d,"x":"`, id, n, n)
		chunk := []byte(strings.Repeat("x", 1<<16))
		for range 128 {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
		w.Write([]byte(`"}`))
		return
	}
	if s.Garbage {
		w.Header().Set("Content-Type", MediaType)
		w.WriteHeader(http.StatusAccepted)
		w.Write([]byte("<html>accepted</html>"))
		return
	}
	s.reply(w, http.StatusAccepted, cp)
}

// URL returns the server's base URL.
func (s *Server) URL() string { return s.Srv.URL }

// Stats is what the server saw.
type Stats struct {
	Posts, Refused int      // posts accepted and refused
	Objects        int      // objects added
	Polled         int      // status resources read
	Problems       []string // requests that broke the specification
}

// Stats returns what the server saw.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Posts: s.posts, Refused: s.refused, Objects: len(s.objects), Polled: len(s.polled),
		Problems: append([]string(nil), s.problems...)}
}
