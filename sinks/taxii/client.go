package taxii

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/icsnare/icsnare/sinks/stix"
)

// MediaType is the TAXII 2.1 media type of requests and responses.
const MediaType = "application/taxii+json;version=2.1"

// maxResponse bounds the bytes read from one response.
const maxResponse = 1 << 20

// errPermanent marks an answer a retry cannot change (400, 401, 403, 404 …); errTooLarge
// (413) is one too, but a smaller post may pass.
var (
	errPermanent = errors.New("refused")
	errTooLarge  = fmt.Errorf("%w: too large", errPermanent)
)

// Client posts bundles to a TAXII 2.1 collection from a goroutine of its own. Offer never
// blocks: the queue is bounded and a bundle that finds it full is dropped and counted.
type Client struct {
	opts Options
	http *http.Client
	log  *slog.Logger

	apiRoot  string // resolved API root URL, with a trailing slash; set by run's goroutine
	rootRead bool   // the API root's information was read
	maxLen   int64

	mu     sync.Mutex
	closed bool
	q      chan *stix.Bundle
	errs   []error // failures not reported yet (Err)

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	posted, objects, lost, dropped, retried, failedObjects atomic.Int64
	failing                                                atomic.Bool
}

// NewClient starts a client with validated options. Its work outlives ctx (the sensor's,
// which ends before the sinks close) so that Close can still post the last bundles; Close
// ends it, after CloseTimeout at most.
func NewClient(ctx context.Context, o Options, log *slog.Logger) (*Client, error) {
	if log == nil {
		log = slog.Default()
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s holds no PEM certificate", o.CAFile)
		}
	}
	if o.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("cert_file/key_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	tr := &http.Transport{TLSClientConfig: tc, Proxy: http.ProxyFromEnvironment,
		TLSHandshakeTimeout: o.Timeout.Duration, ResponseHeaderTimeout: o.Timeout.Duration,
		MaxIdleConns: 2, IdleConnTimeout: time.Minute}
	c := &Client{opts: o, log: log, q: make(chan *stix.Bundle, o.Queue), done: make(chan struct{}),
		http: &http.Client{Transport: tr, Timeout: o.Timeout.Duration,
			// a redirect would resend the credentials elsewhere: TAXII servers do not need it
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		maxLen: o.MaxContentLength}
	if !o.Discovery {
		c.apiRoot = withSlash(o.URL)
	}
	if u, _ := url.Parse(o.URL); u != nil && u.Scheme == "http" && (o.Token != "" || o.Password != "") {
		log.Warn("taxii: credentials over plain HTTP; use an https URL", "url", u.Redacted())
	}
	c.ctx, c.cancel = context.WithCancel(context.WithoutCancel(ctx))
	go c.run()
	return c, nil
}

func withSlash(u string) string {
	if !strings.HasSuffix(u, "/") {
		return u + "/"
	}
	return u
}

// Offer queues b for posting (stix.Output).
func (c *Client) Offer(b *stix.Bundle) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		c.dropped.Add(1)
		return errors.New("taxii: client closed, bundle dropped")
	}
	select {
	case c.q <- b:
		return nil
	default:
		c.dropped.Add(1)
		return fmt.Errorf("taxii: queue of %d bundles full, bundle dropped", cap(c.q))
	}
}

// Err returns the failures since the last call (bundles given up on), or nil.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	err := errors.Join(c.errs...)
	c.errs = nil
	return err
}

// Close stops taking bundles and waits up to CloseTimeout for the queued ones to go; the
// rest are given up on and counted.
func (c *Client) Close() error {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		close(c.q)
	}
	c.mu.Unlock()
	t := time.NewTimer(c.opts.CloseTimeout.Duration)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
		c.cancel()
		<-c.done
	}
	c.cancel()
	return c.Err()
}

// Stats is what a Client counts.
type Stats struct {
	Posted, Objects    int64 // bundles posted and their objects
	Lost               int64 // bundles given up on (refused, or retries spent)
	Dropped            int64 // bundles refused by a full queue or after Close
	Retried            int64 // requests tried again
	FailedObjects      int64 // objects the server's status resource reported failed
	Queued, QueueLimit int
}

// Stats returns the client's counters.
func (c *Client) Stats() Stats {
	return Stats{Posted: c.posted.Load(), Objects: c.objects.Load(), Lost: c.lost.Load(), Dropped: c.dropped.Load(),
		Retried: c.retried.Load(), FailedObjects: c.failedObjects.Load(), Queued: len(c.q), QueueLimit: cap(c.q)}
}

func (c *Client) run() {
	defer close(c.done)
	for b := range c.q {
		if c.ctx.Err() != nil {
			c.giveUp(b, c.ctx.Err())
			continue
		}
		if err := c.send(b); err != nil {
			c.giveUp(b, err)
			continue
		}
		c.posted.Add(1)
		c.objects.Add(int64(len(b.Objects)))
		if c.failing.CompareAndSwap(true, false) {
			c.log.Info("taxii: bundles are posted again", "lost", c.lost.Load())
		}
	}
}

func (c *Client) giveUp(b *stix.Bundle, err error) {
	c.lost.Add(1)
	err = fmt.Errorf("taxii: bundle %s of %d objects lost: %w", b.ID, len(b.Objects), err)
	if !c.failing.Swap(true) {
		c.log.Error("taxii: giving up on a bundle; counting further losses quietly", "err", err)
	}
	c.mu.Lock()
	if len(c.errs) < 16 {
		c.errs = append(c.errs, err)
	}
	c.mu.Unlock()
}

// send posts b's objects in as many envelopes as max_content_length asks.
func (c *Client) send(b *stix.Bundle) error {
	if c.apiRoot == "" {
		root, err := c.discover()
		if err != nil {
			return fmt.Errorf("discovery: %w", err)
		}
		c.apiRoot = root
	}
	if !c.rootRead {
		c.rootRead = c.rootInfo()
	}
	return c.postAll(b.Objects)
}

// postAll posts objs in envelopes of at most maxLen bytes; an envelope the server finds
// too large (413) is split in two and tried again.
func (c *Client) postAll(objs []json.RawMessage) error {
	for len(objs) > 0 {
		env, n := envelope(objs, c.maxLen)
		err := c.post(env)
		if errors.Is(err, errTooLarge) && n > 1 {
			c.maxLen = max(int64(len(env))/2, 1)
			c.log.Warn("taxii: the server found a post too large; posting smaller ones", "bytes", len(env), "max", c.maxLen)
			continue
		}
		if err != nil {
			return err
		}
		objs = objs[n:]
	}
	return nil
}

// envelope packs the first objects of objs into a TAXII envelope ({"objects":[…]}) of at
// most maxLen bytes, and says how many it took; an object larger than that goes alone
// (and the server may refuse it).
func envelope(objs []json.RawMessage, maxLen int64) ([]byte, int) {
	const head, tail = `{"objects":[`, `]}`
	cur := []byte(head)
	n := 0
	for _, o := range objs {
		if n > 0 && int64(len(cur)+1+len(o)+len(tail)) > maxLen {
			break
		}
		if n > 0 {
			cur = append(cur, ',')
		}
		cur = append(cur, o...)
		n++
	}
	return append(cur, tail...), n
}

// envelopes packs all of objs into envelopes of at most maxLen bytes.
func envelopes(objs []json.RawMessage, maxLen int64) [][]byte {
	var out [][]byte
	for len(objs) > 0 {
		env, n := envelope(objs, maxLen)
		out = append(out, env)
		objs = objs[n:]
	}
	return out
}

// discover reads the discovery resource and returns its default API root (else its
// first), resolved against the discovery URL.
func (c *Client) discover() (string, error) {
	var d struct {
		Default  string   `json:"default"`
		APIRoots []string `json:"api_roots"`
	}
	if err := c.getJSON(c.opts.URL, &d); err != nil {
		return "", err
	}
	root := d.Default
	if root == "" && len(d.APIRoots) > 0 {
		root = d.APIRoots[0]
	}
	if root == "" {
		return "", errors.New("the server lists no API root")
	}
	base, _ := url.Parse(c.opts.URL)
	ref, err := url.Parse(root)
	if err != nil {
		return "", fmt.Errorf("API root %q: %w", root, err)
	}
	abs := base.ResolveReference(ref)
	// the credentials go only where the configuration sends them
	if abs.Scheme != base.Scheme || abs.Host != base.Host {
		return "", fmt.Errorf("%w: the API root %s is not on %s://%s; set url to it (without discovery) to post there",
			errPermanent, abs.Redacted(), base.Scheme, base.Host)
	}
	return withSlash(abs.String()), nil
}

// rootInfo reads the API root's information: its max_content_length lowers the size of
// posts, and a root without TAXII 2.1 is reported. Failures only log; it reports
// whether the information was read.
func (c *Client) rootInfo() bool {
	var info struct {
		Versions         []string `json:"versions"`
		MaxContentLength int64    `json:"max_content_length"`
	}
	if err := c.getJSON(c.apiRoot, &info); err != nil {
		c.log.Warn("taxii: reading the API root's information", "url", c.apiRoot, "err", err)
		return errors.Is(err, errPermanent) // a server without it: do not ask again
	}
	if info.MaxContentLength > 0 && info.MaxContentLength < c.maxLen {
		c.maxLen = info.MaxContentLength
	}
	for _, v := range info.Versions {
		if strings.ReplaceAll(v, " ", "") == MediaType {
			return true
		}
	}
	c.log.Warn("taxii: the API root does not list TAXII 2.1", "url", c.apiRoot, "versions", info.Versions)
	return true
}

// post adds one envelope to the collection, retrying on 429, 5xx and network errors, and
// follows the status resource the server answers with.
func (c *Client) post(body []byte) error {
	u := c.apiRoot + "collections/" + url.PathEscape(c.opts.Collection) + "/objects/"
	var last error
	for attempt := 0; attempt <= c.opts.Retries; attempt++ {
		if attempt > 0 {
			c.retried.Add(1)
		}
		status, retryAfter, err := c.do(http.MethodPost, u, body)
		if err == nil {
			return c.follow(status)
		}
		if errors.Is(err, errPermanent) || c.ctx.Err() != nil {
			return err
		}
		last = err
		if attempt == c.opts.Retries {
			break
		}
		if err := c.sleep(c.backoff(attempt, retryAfter)); err != nil {
			return fmt.Errorf("%w (after %v)", err, last)
		}
	}
	return fmt.Errorf("%d tries: %w", c.opts.Retries+1, last)
}

// statusResource is the part of a TAXII status resource the client reads.
type statusResource struct {
	ID           string `json:"id"`
	Status       string `json:"status"`
	TotalCount   int64  `json:"total_count"`
	SuccessCount int64  `json:"success_count"`
	FailureCount int64  `json:"failure_count"`
	PendingCount int64  `json:"pending_count"`
}

// follow polls a pending status resource until it completes or StatusWait passes, and
// counts the objects the server reports failed.
func (c *Client) follow(st statusResource) error {
	deadline := time.Now().Add(c.opts.StatusWait.Duration)
	wait := c.opts.Backoff.Duration
	for st.Status != "complete" && st.ID != "" && c.opts.StatusWait.Duration > 0 {
		if time.Now().Add(wait).After(deadline) {
			c.log.Info("taxii: the server is still adding the objects; not following it further",
				"status", st.ID, "pending", st.PendingCount)
			break
		}
		if err := c.sleep(wait); err != nil {
			return nil // posted; only the follow-up is cut short
		}
		wait = min(2*wait, c.opts.MaxBackoff.Duration)
		var next statusResource
		if err := c.getJSON(c.apiRoot+"status/"+url.PathEscape(st.ID)+"/", &next); err != nil {
			c.log.Warn("taxii: reading a status resource", "status", st.ID, "err", err)
			break
		}
		st = next
	}
	if st.FailureCount > 0 {
		c.failedObjects.Add(st.FailureCount)
		return fmt.Errorf("%w: the server failed to add %d of %d objects (status %s)", errPermanent,
			st.FailureCount, st.TotalCount, st.ID)
	}
	return nil
}

// backoff returns the wait before retry attempt+1: the server's Retry-After when it gave
// one, else exponential with full jitter; never above MaxBackoff.
func (c *Client) backoff(attempt int, retryAfter time.Duration) time.Duration {
	if retryAfter > 0 {
		return min(retryAfter, c.opts.MaxBackoff.Duration)
	}
	d := c.opts.Backoff.Duration << min(attempt, 20)
	d = min(d, c.opts.MaxBackoff.Duration)
	return d/2 + rand.N(d/2+1)
}

func (c *Client) sleep(d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-c.ctx.Done():
		return c.ctx.Err()
	}
}

func (c *Client) getJSON(u string, v any) error {
	var last error
	for attempt := 0; attempt <= c.opts.Retries; attempt++ {
		raw, retryAfter, err := c.request(http.MethodGet, u, nil)
		if err == nil {
			if err := json.Unmarshal(raw, v); err != nil {
				return fmt.Errorf("GET %s: %w", u, err)
			}
			return nil
		}
		if errors.Is(err, errPermanent) || c.ctx.Err() != nil {
			return err
		}
		last = err
		if attempt < c.opts.Retries {
			if err := c.sleep(c.backoff(attempt, retryAfter)); err != nil {
				return err
			}
		}
	}
	return last
}

// do sends one request with a body and decodes the status resource of the answer.
func (c *Client) do(method, u string, body []byte) (statusResource, time.Duration, error) {
	var st statusResource
	raw, retryAfter, err := c.request(method, u, body)
	if err != nil {
		return st, retryAfter, err
	}
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, &st); err != nil {
			// the server took the objects: posting them again would double them
			c.log.Warn("taxii: the answer to a post is no status resource", "url", u, "err", err)
			return statusResource{}, 0, nil
		}
	}
	return st, 0, nil
}

// request sends one request and returns the body of a 2xx answer; other answers are
// errors (errPermanent unless a retry may help), with the Retry-After of a 429 or 503.
func (c *Client) request(method, u string, body []byte) ([]byte, time.Duration, error) {
	ctx, cancel := context.WithTimeout(c.ctx, c.opts.Timeout.Duration)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %v", errPermanent, err)
	}
	req.Header.Set("Accept", MediaType)
	if body != nil {
		req.Header.Set("Content-Type", MediaType)
	}
	switch {
	case c.opts.Token != "":
		req.Header.Set("Authorization", "Bearer "+c.opts.Token)
	case c.opts.Username != "" || c.opts.Password != "":
		req.SetBasicAuth(c.opts.Username, c.opts.Password)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("%s %s: %w", method, u, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return nil, 0, fmt.Errorf("%s %s: reading the answer: %w", method, u, err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return raw, 0, nil
	}
	msg := fmt.Sprintf("%s %s: %s", method, u, resp.Status)
	var terr struct {
		Title       string `json:"title"`
		Description string `json:"description"`
	}
	if json.Unmarshal(raw, &terr) == nil && terr.Title != "" {
		msg += ": " + terr.Title
		if terr.Description != "" {
			msg += " (" + terr.Description + ")"
		}
	}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
		return nil, retryAfter(resp.Header.Get("Retry-After")), errors.New(msg)
	}
	if resp.StatusCode == http.StatusRequestEntityTooLarge {
		return nil, 0, fmt.Errorf("%w: %s", errTooLarge, msg)
	}
	return nil, 0, fmt.Errorf("%w: %s", errPermanent, msg)
}

// retryAfter reads a Retry-After header: seconds or an HTTP date.
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}
