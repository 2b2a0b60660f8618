package tftp

import (
	"io/fs"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols/vfs"
)

// Defaults and limits of the profile knobs.
const (
	defaultTimeout     = 5 * time.Second
	defaultRetries     = 5
	maxRetries         = 20
	defaultPerHost     = 8
	defaultPerSource   = 4
	maxTransfersKnob   = 1024
	defaultWritePerms  = 0o644
	defaultDirPerms    = 0o755
	defaultReadOnly    = false
	maxTimeoutDuration = 60 * time.Second
)

// rateLimit is a request limit in requests per minute (0: none).
type rateLimit struct{ perSource, global int }

// Default request limits per minute of the RRQ ("read") and WRQ ("write") classes.
var defaultLimits = map[string]rateLimit{"read": {perSource: 120, global: 3000}, "write": {perSource: 30, global: 300}}

// config is a parsed tftp.xml.
type config struct {
	root         string // VFS mount point
	seed         map[string][]byte
	timeout      time.Duration
	retries      int
	perHost      int
	perSource    int
	readOnly     bool
	generated    []vfs.Generated
	limits       map[string]rateLimit // "read" (RRQ), "write" (WRQ)
	captureDir   string
	captureQuota vfs.Quotas
}

func parseConfig(sec *profiles.Section) (*config, error) {
	root := sec.Root
	if root.Name != "tftp" {
		return nil, root.Errorf("root element must be <tftp>")
	}
	sec.CheckChildren(root, "tftp_root_path", "add_src", "data_fs_subdir", "timeout", "retries",
		"max_transfers_per_host", "max_transfers_per_source", "read_only", "generated", "rate_limit")
	c := &config{root: "/", timeout: defaultTimeout, retries: defaultRetries, perHost: defaultPerHost,
		perSource: defaultPerSource, readOnly: defaultReadOnly, captureQuota: vfs.DefaultQuotas,
		limits: map[string]rateLimit{"read": defaultLimits["read"], "write": defaultLimits["write"]}}
	var addSrc *profiles.Node
	for _, e := range root.Children {
		v := e.TextTrim()
		switch e.Name {
		case "tftp_root_path":
			if v == "" {
				continue
			}
			p, err := vfs.Join("/", v)
			if err != nil {
				return nil, e.Errorf("path %q: %v", v, err)
			}
			c.root = p
		case "add_src":
			if v != "" {
				addSrc = e
			}
		case "timeout":
			f, err := strconv.ParseFloat(v, 64)
			d := time.Duration(f * float64(time.Second))
			if err != nil || d <= 0 || d > maxTimeoutDuration {
				return nil, e.Errorf("%q is not a number of seconds between 0 and %d", v, int(maxTimeoutDuration.Seconds()))
			}
			c.timeout = d
		case "retries", "max_transfers_per_host", "max_transfers_per_source":
			n, err := strconv.Atoi(v)
			limit := maxTransfersKnob
			if e.Name == "retries" {
				limit = maxRetries
			}
			if err != nil || n < 1 || n > limit {
				return nil, e.Errorf("%q is not a number between 1 and %d", v, limit)
			}
			switch e.Name {
			case "retries":
				c.retries = n
			case "max_transfers_per_host":
				c.perHost = n
			default:
				c.perSource = n
			}
		case "read_only":
			b, err := profiles.ParseBool(v)
			if err != nil {
				return nil, e.Errorf("%v", err)
			}
			c.readOnly = b
		case "rate_limit":
			class, _ := e.Attr("class")
			if _, ok := defaultLimits[class]; !ok {
				return nil, e.Errorf("class %q is neither read nor write", class)
			}
			var rl rateLimit
			for _, a := range []struct {
				name string
				to   *int
			}{{"per_source", &rl.perSource}, {"global", &rl.global}} {
				v, ok := e.Attr(a.name)
				if !ok {
					continue
				}
				n, err := strconv.Atoi(strings.TrimSpace(v))
				if err != nil || n < 0 || n > 1_000_000 {
					return nil, e.Errorf("%s %q is not a number of requests per minute (0: none)", a.name, v)
				}
				*a.to = n
			}
			c.limits[class] = rl
		case "generated":
			g, err := vfs.ParseGenerated(e)
			if err != nil {
				return nil, err
			}
			if len(c.generated) >= vfs.MaxGeneratedFiles {
				return nil, e.Errorf("more than %d generated files", vfs.MaxGeneratedFiles)
			}
			c.generated = append(c.generated, g)
		}
	}
	if addSrc != nil {
		// add_src names a directory of the template's tftp/ folder; never the machine's files.
		src := addSrc.TextTrim()
		rel := path.Clean(strings.TrimPrefix(src, "./"))
		if path.IsAbs(rel) || !fs.ValidPath(rel) {
			return nil, addSrc.Errorf("%q must be a directory inside the template's tftp folder", src)
		}
		files, err := vfs.AddTree(sec.FS, rel, "/")
		if err != nil {
			return nil, addSrc.Errorf("%v", err)
		}
		c.seed = files
	}
	return c, nil
}
