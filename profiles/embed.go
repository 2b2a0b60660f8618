package profiles

import (
	"embed"
	"io/fs"
	"sort"
)

// templates holds the embedded profiles, one Conpot template directory each.
//
//go:embed all:templates
var templates embed.FS

// DefaultName is the profile used when none is named.
const DefaultName = "default"

func embeddedFS(name string) (fs.FS, bool) {
	if _, err := fs.Stat(templates, "templates/"+name+"/template.xml"); err != nil {
		return nil, false
	}
	sub, err := fs.Sub(templates, "templates/"+name)
	if err != nil {
		return nil, false
	}
	return sub, true
}

// Embedded lists the names of the embedded profiles.
func Embedded() []string {
	entries, _ := fs.ReadDir(templates, "templates")
	var out []string
	for _, e := range entries {
		if _, ok := embeddedFS(e.Name()); ok && e.IsDir() {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out
}
