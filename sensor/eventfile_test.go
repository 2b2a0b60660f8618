package sensor

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// readLines returns the JSON lines of a (possibly compressed) events file; every line must
// be a whole JSON object.
func readLines(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var r io.Reader = f
	switch {
	case strings.HasSuffix(path, ".gz"):
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		r = zr
	case strings.HasSuffix(path, ".zst"):
		zr, err := zstd.NewReader(f)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		defer zr.Close()
		r = zr
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	n := 0
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("%s line %d: %v: %q", path, n+1, err, sc.Text())
		}
		n++
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return n
}

// TestRotateCompressKeep: a size-rotated events file is compressed (gzip, zstd) and only
// the newest Keep rotated files stay; every event written is in the files that stay or
// was in a pruned one, and no line is cut.
func TestRotateCompressKeep(t *testing.T) {
	for _, comp := range []string{"", "gzip", "zstd"} {
		t.Run("compress="+comp, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "events.jsonl")
			s, err := OpenJSONSinkWith(path, JSONOptions{GID: -1, RotateSize: 8 << 10, Keep: 3, Compress: comp})
			if err != nil {
				t.Fatal(err)
			}
			const total = 400
			for i := range total {
				if err := s.Write(sampleEvent()); err != nil {
					t.Fatal(err)
				}
				if i%10 == 9 {
					if err := s.Flush(); err != nil {
						t.Fatal(err)
					}
				}
			}
			s.out.rot.idle.Wait() // compression and pruning done
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			rotated := (&rotator{path: path}).rotated()
			if len(rotated) != 3 {
				t.Fatalf("%d rotated files, want keep = 3: %v", len(rotated), rotated)
			}
			kept := readLines(t, path)
			for _, r := range rotated {
				if comp == "gzip" && !strings.HasSuffix(r, ".gz") || comp == "zstd" && !strings.HasSuffix(r, ".zst") {
					t.Errorf("%s: not compressed with %s", r, comp)
				}
				kept += readLines(t, r)
			}
			// Each rotated file holds whole flushes of 10 events past 8 KiB.
			if kept == 0 || kept > total {
				t.Fatalf("%d events in the kept files of %d", kept, total)
			}
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				if strings.HasSuffix(e.Name(), ".tmp") {
					t.Errorf("left a temporary file: %s", e.Name())
				}
			}
		})
	}
}

// TestRotateKeepsEverythingWithoutKeep: keep = 0 keeps every rotated file, and together
// they hold every event.
func TestRotateKeepsEverythingWithoutKeep(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	s, err := OpenJSONSinkWith(path, JSONOptions{GID: -1, RotateSize: 4 << 10, Compress: "zstd"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		s.Write(sampleEvent())
		if i%5 == 4 {
			s.Flush()
		}
	}
	s.out.rot.idle.Wait()
	s.Close()
	n := readLines(t, path)
	files := (&rotator{path: path}).rotated()
	for _, r := range files {
		n += readLines(t, r)
	}
	if n != 300 || len(files) < 10 {
		t.Fatalf("%d events in %d rotated files and the current one, want 300", n, len(files))
	}
}

// flakyWriter fails with ENOSPC once it has taken room bytes, until room is raised.
type flakyWriter struct {
	bytes.Buffer
	room int
}

func (f *flakyWriter) Write(p []byte) (int, error) {
	free := f.room - f.Len()
	if free >= len(p) {
		return f.Buffer.Write(p)
	}
	if free > 0 {
		f.Buffer.Write(p[:free])
		return free, syscall.ENOSPC
	}
	return 0, syscall.ENOSPC
}

// TestWriteErrorLogsOnceAndResumes: a full disk stops writing with one log line; events
// past the buffer are refused (the bus counts them), the line cut short is completed when
// there is room again, and writing resumes without a restart.
func TestWriteErrorLogsOnceAndResumes(t *testing.T) {
	var logs bytes.Buffer
	w := &flakyWriter{room: 10 << 10}
	s := NewJSONSinkWith("t", w, nil, JSONOptions{GID: -1, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	refused, written := 0, 0
	write := func(n int) {
		for range n {
			if err := s.Write(sampleEvent()); err != nil {
				refused++
			} else {
				written++
			}
		}
		s.Flush()
	}
	write(50) // fits
	write(3000)
	if refused == 0 {
		t.Fatal("a full disk and a full buffer refused nothing")
	}
	if n := strings.Count(logs.String(), "write failed"); n != 1 {
		t.Fatalf("%d log lines about the failure, want 1:\n%s", n, logs.String())
	}
	w.room = 1 << 30                             // space freed
	s.out.retryAt = s.out.retryAt.Add(-retryMax) // the back-off elapsed
	write(50)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "writing again") {
		t.Errorf("no log line on recovery:\n%s", logs.String())
	}
	lines := 0
	for l := range strings.SplitSeq(strings.TrimSuffix(w.String(), "\n"), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %d broken: %v: %q", lines+1, err, l)
		}
		lines++
	}
	if lines != written {
		t.Fatalf("%d lines written, %d events accepted (%d refused)", lines, written, refused)
	}
}

// TestFsyncAlwaysWritesThrough: with fsync = "always" every event is on disk when Write
// returns.
func TestFsyncAlwaysWritesThrough(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	s, err := OpenJSONSinkWith(path, JSONOptions{GID: -1, Fsync: FsyncAlways})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := 1; i <= 3; i++ {
		s.Write(sampleEvent())
		if n := readLines(t, path); n != i {
			t.Fatalf("after %d writes the file holds %d events", i, n)
		}
	}
}
