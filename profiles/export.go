package profiles

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Export writes the profile's template directory to dir (which must not exist yet), so an
// embedded profile can be copied and edited.
func (p *Profile) Export(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return fmt.Errorf("export: %s already exists", dir)
	}
	return fs.WalkDir(p.FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, filepath.FromSlash(path))
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := fs.ReadFile(p.FS, path)
		if err != nil {
			return fmt.Errorf("export %s: %w", path, err)
		}
		return os.WriteFile(dst, b, 0o644)
	})
}
