package http

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	nethttp "net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

// Proxy limits: an upstream gets this long for the whole exchange and may send this much.
const (
	proxyTimeout = 5 * time.Second
	proxyLimit   = maxBodySize
)

// upstream is a <proxy> target: requests for the node (or status page) are forwarded there
// and its answer is relayed. It is off unless the profile names one.
type upstream struct {
	base    *url.URL
	client  *nethttp.Client
	timeout time.Duration
	limit   int64
}

func parseUpstream(s string) (*upstream, error) {
	if s == "" {
		return nil, fmt.Errorf("proxy: empty upstream")
	}
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("proxy %q: %v", s, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("proxy %q: want http://host[:port][/prefix]", s)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return &upstream{base: u, timeout: proxyTimeout, limit: proxyLimit}, nil
}

// newProxyClient is the client every upstream of a service shares. It ignores the
// environment's proxy settings and never follows redirects (they are relayed).
func newProxyClient() *nethttp.Client {
	tr := &nethttp.Transport{
		Proxy:                  nil,
		DialContext:            (&net.Dialer{Timeout: proxyTimeout}).DialContext,
		ResponseHeaderTimeout:  proxyTimeout,
		TLSHandshakeTimeout:    proxyTimeout,
		MaxIdleConnsPerHost:    4,
		IdleConnTimeout:        30 * time.Second,
		DisableCompression:     true,
		MaxResponseHeaderBytes: 64 << 10,
	}
	return &nethttp.Client{
		Transport:     tr,
		CheckRedirect: func(*nethttp.Request, []*nethttp.Request) error { return nethttp.ErrUseLastResponse },
	}
}

// hop-by-hop and computed headers are never relayed in either direction.
var hopHeaders = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Connection": true, "Proxy-Authenticate": true,
	"Proxy-Authorization": true, "Te": true, "Trailer": true, "Transfer-Encoding": true,
	"Upgrade": true, "Content-Length": true, "Host": true, "Expect": true,
}

// forward sends req to the upstream and returns its status, headers and body.
func (u *upstream) forward(ctx context.Context, req *request, rawPath, query string, body []byte) (*response, error) {
	ctx, cancel := context.WithTimeout(ctx, u.timeout)
	defer cancel()
	target := u.base.Scheme + "://" + u.base.Host + u.base.Path + rawPath
	if query != "" {
		target += "?" + query
	}
	var rd io.Reader
	if len(body) > 0 {
		rd = bytes.NewReader(body)
	}
	out, err := nethttp.NewRequestWithContext(ctx, req.method, target, rd)
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	for _, h := range req.headers {
		if hopHeaders[nethttp.CanonicalHeaderKey(h.name)] {
			continue
		}
		out.Header.Add(h.name, h.value)
	}
	if out.Header.Get("User-Agent") == "" {
		out.Header.Set("User-Agent", "") // send none rather than Go's
	}
	resp, err := u.client.Do(out)
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, u.limit+1))
	if err != nil {
		return nil, fmt.Errorf("proxy: read body: %w", err)
	}
	if int64(len(b)) > u.limit {
		return nil, fmt.Errorf("proxy: response larger than %d bytes", u.limit)
	}
	r := &response{status: resp.StatusCode, body: b, proxied: u.base.Host}
	names := make([]string, 0, len(resp.Header))
	for k := range resp.Header {
		if !hopHeaders[k] {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	for _, k := range names {
		for _, v := range resp.Header[k] {
			if !strings.ContainsAny(v, "\r\n\x00") {
				r.headers = append(r.headers, header{name: k, value: v})
			}
		}
	}
	return r, nil
}
