package http

import (
	"fmt"
	"html"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/icsnare/icsnare/profiles"
)

// A page is a response body: static bytes, or text with Conpot's <condata …/> tags compiled
// into segments that are substituted on every request. Substitution never evaluates page
// text: a tag names a databus key, a Starlark expression (Conpot's "eval" source, compiled
// once at configure time) or a clock format.
type page struct {
	name   string // the file, for messages
	static []byte // the body when segs is nil
	segs   []segment
	html   bool // escape substituted values
	size   int  // the text's length, to size render buffers
}

type segKind uint8

const (
	segText    segKind = iota
	segDatabus         // key: the databus key
	segEval            // expr
	segTime            // key: a strftime format; since: a databus key of seconds to subtract
)

type segment struct {
	kind   segKind
	text   []byte
	key    string
	format string // "duration" renders seconds as "3d 04h 05m 06s"
	since  string
	offset time.Duration // added to the time
	utc    bool
	expr   *profiles.Expr
}

var (
	condataRe = regexp.MustCompile(`(?is)<condata\b([^>]*?)/?>(?:\s*</condata\s*>)?`)
	attrRe    = regexp.MustCompile(`([A-Za-z_][-\w.:]*)\s*=\s*(?:"([^"]*)"|'([^']*)')`)
	// Conpot's clock idiom, which Starlark has no module for.
	strftimeRe = regexp.MustCompile(`^\s*time\.strftime\(\s*(?:'([^']*)'|"([^"]*)")\s*(?:,\s*time\.(localtime|gmtime)\(\s*\)\s*)?\)\s*$`)
)

// compilePage parses the condata tags of b. file names the page in errors.
func compilePage(sec *profiles.Section, file string, b []byte, escape bool) (*page, error) {
	p := &page{name: file, html: escape}
	locs := condataRe.FindAllSubmatchIndex(b, -1)
	if len(locs) == 0 {
		p.static = b
		return p, nil
	}
	last := 0
	for _, m := range locs {
		at := &profiles.Node{Name: "condata", File: file, Line: lineAt(b, m[0])}
		if m[0] > last {
			p.segs = append(p.segs, segment{kind: segText, text: b[last:m[0]]})
		}
		last = m[1]
		attrs := map[string]string{}
		for _, a := range attrRe.FindAllSubmatch(b[m[2]:m[3]], -1) {
			v := a[2]
			if a[3] != nil {
				v = a[3]
			}
			attrs[strings.ToLower(string(a[1]))] = html.UnescapeString(string(v))
		}
		s, err := compileSegment(sec, at, attrs)
		if err != nil {
			return nil, err
		}
		p.segs = append(p.segs, s)
	}
	if last < len(b) {
		p.segs = append(p.segs, segment{kind: segText, text: b[last:]})
	}
	for _, s := range p.segs {
		p.size += len(s.text) + 16
	}
	return p, nil
}

func compileSegment(sec *profiles.Section, at *profiles.Node, attrs map[string]string) (segment, error) {
	key := attrs["key"]
	s := segment{key: key, format: attrs["format"], since: attrs["since"]}
	switch s.format {
	case "", "duration":
	default:
		return s, at.Errorf("format %q: only \"duration\" is known", s.format)
	}
	switch src := attrs["source"]; src {
	case "databus":
		s.kind = segDatabus
		if key == "" {
			return s, at.Errorf("databus source without a key")
		}
		if !sec.Profile.Schema.Has(key) {
			sec.Warnf(at, "databus key %q is not defined in template.xml", key)
		}
	case "eval":
		if m := strftimeRe.FindStringSubmatch(key); m != nil {
			s.kind, s.key, s.utc = segTime, m[1]+m[2], m[3] == "gmtime"
			return s, nil
		}
		e, err := profiles.CompileExpr(at.File, key)
		if err != nil {
			return s, at.Errorf("eval: %v", err)
		}
		s.kind, s.expr = segEval, e
	case "time":
		s.kind = segTime
		if key == "" {
			s.key = "%H:%M:%S"
		}
		s.utc = strings.EqualFold(attrs["tz"], "utc")
		if o := attrs["offset"]; o != "" {
			f, err := strconv.ParseFloat(o, 64)
			if err != nil || f != f || f > 1e9 || f < -1e9 {
				return s, at.Errorf("offset %q: want seconds", o)
			}
			s.offset = time.Duration(f * float64(time.Second))
		}
		if s.since != "" && !sec.Profile.Schema.Has(s.since) {
			sec.Warnf(at, "databus key %q is not defined in template.xml", s.since)
		}
	default:
		return s, at.Errorf("source %q: want databus, eval or time", src)
	}
	return s, nil
}

// renderEnv is what substitution reads.
type renderEnv struct {
	db   *profiles.Databus
	seed uint64
	now  time.Time
}

// render appends the page's body to dst.
func (p *page) render(dst []byte, env *renderEnv) []byte {
	if p == nil {
		return dst
	}
	if p.segs == nil {
		return append(dst, p.static...)
	}
	if dst == nil {
		dst = make([]byte, 0, p.size+256)
	}
	for _, s := range p.segs {
		if s.kind == segText {
			dst = append(dst, s.text...)
			continue
		}
		v := s.value(env)
		if len(dst)+len(v) > maxBodySize {
			break
		}
		if p.html {
			dst = appendEscaped(dst, v)
		} else {
			dst = append(dst, v...)
		}
	}
	return dst
}

func (s *segment) value(env *renderEnv) string {
	switch s.kind {
	case segDatabus:
		if env.db == nil {
			return ""
		}
		if s.format == "duration" {
			n, err := env.db.GetInt(s.key)
			if err != nil {
				return ""
			}
			return formatDuration(n)
		}
		v, err := env.db.GetString(s.key)
		if err != nil {
			return ""
		}
		return v
	case segEval:
		v, err := s.expr.Eval(env.seed)
		if err != nil {
			return ""
		}
		return profiles.FormatValue(v)
	case segTime:
		t := env.now.Add(s.offset)
		if s.since != "" && env.db != nil {
			if v, err := env.db.Get(s.since); err == nil {
				if f, ok := v.(float64); ok && f > -1e10 && f < 1e10 {
					t = t.Add(-time.Duration(f * float64(time.Second))) // to the millisecond, stable across requests
				} else if n, err := env.db.GetInt(s.since); err == nil {
					t = t.Add(-time.Duration(n) * time.Second)
				}
			}
		}
		if s.utc {
			t = t.UTC()
		} else {
			t = t.In(hostLocation(env.db))
		}
		return strftime(s.key, t)
	}
	return ""
}

// formatDuration renders seconds the way the HMI shows running times.
func formatDuration(sec int64) string {
	if sec < 0 {
		sec = 0
	}
	d, h, m, s := sec/86400, sec/3600%24, sec/60%60, sec%60
	return fmt.Sprintf("%dd %02dh %02dm %02ds", d, h, m, s)
}

// tzKey is the databus key naming the emulated host's time zone (an IANA name).
const tzKey = "httpTimeZone"

var locations sync.Map // name → *time.Location

func hostLocation(db *profiles.Databus) *time.Location {
	if db == nil {
		return time.UTC
	}
	name, err := db.GetString(tzKey)
	if err != nil || name == "" {
		return time.UTC
	}
	if l, ok := locations.Load(name); ok {
		return l.(*time.Location)
	}
	l, err := time.LoadLocation(name)
	if err != nil {
		l = time.UTC
	}
	locations.Store(name, l)
	return l
}

// strftime formats t with the C/Python directives pages use.
func strftime(f string, t time.Time) string {
	var b strings.Builder
	for i := 0; i < len(f); i++ {
		c := f[i]
		if c != '%' || i+1 == len(f) {
			b.WriteByte(c)
			continue
		}
		i++
		switch f[i] {
		case 'Y':
			b.WriteString(strconv.Itoa(t.Year()))
		case 'y':
			fmt.Fprintf(&b, "%02d", t.Year()%100)
		case 'm':
			fmt.Fprintf(&b, "%02d", int(t.Month()))
		case 'd':
			fmt.Fprintf(&b, "%02d", t.Day())
		case 'e':
			fmt.Fprintf(&b, "%2d", t.Day())
		case 'H':
			fmt.Fprintf(&b, "%02d", t.Hour())
		case 'I':
			fmt.Fprintf(&b, "%02d", (t.Hour()+11)%12+1)
		case 'M':
			fmt.Fprintf(&b, "%02d", t.Minute())
		case 'S':
			fmt.Fprintf(&b, "%02d", t.Second())
		case 'f':
			fmt.Fprintf(&b, "%06d", t.Nanosecond()/1000)
		case 'L': // milliseconds (not Python; Siemens diagnostic buffers show them)
			fmt.Fprintf(&b, "%03d", t.Nanosecond()/1e6)
		case 'j':
			fmt.Fprintf(&b, "%03d", t.YearDay())
		case 'p':
			b.WriteString(t.Format("PM"))
		case 'a':
			b.WriteString(t.Format("Mon"))
		case 'A':
			b.WriteString(t.Format("Monday"))
		case 'b':
			b.WriteString(t.Format("Jan"))
		case 'B':
			b.WriteString(t.Format("January"))
		case 'Z':
			b.WriteString(t.Format("MST"))
		case 'z':
			b.WriteString(t.Format("-0700"))
		case '%':
			b.WriteByte('%')
		default:
			b.WriteByte('%')
			b.WriteByte(f[i])
		}
	}
	return b.String()
}

// appendEscaped appends s with HTML's special characters escaped.
func appendEscaped(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '<':
			dst = append(dst, "&lt;"...)
		case '>':
			dst = append(dst, "&gt;"...)
		case '&':
			dst = append(dst, "&amp;"...)
		case '"':
			dst = append(dst, "&#34;"...)
		case '\'':
			dst = append(dst, "&#39;"...)
		default:
			dst = append(dst, c)
		}
	}
	return dst
}
