package modbus

import (
	"io/fs"
	"os"
	"path/filepath"

	"github.com/icsnare/icsnare/profiles"
)

// copyFS writes profile p's template directory to dir, passing modbus/modbus.xml through edit.
func copyFS(p *profiles.Profile, dir string, edit func(string) string) error {
	return fs.WalkDir(p.FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, path)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := fs.ReadFile(p.FS, path)
		if err != nil {
			return err
		}
		if path == "modbus/modbus.xml" {
			b = []byte(edit(string(b)))
		}
		return os.WriteFile(dst, b, 0o644)
	})
}
