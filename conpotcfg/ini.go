package conpotcfg

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// INI is a configuration file read as Python's ConfigParser(os.environ) reads Conpot's:
// sections and "key = value" (or "key: value") options with keys folded to lower case,
// whole-line comments (# or ;) and no inline comments (a "; …" after a value is part of the
// value, as in Conpot), indented continuation lines, duplicate sections and options as
// errors, and BasicInterpolation: %(name)s takes the option of the same section or, failing
// that, of [DEFAULT], whose options are the environment's variables (names folded to lower
// case) overridden by the file's own [DEFAULT].
type INI struct {
	name     string
	sections map[string]map[string]option
	order    []string
	defaults map[string]option
}

type option struct {
	value string
	line  int
}

// maxINISize bounds the configuration file read.
const maxINISize = 1 << 20

// maxInterpolationDepth is ConfigParser's MAX_INTERPOLATION_DEPTH.
const maxInterpolationDepth = 10

// ParseINI reads a Conpot configuration file; name is used in errors ("conpot.cfg:12: …"),
// env (KEY=VALUE strings, as os.Environ returns) fills [DEFAULT].
func ParseINI(name string, r io.Reader, env []string) (*INI, error) {
	f := &INI{name: name, sections: map[string]map[string]option{}, defaults: map[string]option{}}
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
			f.defaults[strings.ToLower(k)] = option{value: v}
		}
	}
	sc := bufio.NewScanner(io.LimitReader(r, maxINISize+1))
	sc.Buffer(make([]byte, 0, 4096), maxINISize)
	var (
		cur        map[string]option
		curKey     string
		keyIndent  int
		size       int
		inDefaults bool
		fileDef    = map[string]bool{}
	)
	for n := 1; sc.Scan(); n++ {
		raw := sc.Text()
		if size += len(raw) + 1; size > maxINISize {
			return nil, fmt.Errorf("%s: larger than %d bytes", name, maxINISize)
		}
		line := strings.TrimSpace(raw)
		indent := len(raw) - len(strings.TrimLeft(raw, " \t"))
		if line == "" || line[0] == '#' || line[0] == ';' {
			if line == "" {
				curKey = ""
			}
			continue
		}
		if curKey != "" && indent > keyIndent && cur != nil {
			o := cur[curKey]
			o.value += "\n" + line
			cur[curKey] = o
			continue
		}
		if line[0] == '[' {
			end := strings.IndexByte(line, ']')
			if end < 0 {
				return nil, fmt.Errorf("%s:%d: section header %q lacks its ]", name, n, line)
			}
			sec := line[1:end]
			curKey = ""
			if sec == "DEFAULT" {
				cur, inDefaults = f.defaults, true
				continue
			}
			inDefaults = false
			if _, dup := f.sections[sec]; dup {
				return nil, fmt.Errorf("%s:%d: section [%s] already exists", name, n, sec)
			}
			cur = map[string]option{}
			f.sections[sec] = cur
			f.order = append(f.order, sec)
			continue
		}
		if cur == nil {
			return nil, fmt.Errorf("%s:%d: %q before the first [section]", name, n, line)
		}
		i := strings.IndexAny(line, "=:")
		if i <= 0 {
			return nil, fmt.Errorf("%s:%d: %q is not \"key = value\"", name, n, line)
		}
		key := strings.ToLower(strings.TrimSpace(line[:i]))
		if _, dup := cur[key]; dup && (!inDefaults || fileDef[key]) {
			return nil, fmt.Errorf("%s:%d: option %q already set in this section", name, n, key)
		}
		if inDefaults {
			fileDef[key] = true
		}
		cur[key] = option{value: strings.TrimSpace(line[i+1:]), line: n}
		curKey, keyIndent = key, indent
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return f, nil
}

// Sections lists the file's sections in order ([DEFAULT] aside).
func (f *INI) Sections() []string { return f.order }

// Has reports whether the file has the section.
func (f *INI) Has(section string) bool {
	_, ok := f.sections[section]
	return ok
}

// Pos names where section's key was set ("conpot.cfg:12"), or the section.
func (f *INI) Pos(section, key string) string {
	if o, ok := f.sections[section][strings.ToLower(key)]; ok && o.line > 0 {
		return f.name + ":" + strconv.Itoa(o.line)
	}
	return f.name + " [" + section + "]"
}

// Get returns the interpolated value of section's key, and whether it is set (in the
// section or in [DEFAULT]).
func (f *INI) Get(section, key string) (string, bool, error) {
	key = strings.ToLower(key)
	o, ok := f.lookup(section, key)
	if !ok {
		return "", false, nil
	}
	v, err := f.interpolate(section, o.value, 1)
	if err != nil {
		return "", true, fmt.Errorf("%s: [%s] %s: %w", f.Pos(section, key), section, key, err)
	}
	return v, true, nil
}

// Bool returns section's key as ConfigParser.getboolean reads it (1/yes/true/on,
// 0/no/false/off, any case); def when it is not set.
func (f *INI) Bool(section, key string, def bool) (bool, error) {
	v, ok, err := f.Get(section, key)
	if err != nil || !ok {
		return def, err
	}
	switch strings.ToLower(v) {
	case "1", "yes", "true", "on":
		return true, nil
	case "0", "no", "false", "off":
		return false, nil
	}
	return false, fmt.Errorf("%s: [%s] %s = %q: not a boolean", f.Pos(section, key), section, key, v)
}

func (f *INI) lookup(section, key string) (option, bool) {
	if o, ok := f.sections[section][key]; ok {
		return o, true
	}
	o, ok := f.defaults[key]
	return o, ok
}

// interpolate expands %(name)s and %% in v, as BasicInterpolation does.
func (f *INI) interpolate(section, v string, depth int) (string, error) {
	if depth > maxInterpolationDepth {
		return "", fmt.Errorf("interpolation deeper than %d levels (a reference loop?)", maxInterpolationDepth)
	}
	if !strings.Contains(v, "%") {
		return v, nil
	}
	var b strings.Builder
	for {
		i := strings.IndexByte(v, '%')
		if i < 0 {
			b.WriteString(v)
			return b.String(), nil
		}
		b.WriteString(v[:i])
		v = v[i:]
		switch {
		case strings.HasPrefix(v, "%%"):
			b.WriteByte('%')
			v = v[2:]
		case strings.HasPrefix(v, "%("):
			end := strings.Index(v, ")s")
			if end < 0 {
				return "", fmt.Errorf("bad interpolation variable reference %q", v)
			}
			name := strings.ToLower(v[2:end])
			o, ok := f.lookup(section, name)
			if !ok {
				return "", fmt.Errorf("%%(%s)s names no option of [%s] and no environment variable", v[2:end], section)
			}
			sub, err := f.interpolate(section, o.value, depth+1)
			if err != nil {
				return "", err
			}
			if b.Len()+len(sub) > maxINISize {
				return "", fmt.Errorf("interpolated value longer than %d bytes", maxINISize)
			}
			b.WriteString(sub)
			v = v[end+2:]
		default:
			return "", fmt.Errorf("'%%' must be followed by '%%' or '(', found %q", v)
		}
	}
}
