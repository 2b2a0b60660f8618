package ftp

import (
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/icsnare/icsnare/protocols/vfs"
)

// modeString renders "drwxr-xr-x" style permissions.
func modeString(dir bool, p fs.FileMode) string {
	b := []byte("----------")
	if dir {
		b[0] = 'd'
	}
	const rwx = "rwxrwxrwx"
	for i := range 9 {
		if p&(1<<(8-i)) != 0 {
			b[i+1] = rwx[i]
		}
	}
	return string(b)
}

// lsLine renders one entry the way `ls -l` (and so every FTP client's parser) expects:
// mode, links, owner, group, size, "Mon DD HH:MM" (or "Mon DD  YYYY" when older than
// half a year or in the future) and the name.
func (c *conn) lsLine(e vfs.Info, now time.Time) string {
	links := 1
	if e.Dir {
		links = 2
	}
	mt := e.ModTime.UTC()
	date := mt.Format("Jan 02 15:04")
	if now.Sub(mt) > 180*24*time.Hour || mt.After(now.Add(time.Hour)) {
		date = mt.Format("Jan 02  2006")
	}
	return fmt.Sprintf("%s %3d %-8s %-8s %8d %s %s", modeString(e.Dir, e.Perm), links,
		c.cfg.userName(e.UID), c.cfg.groupOf(e.GID), e.Size, date, e.Name)
}

// facts renders RFC 3659 MLSx facts.
func (c *conn) facts(e vfs.Info) string {
	var b strings.Builder
	if e.Dir {
		b.WriteString("type=dir;")
	} else {
		fmt.Fprintf(&b, "type=file;size=%d;", e.Size)
	}
	perm := "r"
	switch {
	case e.Dir:
		perm = "elcmp"
	case e.Perm&0o200 != 0:
		perm = "radfw"
	}
	fmt.Fprintf(&b, "modify=%s;perm=%s;unix.mode=0%o;unix.uid=%d;unix.gid=%d;",
		e.ModTime.UTC().Format("20060102150405"), perm, e.Perm, e.UID, e.GID)
	return b.String()
}
