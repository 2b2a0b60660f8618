package stix

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// dirWriter writes each bundle to a file of its own in a directory and keeps at most
// maxFiles bundle files there, of at most maxBytes together, deleting the oldest.
type dirWriter struct {
	dir      string
	maxFiles int
	maxBytes int64
	seq      uint64
}

const bundlePrefix, bundleSuffix = "bundle-", ".json"

// write stores one bundle: a temporary file renamed into place, so readers never see half
// a bundle; then the oldest bundles go.
func (w *dirWriter) write(b []byte, t time.Time) (string, error) {
	w.seq++
	name := fmt.Sprintf("%s%s-%06d%s", bundlePrefix, t.UTC().Format("20060102T150405.000Z"), w.seq%1_000_000, bundleSuffix)
	f, err := os.CreateTemp(w.dir, ".bundle-*.tmp")
	if err != nil {
		return "", fmt.Errorf("stix bundle: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Chmod(0o640)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(w.dir, name))
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("stix bundle %s: %w", name, err)
	}
	return name, w.rotate()
}

// rotate deletes the oldest bundle files beyond maxFiles or maxBytes; the newest stays.
func (w *dirWriter) rotate() error {
	ents, err := os.ReadDir(w.dir)
	if err != nil {
		return fmt.Errorf("stix bundle rotation: %w", err)
	}
	type file struct {
		name string
		size int64
	}
	var files []file
	var total int64
	for _, e := range ents {
		n := e.Name()
		if !e.Type().IsRegular() || !strings.HasPrefix(n, bundlePrefix) || !strings.HasSuffix(n, bundleSuffix) {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // gone meanwhile
		}
		files = append(files, file{n, info.Size()})
		total += info.Size()
	}
	slices.SortFunc(files, func(a, b file) int { return strings.Compare(a.name, b.name) })
	for len(files) > 1 && (len(files) > w.maxFiles || (w.maxBytes > 0 && total > w.maxBytes)) {
		if err := os.Remove(filepath.Join(w.dir, files[0].name)); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("stix bundle rotation: %w", err)
		}
		total -= files[0].size
		files = files[1:]
	}
	return nil
}
