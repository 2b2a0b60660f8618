package vfs

import (
	"fmt"
	"io"
	"io/fs"
	"path"
)

// Seed bounds: what a profile directory may add to every host.
const (
	MaxSeedFiles = 512
	MaxSeedBytes = 8 << 20
)

// AddTree reads the regular files of the tree at src of fsys (a profile's directory,
// never the machine's filesystem) within MaxSeedFiles and MaxSeedBytes, keyed by their
// path below dst, so a service reads them once and seeds every host with shared slices.
func AddTree(fsys fs.FS, src, dst string) (map[string][]byte, error) {
	out := map[string][]byte{}
	var total int64
	err := fs.WalkDir(fsys, src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !d.Type().IsRegular() {
			return nil
		}
		if len(out) >= MaxSeedFiles {
			return fmt.Errorf("more than %d files", MaxSeedFiles)
		}
		rel := p[len(src):]
		target, err := Join(dst, "./"+rel)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		f, err := fsys.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, MaxSeedBytes-total+1))
		if err != nil {
			return err
		}
		total += int64(len(b))
		if total > MaxSeedBytes {
			return fmt.Errorf("more than %d bytes", MaxSeedBytes)
		}
		out[target] = b
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("add_src %s: %w", path.Clean(src), err)
	}
	return out, nil
}
