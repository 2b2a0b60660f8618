package taxii

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/events"
	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/sinks/stix"
	"github.com/icsnare/icsnare/sinks/stix/stixtest"
	"github.com/icsnare/icsnare/sinks/taxii/taxiitest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func testOptions(s *taxiitest.Server) Options {
	o := DefaultOptions()
	o.URL = s.Srv.URL + "/api1/"
	o.Collection = s.Collection
	o.Backoff = Duration{Duration: 10 * time.Millisecond}
	o.MaxBackoff = Duration{Duration: 2 * time.Second}
	o.Timeout = Duration{Duration: 5 * time.Second}
	o.StatusWait = Duration{Duration: 5 * time.Second}
	o.CloseTimeout = Duration{Duration: 30 * time.Second}
	return o
}

// writerSession is the events of one Modbus session from src that writes a register.
func writerSession(n int, src string) []*protocols.Event {
	t0 := time.Now().UTC()
	sid := fmt.Sprintf("modbus/%d", n)
	mk := func(typ, phase string, fields ...protocols.Field) *protocols.Event {
		return &protocols.Event{Time: time.Now().UTC(), Type: typ, Phase: phase, SessionID: sid, Protocol: "modbus",
			Transport: "tcp", Src: netip.MustParseAddrPort(src), Dst: netip.MustParseAddrPort("127.76.0.10:502"),
			Start: t0, Fields: fields}
	}
	return []*protocols.Event{mk("connect", protocols.PhaseStart),
		mk("modbus.request", "", protocols.F("function_code", uint8(6))),
		mk("disconnect", protocols.PhaseEnd, protocols.F("requests", 1))}
}

// arrived reads the collection's objects through the TAXII API, as a consumer would, and
// validates them (each, and together as a bundle).
func arrived(t *testing.T, s *taxiitest.Server, o Options) []map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.Srv.URL+"/api1/collections/"+s.Collection+"/objects/", nil)
	req.Header.Set("Accept", MediaType)
	if o.Token != "" {
		req.Header.Set("Authorization", "Bearer "+o.Token)
	} else if o.Username != "" {
		req.SetBasicAuth(o.Username, o.Password)
	}
	resp, err := s.Srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var env struct {
		Objects []json.RawMessage `json:"objects"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		t.Fatal(err)
	}
	if len(env.Objects) == 0 {
		return nil
	}
	b := &stix.Bundle{ID: "bundle--6ba7b810-9dad-41d1-80b4-00c04fd430c8", Objects: env.Objects}
	raw, _ := b.MarshalJSON()
	if err := stixtest.New(t).Bundle(raw); err != nil {
		t.Fatalf("the objects the server got do not validate: %v", err)
	}
	var out []map[string]any
	for _, o := range env.Objects {
		var m map[string]any
		json.Unmarshal(o, &m)
		out = append(out, m)
	}
	return out
}

func writeCA(t *testing.T, s *taxiitest.Server) string {
	f := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestPostWithRetry(t *testing.T) {
	for _, tc := range []struct {
		name      string
		tls       bool
		server    func(*taxiitest.Server)
		opts      func(*Options, *taxiitest.Server)
		sessions  int
		wantPosts int // -1: more than one
		wantLost  int64
		wantErr   string
	}{
		{name: "503 once, then accepted; discovery, basic auth, TLS",
			tls:    true,
			server: func(s *taxiitest.Server) { s.Refuse, s.User, s.Pass = []int{503}, "sensor", "s3cret" },
			opts: func(o *Options, s *taxiitest.Server) {
				o.URL, o.Discovery, o.Username, o.Password, o.CAFile = s.Srv.URL+"/taxii2/", true, "sensor", "s3cret", writeCA(t, s)
			},
			sessions: 1, wantPosts: 1},
		{name: "429 with Retry-After, then accepted; bearer token; pending status followed",
			server:   func(s *taxiitest.Server) { s.Refuse, s.Token, s.Pending = []int{429}, "t0ken", true },
			opts:     func(o *Options, _ *taxiitest.Server) { o.Token = "t0ken" },
			sessions: 1, wantPosts: 1},
		{name: "a bundle larger than max_content_length goes in several posts",
			server:   func(s *taxiitest.Server) { s.MaxLen = 3000 },
			sessions: 12, wantPosts: -1},
		{name: "413 from a server that does not tell its limit: smaller posts",
			server:   func(s *taxiitest.Server) { s.MaxLen, s.HideMaxLen = 3000, true },
			sessions: 12, wantPosts: -1},
		{name: "a dropped connection, then accepted",
			server:   func(s *taxiitest.Server) { s.Refuse = []int{0} },
			sessions: 1, wantPosts: 1},
		{name: "202 with a body that is no status resource: posted once, not again",
			server:   func(s *taxiitest.Server) { s.Garbage = true },
			sessions: 1, wantPosts: 1},
		{name: "an 8 MiB answer: read up to 1 MiB, posted once",
			server:   func(s *taxiitest.Server) { s.Huge = true },
			sessions: 1, wantPosts: 1},
		{name: "a redirect is not followed (the credentials stay): lost",
			server:   func(s *taxiitest.Server) { s.Redirect = "http://127.76.0.2:9/elsewhere/" },
			opts:     func(o *Options, _ *taxiitest.Server) { o.Token = "t0ken" },
			sessions: 1, wantLost: 1, wantErr: "307"},
		{name: "discovery names a relative API root",
			server: func(s *taxiitest.Server) { s.DiscoveryRoot = "/api1/" },
			opts: func(o *Options, s *taxiitest.Server) {
				o.URL, o.Discovery = s.Srv.URL+"/taxii2/", true
			},
			sessions: 1, wantPosts: 1},
		{name: "discovery points to another server: refused, credentials kept",
			server: func(s *taxiitest.Server) { s.DiscoveryRoot, s.Token = "http://127.76.0.2:9/api1/", "t0ken" },
			opts: func(o *Options, s *taxiitest.Server) {
				o.URL, o.Discovery, o.Token = s.Srv.URL+"/taxii2/", true, "t0ken"
			},
			sessions: 1, wantLost: 1, wantErr: "not on http://127.76.0.1"},
		{name: "wrong password: refused for good, lost and reported",
			server:   func(s *taxiitest.Server) { s.User, s.Pass = "sensor", "s3cret" },
			opts:     func(o *Options, _ *taxiitest.Server) { o.Username, o.Password = "sensor", "guess" },
			sessions: 1, wantLost: 1, wantErr: "401"},
		{name: "retries spent: lost and reported",
			server:   func(s *taxiitest.Server) { s.Refuse = []int{503, 502, 500} },
			opts:     func(o *Options, _ *taxiitest.Server) { o.Retries = 2 },
			sessions: 1, wantLost: 1, wantErr: "3 tries"},
		{name: "an unknown collection: 404, lost",
			opts:     func(o *Options, _ *taxiitest.Server) { o.Collection = "no-such-collection" },
			sessions: 1, wantLost: 1, wantErr: "404"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := taxiitest.New(t, tc.tls, tc.server)
			o := testOptions(srv)
			if tc.opts != nil {
				tc.opts(&o, srv)
			}
			if err := o.Validate(); err != nil {
				t.Fatal(err)
			}
			sink, err := Open(context.Background(), o, events.Env{SensorID: "taxii-test", Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			for i := range tc.sessions {
				for _, e := range writerSession(i, fmt.Sprintf("127.76.9.%d:4000", i+1)) {
					if err := sink.Write(e); err != nil {
						t.Fatal(err)
					}
				}
			}
			err = sink.Close()
			if (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("Close() = %v, want %q", err, tc.wantErr)
			}
			st := sink.Client().Stats()
			sst := srv.Stats()
			posts, refused, problems := sst.Posts, sst.Refused, sst.Problems
			if srv.HideMaxLen { // the too large posts before the client learnt the limit
				problems = slices.DeleteFunc(problems, func(p string) bool { return strings.HasPrefix(p, "post of ") })
			}
			if len(problems) > 0 {
				t.Errorf("the server saw: %v", problems)
			}
			if tc.wantPosts == -1 && posts > 1 {
				tc.wantPosts = posts
			}
			if posts != tc.wantPosts || st.Lost != tc.wantLost {
				t.Fatalf("posts %d, lost %d; want %d, %d (stats %+v)", posts, st.Lost, tc.wantPosts, tc.wantLost, st)
			}
			if tc.wantLost > 0 {
				return
			}
			if (st.Retried != int64(refused) && !srv.HideMaxLen) || st.Posted != 1 {
				t.Errorf("stats %+v after %d refusals", st, refused)
			}
			objs := arrived(t, srv, o)
			var ind, sig int
			for _, m := range objs {
				switch m["type"] {
				case "indicator":
					ind++
				case "sighting":
					sig++
				}
			}
			if ind != tc.sessions || sig != tc.sessions || int64(len(objs)) != st.Objects {
				t.Errorf("%d objects arrived (%d indicators, %d sightings), the client posted %d", len(objs), ind, sig, st.Objects)
			}
			if srv.Pending {
				if polled := srv.Stats().Polled; polled != posts {
					t.Errorf("status resources followed %d, posts %d", polled, posts)
				}
			}
		})
	}
}

// TestLinkedToStix opens both kinds as the sensor does: the [sinks.stix] sink writes its
// bundle file and hands the same bundle to TAXII; the taxii sink ignores the events.
// Whichever sink closes first, the last sessions reach both.
func TestLinkedToStix(t *testing.T) {
	for _, taxiiFirst := range []bool{false, true} {
		t.Run(fmt.Sprintf("taxii closes first %v", taxiiFirst), func(t *testing.T) {
			srv := taxiitest.New(t, false, nil)
			dir := t.TempDir()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			env := events.Env{SensorID: "linked", Logger: quiet}
			sk, _ := events.Lookup("stix")
			so := stix.DefaultOptions()
			so.Dir = dir
			stixSink, err := sk.Open(ctx, &so, env)
			if err != nil {
				t.Fatal(err)
			}
			tk, _ := events.Lookup("taxii")
			o := testOptions(srv)
			taxiiSink, err := tk.Open(ctx, &o, env)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range writerSession(1, "127.76.9.1:4000") {
				stixSink.Write(e)
				taxiiSink.Write(e)
			}
			cancel() // the sensor stops before its sinks close
			first, second := stixSink, taxiiSink
			if taxiiFirst {
				first, second = taxiiSink, stixSink
			}
			if err := first.Close(); err != nil {
				t.Fatal(err)
			}
			if err := second.Close(); err != nil {
				t.Fatal(err)
			}
			objs := arrived(t, srv, o)
			files, _ := filepath.Glob(filepath.Join(dir, "bundle-*.json"))
			if len(files) != 1 {
				t.Fatalf("bundle files %v", files)
			}
			raw, _ := os.ReadFile(files[0])
			var doc struct{ Objects []map[string]any }
			json.Unmarshal(raw, &doc)
			if len(objs) == 0 || len(objs) != len(doc.Objects) {
				t.Fatalf("TAXII got %d objects, the file holds %d", len(objs), len(doc.Objects))
			}
			for i := range objs {
				if objs[i]["id"] != doc.Objects[i]["id"] {
					t.Errorf("object %d: %v by TAXII, %v in the file", i, objs[i]["id"], doc.Objects[i]["id"])
				}
			}
		})
	}
}

// TestStalledServer checks the bounds: a server that never answers costs a full queue
// (drops counted, Offer never blocks) and a Close that ends within close_timeout.
func TestStalledServer(t *testing.T) {
	srv := taxiitest.New(t, false, func(s *taxiitest.Server) { s.Stall = make(chan struct{}) })
	o := testOptions(srv)
	o.Queue, o.Retries = 2, 0
	o.Timeout = Duration{Duration: 30 * time.Second}
	o.CloseTimeout = Duration{Duration: 100 * time.Millisecond}
	c, err := NewClient(context.Background(), o, quiet)
	if err != nil {
		t.Fatal(err)
	}
	b := &stix.Bundle{ID: "bundle--6ba7b810-9dad-41d1-80b4-00c04fd430c8", Objects: []json.RawMessage{json.RawMessage(`{}`)}}
	var refused int
	for range 10 {
		if c.Offer(b) != nil {
			refused++
		}
	}
	// one bundle is in flight at most, two queued: at least 7 of 10 refused
	if refused < 7 {
		t.Errorf("%d of 10 offers refused with a queue of 2", refused)
	}
	done := make(chan error, 1)
	go func() { done <- c.Close() }()
	select {
	case err := <-done:
		if err == nil {
			t.Error("Close reported no loss")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Close did not end with a stalled server")
	}
	st := c.Stats()
	if st.Lost+st.Dropped != 10 || st.Posted != 0 {
		t.Errorf("stats %+v: 10 bundles neither lost nor dropped", st)
	}
	if c.Offer(b) == nil {
		t.Error("a closed client took a bundle")
	}
}

func TestEnvelopes(t *testing.T) {
	obj := func(n int) json.RawMessage { return json.RawMessage(`"` + strings.Repeat("x", n-2) + `"`) }
	for _, tc := range []struct {
		name   string
		sizes  []int
		maxLen int64
		want   []int // objects per envelope
	}{
		{"all in one", []int{10, 10, 10}, 1000, []int{3}},
		{"split", []int{10, 10, 10}, 40, []int{2, 1}},
		{"an object above the limit goes alone", []int{10, 100, 10}, 40, []int{1, 1, 1}},
		{"none", nil, 40, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var objs []json.RawMessage
			for _, n := range tc.sizes {
				objs = append(objs, obj(n))
			}
			envs := envelopes(objs, tc.maxLen)
			if len(envs) != len(tc.want) {
				t.Fatalf("%d envelopes, want %d", len(envs), len(tc.want))
			}
			for i, e := range envs {
				var env struct{ Objects []json.RawMessage }
				if err := json.Unmarshal(e, &env); err != nil {
					t.Fatal(err)
				}
				if len(env.Objects) != tc.want[i] {
					t.Errorf("envelope %d holds %d objects, want %d", i, len(env.Objects), tc.want[i])
				}
				if len(env.Objects) > 1 && int64(len(e)) > tc.maxLen {
					t.Errorf("envelope %d is %d bytes, above %d", i, len(e), tc.maxLen)
				}
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0}, {"3", 3 * time.Second}, {"-1", 0}, {"soon", 0},
		{time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat), 0},
	} {
		if got := retryAfter(tc.in); got != tc.want {
			t.Errorf("retryAfter(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
	if d := retryAfter(time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)); d < 59*time.Minute || d > time.Hour {
		t.Errorf("retryAfter(an hour ahead) = %v", d)
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Options)
		err  string
	}{
		{"complete", func(*Options) {}, ""},
		{"no url", func(o *Options) { o.URL = "" }, "url is required"},
		{"not http", func(o *Options) { o.URL = "ftp://x/" }, "not an http(s) URL"},
		{"no collection", func(o *Options) { o.Collection = "" }, "collection is required"},
		{"token and password", func(o *Options) { o.Token, o.Password = "t", "p" }, "exclude each other"},
		{"cert without key", func(o *Options) { o.CertFile = "/etc/hostname" }, "go together"},
		{"missing CA", func(o *Options) { o.CAFile = "/nonexistent/ca.pem" }, "ca_file"},
		{"zero queue", func(o *Options) { o.Queue = 0 }, "queue"},
		{"backoffs reversed", func(o *Options) { o.MaxBackoff.Duration = time.Millisecond }, "max_backoff"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := DefaultOptions()
			o.URL, o.Collection = "https://taxii.example/api1/", "c1"
			tc.mod(&o)
			err := o.Validate()
			if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("Validate() = %v, want %q", err, tc.err)
			}
		})
	}
}

// FuzzEnvelopes checks the packing of objects into posts: every envelope is JSON, no
// object is lost, doubled or reordered, and only a lone object may pass the limit.
func FuzzEnvelopes(f *testing.F) {
	f.Add([]byte{10, 20, 30, 200, 5}, int64(64))
	f.Add([]byte{}, int64(1))
	f.Fuzz(func(t *testing.T, sizes []byte, maxLen int64) {
		if maxLen <= 0 || maxLen > 1<<20 {
			return
		}
		var objs []json.RawMessage
		for i, n := range sizes {
			objs = append(objs, json.RawMessage(fmt.Sprintf(`{"n":%d,"p":%q}`, i, strings.Repeat("x", int(n)))))
		}
		var got []json.RawMessage
		for _, e := range envelopes(objs, maxLen) {
			var env struct{ Objects []json.RawMessage }
			if err := json.Unmarshal(e, &env); err != nil {
				t.Fatalf("envelope is not JSON: %v", err)
			}
			if len(env.Objects) == 0 || (len(env.Objects) > 1 && int64(len(e)) > maxLen) {
				t.Fatalf("envelope of %d objects, %d bytes, limit %d", len(env.Objects), len(e), maxLen)
			}
			got = append(got, env.Objects...)
		}
		if len(got) != len(objs) {
			t.Fatalf("%d objects out of %d", len(got), len(objs))
		}
		for i := range got {
			if string(got[i]) != string(objs[i]) {
				t.Fatalf("object %d changed", i)
			}
		}
	})
}
