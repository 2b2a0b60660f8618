package clone

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"sort"
	"strings"
)

func init() { register(httpProber{}) }

// HTTP crawl bounds.
const (
	httpMaxDepth = 2
	httpMaxPages = 40
	httpMaxBody  = 256 << 10
	httpMaxTotal = 4 << 20
)

// httpKeepHeaders are the response headers a node keeps; Date, lengths and connection
// handling are the server's own (the Date header stays live).
var httpKeepHeaders = []string{"Content-Type", "Cache-Control", "Pragma", "Expires", "Last-Modified", "Set-Cookie",
	"Location", "WWW-Authenticate", "X-Frame-Options", "X-Content-Type-Options", "Content-Security-Policy",
	"Content-Language", "Refresh", "ETag", "Accept-Ranges", "Vary"}

var linkRe = regexp.MustCompile(`(?i)\b(?:href|src)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))`)

type httpProber struct{}

func (httpProber) Name() string     { return "http" }
func (httpProber) DefaultPort() int { return 80 }

type httpPage struct {
	path   string
	status int
	header http.Header
	body   []byte
}

func (httpProber) Probe(ctx context.Context, p *Probe) error {
	client := &http.Client{
		Timeout: p.Opts.Timeout,
		Transport: &http.Transport{Proxy: nil, DialContext: (&net.Dialer{Timeout: p.Opts.Timeout}).DialContext,
			DisableKeepAlives: true, DisableCompression: true, ResponseHeaderTimeout: p.Opts.Timeout},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	defer client.CloseIdleConnections()
	base := "http://" + p.Addr()
	total := 0
	get := func(pth string) (*httpPage, error) {
		if err := p.Request(ctx); err != nil {
			return nil, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+pth, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("User-Agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64)")
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, httpMaxBody+1))
		if err != nil {
			return nil, err
		}
		if len(body) > httpMaxBody {
			p.Report.Skip("%s: body over %d bytes, cut", pth, httpMaxBody)
			body = body[:httpMaxBody]
		}
		total += len(body)
		return &httpPage{path: pth, status: resp.StatusCode, header: resp.Header, body: body}, nil
	}
	rep, tpl := p.Report, p.Template
	start, err := get("/")
	if err != nil {
		if errors.Is(err, ErrBudget) || ctx.Err() != nil {
			return err
		}
		return fmt.Errorf("%w: %v", ErrAbsent, err)
	}
	pages := map[string]*httpPage{"/": start}
	queue := []struct {
		pg    *httpPage
		depth int
	}{{start, 0}}
	for len(queue) > 0 && len(pages) < httpMaxPages && total < httpMaxTotal {
		cur := queue[0]
		queue = queue[1:]
		if cur.depth >= httpMaxDepth+1 {
			continue
		}
		for _, link := range pageLinks(cur.pg) {
			if _, seen := pages[link]; seen || len(pages) >= httpMaxPages {
				continue
			}
			pg, err := get(link)
			if err != nil {
				if errors.Is(err, ErrBudget) || ctx.Err() != nil {
					return err
				}
				rep.Refuse("%s: %v", link, err)
				pages[link] = nil
				continue
			}
			pages[link] = pg
			queue = append(queue, struct {
				pg    *httpPage
				depth int
			}{pg, cur.depth + 1})
		}
	}
	if len(pages) >= httpMaxPages {
		rep.Skip("crawl stopped at %d pages", httpMaxPages)
	}
	// The device's own error page.
	var missing *httpPage
	if pg, err := get("/icsnare-clone-missing.htm"); err == nil {
		missing = pg
	}
	var paths []string
	for k, pg := range pages {
		if pg != nil {
			paths = append(paths, k)
		}
	}
	sort.Strings(paths)
	var b strings.Builder
	b.WriteString("    <global>\n        <config>\n")
	b.WriteString("            <entity name=\"protocol_version\">HTTP/1.1</entity>\n")
	b.WriteString("            <entity name=\"update_header_date\">true</entity>\n")
	b.WriteString("        </config>\n        <headers>\n")
	if s := start.header.Get("Server"); s != "" {
		fmt.Fprintf(&b, "            <entity name=\"Server\">%s</entity>\n", X(s))
		rep.Find("Server: %s", s)
	}
	b.WriteString("        </headers>\n    </global>\n    <htdocs>\n")
	status := map[int]*httpPage{}
	for _, pth := range paths {
		pg := pages[pth]
		if pg.status == 401 || pg.status == 403 {
			if status[pg.status] == nil {
				status[pg.status] = pg
			}
		}
		file := pth
		if strings.HasSuffix(pth, "/") {
			file = pth + "index.html"
			if _, taken := pages[file]; taken {
				file = pth + "index-clone.html"
			}
		}
		fmt.Fprintf(&b, "        <node name=\"%s\">\n", XA(pth))
		if file != pth && len(pg.body) > 0 {
			// A directory path serves its page through an alias: Conpot reads no file for it.
			fmt.Fprintf(&b, "            <alias>%s</alias>\n        </node>\n        <node name=\"%s\">\n", X(file), XA(file))
		}
		if pg.status != 200 {
			fmt.Fprintf(&b, "            <status>%d</status>\n", pg.status)
		}
		writeHeaders(&b, "            ", pg.header)
		b.WriteString("        </node>\n")
		if len(pg.body) > 0 {
			tpl.File("http/htdocs"+file, httpBody(p, pth, pg))
		}
		rep.Find("%s: %d, %d bytes", pth, pg.status, len(pg.body))
	}
	b.WriteString("    </htdocs>\n    <statuscodes>\n")
	if missing != nil && missing.status >= 400 {
		status[missing.status] = missing
	}
	var codes []int
	for c := range status {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	for _, c := range codes {
		pg := status[c]
		fmt.Fprintf(&b, "        <status name=\"%d\">\n", c)
		writeHeaders(&b, "            ", pg.header)
		b.WriteString("        </status>\n")
		tpl.File(fmt.Sprintf("http/statuscodes/%d.status", c), httpBody(p, pg.path, pg))
		rep.Find("status page %d (%d bytes)", c, len(pg.body))
	}
	b.WriteString("    </statuscodes>\n")
	tpl.Section("http", 80, b.String())
	return nil
}

func writeHeaders(b *strings.Builder, indent string, h http.Header) {
	var lines []string
	for _, name := range httpKeepHeaders {
		for _, v := range h.Values(name) {
			if name == "Location" {
				if u, err := url.Parse(v); err == nil && u.IsAbs() {
					v = u.RequestURI() // the clone's own host, not the device's address
				}
			}
			lines = append(lines, fmt.Sprintf("%s    <entity name=\"%s\">%s</entity>\n", indent, name, X(v)))
		}
	}
	if len(lines) == 0 {
		return
	}
	b.WriteString(indent + "<headers>\n")
	for _, l := range lines {
		b.WriteString(l)
	}
	b.WriteString(indent + "</headers>\n")
}

// pageLinks returns the same-site paths a page links to (href and src; no query strings,
// so no link that could run an action), and its redirect target.
func pageLinks(pg *httpPage) []string {
	var raw []string
	if loc := pg.header.Get("Location"); loc != "" {
		raw = append(raw, loc)
	}
	if strings.Contains(pg.header.Get("Content-Type"), "html") || strings.Contains(pg.header.Get("Content-Type"), "css") {
		for _, m := range linkRe.FindAllSubmatch(pg.body, -1) {
			raw = append(raw, string(m[1])+string(m[2])+string(m[3]))
		}
	}
	baseURL := &url.URL{Path: pg.path}
	seen := map[string]bool{}
	var out []string
	for _, r := range raw {
		u, err := url.Parse(strings.TrimSpace(r))
		if err != nil || u.RawQuery != "" || u.Opaque != "" || (u.Scheme != "" && u.Scheme != "http") {
			continue
		}
		if u.IsAbs() || u.Host != "" {
			u = &url.URL{Path: u.Path} // the same device under another name is still the device
			if u.Path == "" {
				continue
			}
		}
		ref := baseURL.ResolveReference(&url.URL{Path: u.Path})
		pth := path.Clean(ref.Path)
		if strings.HasSuffix(ref.Path, "/") && pth != "/" {
			pth += "/"
		}
		// A path the base page brought in with a literal '?' or '#' would be fetched as a
		// query or a fragment: not a page of the site.
		if pth == "" || strings.Contains(pth, "..") || strings.ContainsAny(pth, "\"<>\\?#") || seen[pth] {
			continue
		}
		seen[pth] = true
		out = append(out, pth)
	}
	return out
}

var (
	macTextRe = regexp.MustCompile(`\b[0-9A-Fa-f]{2}([:-])[0-9A-Fa-f]{2}(?:[:-][0-9A-Fa-f]{2}){4}\b`)
	condataRe = regexp.MustCompile(`(?i)<condata\b`)
)

// httpBody returns the body as the template stores it: in HTML, every value that
// identifies the unit (seen by another protocol, a MAC address, the device's own IP
// address) becomes a databus tag.
func httpBody(p *Probe, pth string, pg *httpPage) []byte {
	if !strings.Contains(strings.ToLower(pg.header.Get("Content-Type")), "text/html") {
		return pg.body
	}
	tpl := p.Template
	s := string(pg.body)
	if condataRe.MatchString(s) {
		p.Report.Skip("%s: the page itself contains <condata> text, kept as it is", pth)
		return pg.body
	}
	tag := func(k string) string { return fmt.Sprintf(`<condata source="databus" key="%s" />`, k) }
	for _, m := range macTextRe.FindAllString(s, -1) {
		tpl.Seed(KindMAC, "http", pth, m)
	}
	if ip := p.Target.String(); strings.Contains(s, ip) {
		tpl.Seed(KindIP, "http", pth, ip)
	}
	// Longest values first, so a value inside another is not cut out of it.
	vals := make([]string, 0, len(tpl.ids))
	for v := range tpl.ids {
		if len(v) >= 4 {
			vals = append(vals, v)
		}
	}
	sort.Slice(vals, func(i, j int) bool { return len(vals[i]) > len(vals[j]) })
	var pairs []string
	for _, v := range vals {
		if strings.Contains(s, v) {
			pairs = append(pairs, v, tag(tpl.ids[v]))
			if k := tpl.ids[v]; !strings.Contains(tpl.seededFields(k), pth) {
				tpl.Seed("", "http", pth, v)
			}
		}
	}
	if len(pairs) == 0 {
		return pg.body
	}
	return []byte(strings.NewReplacer(pairs...).Replace(s))
}
