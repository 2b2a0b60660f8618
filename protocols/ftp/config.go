package ftp

import (
	"fmt"
	"io/fs"
	"math"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols/vfs"
)

// Limits of the profile knobs.
const (
	maxLoginAttempts   = 100
	maxTimeout         = time.Hour
	defaultIdle        = 40 * time.Second
	defaultTransfer    = 5 * time.Minute
	maxUsers           = 256
	maxOverrides       = 1024
	defaultMaxAttempts = 3
)

// user is one account of <ftp_users>.
type user struct {
	name, password string
	uid            int
}

// override is a <file> or <dir> entry of <ftp_vfs>: metadata for one path.
type override struct {
	path      string // jail-relative
	dir       bool
	recursive bool
	uid       int // -1: unchanged
	perm      int // -1: unchanged
	atime     time.Time
	mtime     time.Time
}

// config is a parsed ftp.xml.
type config struct {
	banner      string // greeting text after "220 "
	motd        string // shown in the 230 reply after login
	syst        string // SYST reply text after "215 "
	maxAttempts int
	idle        time.Duration
	transfer    time.Duration
	stouPrefix  string
	stouSuffix  string
	enabled     map[string]bool // nil: every command; else Conpot's enabled_commands

	users     []user
	gid       int
	groupName string
	anon      bool
	anonUID   int
	anonName  string

	root         string // VFS mount point
	seed         map[string][]byte
	owner        int
	perms        int
	uploadPerms  int
	mkdirPerms   int
	overrides    []override
	generated    []vfs.Generated
	names        map[int]string // uid → user name for listings
	captureDir   string
	captureQuota vfs.Quotas
}

func defaultConfig() *config {
	return &config{
		banner: "FTP server ready.", syst: "UNIX Type: L8", maxAttempts: defaultMaxAttempts,
		idle: defaultIdle, transfer: defaultTransfer, stouPrefix: "", stouSuffix: "",
		gid: 0, groupName: "ftp", anonUID: 0, anonName: "ftp",
		root: "/", owner: 0, perms: 0o755, uploadPerms: 0o644, mkdirPerms: 0o755,
		names: map[int]string{0: "root"}, captureQuota: vfs.DefaultQuotas,
	}
}

func parseConfig(sec *profiles.Section) (*config, error) {
	root := sec.Root
	if root.Name != "ftp" {
		return nil, root.Errorf("root element must be <ftp>")
	}
	sec.CheckChildren(root, "device_info", "ftp_users", "ftp_vfs")
	c := defaultConfig()
	if n := root.Child("device_info"); n != nil {
		if err := c.parseDeviceInfo(sec, n); err != nil {
			return nil, err
		}
	}
	if n := root.Child("ftp_users"); n != nil {
		if err := c.parseUsers(sec, n); err != nil {
			return nil, err
		}
	}
	if n := root.Child("ftp_vfs"); n != nil {
		if err := c.parseVFS(sec, n); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (c *config) parseDeviceInfo(sec *profiles.Section, n *profiles.Node) error {
	sec.CheckChildren(n, "enabled_commands", "device_type", "banner", "max_login_attempts", "sever_timeout",
		"motd", "stou_suffix", "stou_prefix", "syst", "transfer_timeout")
	for _, e := range n.Children {
		v := e.TextTrim()
		switch e.Name {
		case "enabled_commands":
			c.enabled = map[string]bool{}
			for _, cmd := range strings.Split(v, ",") {
				cmd = strings.ToUpper(strings.Trim(strings.TrimSpace(cmd), `"'`))
				if cmd == "" {
					continue
				}
				// Conpot lists SITE's sub-commands ("SITE HELP", "SITE CHMOD") beside SITE;
				// here they come with SITE itself.
				if sub, ok := strings.CutPrefix(cmd, "SITE "); ok && (sub == "HELP" || sub == "CHMOD") {
					cmd = "SITE"
				}
				if _, ok := commands[cmd]; !ok {
					// Conpot never matches a name it does not know; it goes on.
					sec.Warnf(e, "unknown FTP command %q, ignored", cmd)
					continue
				}
				c.enabled[cmd] = true
			}
		case "banner":
			if err := checkText(e, v); err != nil {
				return err
			}
			c.banner = v
		case "motd":
			if err := checkText(e, v); err != nil {
				return err
			}
			c.motd = v
		case "syst":
			if err := checkText(e, v); err != nil {
				return err
			}
			c.syst = v
		case "max_login_attempts":
			i, err := strconv.Atoi(v)
			if err != nil || i < 1 || i > maxLoginAttempts {
				return e.Errorf("%q is not a number between 1 and %d", v, maxLoginAttempts)
			}
			c.maxAttempts = i
		case "sever_timeout", "transfer_timeout":
			d, err := seconds(v)
			if err != nil {
				return e.Errorf("%v", err)
			}
			if e.Name == "sever_timeout" {
				c.idle = d
			} else {
				c.transfer = d
			}
		case "stou_prefix", "stou_suffix":
			if strings.ContainsAny(v, "/\\") || len(v) > 64 {
				return e.Errorf("%q: at most 64 bytes and no slashes", v)
			}
			if e.Name == "stou_prefix" {
				c.stouPrefix = v
			} else {
				c.stouSuffix = v
			}
		}
	}
	return nil
}

// checkText refuses reply texts that would break the reply framing.
func checkText(n *profiles.Node, v string) error {
	if strings.ContainsAny(v, "\r\n") || len(v) > 256 {
		return n.Errorf("text must be one line of at most 256 bytes")
	}
	return nil
}

func seconds(v string) (time.Duration, error) {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f <= 0 || math.IsNaN(f) || time.Duration(f*float64(time.Second)) > maxTimeout {
		return 0, fmt.Errorf("%q is not a number of seconds between 0 and %d", v, int(maxTimeout.Seconds()))
	}
	return time.Duration(f * float64(time.Second)), nil
}

func (c *config) parseUsers(sec *profiles.Section, n *profiles.Node) error {
	sec.CheckChildren(n, "users", "anon_login")
	for _, us := range n.ChildrenNamed("users") {
		sec.CheckChildren(us, "user")
		if g, ok := us.Attr("group"); ok {
			id, name, _ := strings.Cut(g, ":")
			gid, err := strconv.Atoi(strings.TrimSpace(id))
			if err != nil || gid < 0 {
				return us.Errorf("group %q is not GID:NAME", g)
			}
			c.gid = gid
			if name = strings.TrimSpace(name); name != "" {
				c.groupName = name
			}
		}
		for _, u := range us.ChildrenNamed("user") {
			sec.CheckChildren(u, "uname", "password")
			uid, err := attrInt(u, "uid")
			if err != nil {
				return err
			}
			name, _ := u.ChildText("uname")
			pw, _ := u.ChildText("password")
			if name == "" || strings.ContainsAny(name, " \r\n") {
				return u.Errorf("a user needs a <uname> without spaces")
			}
			if len(c.users) >= maxUsers {
				return u.Errorf("more than %d users", maxUsers)
			}
			c.users = append(c.users, user{name: name, password: pw, uid: uid})
			c.names[uid] = name
		}
	}
	if a := n.Child("anon_login"); a != nil {
		sec.CheckChildren(a, "uname")
		en, ok := a.Attr("enabled")
		if ok {
			b, err := profiles.ParseBool(en)
			if err != nil {
				return a.Errorf("enabled: %v", err)
			}
			c.anon = b
		}
		if _, ok := a.Attr("uid"); ok {
			uid, err := attrInt(a, "uid")
			if err != nil {
				return err
			}
			c.anonUID = uid
		}
		if name, ok := a.ChildText("uname"); ok && name != "" {
			c.anonName = name
		}
		if c.anon {
			if _, taken := c.names[c.anonUID]; !taken {
				c.names[c.anonUID] = c.anonName
			}
		}
	}
	return nil
}

func attrInt(n *profiles.Node, name string) (int, error) {
	v, ok := n.Attr(name)
	if !ok {
		return 0, n.Errorf("attribute %s is missing", name)
	}
	i, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || i < 0 || i > 1<<31-1 {
		return 0, n.Errorf("attribute %s %q is not a non-negative number", name, v)
	}
	return i, nil
}

// parsePerm reads Python-style octal permissions: "0o755", "0755" or "755".
func parsePerm(n *profiles.Node, v string) (int, error) {
	s := strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(v), "0o"), "0O")
	p, err := strconv.ParseUint(s, 8, 32)
	if err != nil || p > 0o777 {
		return 0, n.Errorf("%q is not an octal permission (0o755)", v)
	}
	return int(p), nil
}

func parseEpoch(n *profiles.Node, v string) (time.Time, error) {
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || f < 0 || f > 1<<34 {
		return time.Time{}, n.Errorf("%q is not a Unix time", v)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
}

func (c *config) parseVFS(sec *profiles.Section, n *profiles.Node) error {
	sec.CheckChildren(n, "path", "add_src", "data_fs_subdir", "default_owner", "default_perms",
		"upload_file_perms", "mkdir_directory_perms", "file", "dir", "generated")
	var addSrc string
	for _, e := range n.Children {
		v := e.TextTrim()
		var err error
		switch e.Name {
		case "path":
			if v == "" {
				continue
			}
			if c.root, err = vfs.Join("/", v); err != nil {
				return e.Errorf("path %q: %v", v, err)
			}
		case "add_src":
			addSrc = v
		case "default_owner":
			if c.owner, err = strconv.Atoi(v); err != nil || c.owner < 0 {
				return e.Errorf("%q is not a uid", v)
			}
		case "default_perms":
			c.perms, err = parsePerm(e, v)
		case "upload_file_perms":
			c.uploadPerms, err = parsePerm(e, v)
		case "mkdir_directory_perms":
			c.mkdirPerms, err = parsePerm(e, v)
		case "file", "dir":
			err = c.parseOverride(sec, e)
		case "generated":
			var g vfs.Generated
			if g, err = vfs.ParseGenerated(e); err == nil {
				if len(c.generated) >= vfs.MaxGeneratedFiles {
					return e.Errorf("more than %d generated files", vfs.MaxGeneratedFiles)
				}
				c.generated = append(c.generated, g)
			}
		}
		if err != nil {
			return err
		}
	}
	if addSrc != "" {
		// add_src names a directory of the template's ftp/ folder; never the machine's files.
		rel := path.Clean(strings.TrimPrefix(addSrc, "./"))
		if path.IsAbs(rel) || !fs.ValidPath(rel) {
			return n.Child("add_src").Errorf("%q must be a directory inside the template's ftp folder", addSrc)
		}
		files, err := vfs.AddTree(sec.FS, rel, "/")
		if err != nil {
			return n.Child("add_src").Errorf("%v", err)
		}
		c.seed = files
	}
	return nil
}

func (c *config) parseOverride(sec *profiles.Section, e *profiles.Node) error {
	if len(c.overrides) >= maxOverrides {
		return e.Errorf("more than %d <file>/<dir> entries", maxOverrides)
	}
	sec.CheckChildren(e, "owner_uid", "perms", "last_accessed", "last_modified")
	p, _ := e.Attr("path")
	rel, err := vfs.Join("/", p)
	if err != nil || strings.TrimSpace(p) == "" {
		return e.Errorf("path %q is not a path inside the FTP root", p)
	}
	o := override{path: rel, dir: e.Name == "dir", uid: -1, perm: -1}
	if r, ok := e.Attr("recursive"); ok {
		if o.recursive, err = profiles.ParseBool(r); err != nil {
			return e.Errorf("recursive: %v", err)
		}
	}
	for _, f := range e.Children {
		v := f.TextTrim()
		switch f.Name {
		case "owner_uid":
			if o.uid, err = strconv.Atoi(v); err != nil || o.uid < 0 {
				return f.Errorf("%q is not a uid", v)
			}
		case "perms":
			if o.perm, err = parsePerm(f, v); err != nil {
				return err
			}
		case "last_accessed":
			if o.atime, err = parseEpoch(f, v); err != nil {
				return err
			}
		case "last_modified":
			if o.mtime, err = parseEpoch(f, v); err != nil {
				return err
			}
		}
	}
	c.overrides = append(c.overrides, o)
	return nil
}

// userName returns the listing name of uid.
func (c *config) userName(uid int) string {
	if n, ok := c.names[uid]; ok {
		return n
	}
	return strconv.Itoa(uid)
}

// groupOf returns the listing name of gid.
func (c *config) groupOf(gid int) string {
	if gid == c.gid {
		return c.groupName
	}
	if gid == 0 {
		return "root"
	}
	return strconv.Itoa(gid)
}
