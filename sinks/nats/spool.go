package nats

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// A spool keeps records on disk in segment files <n>.seg (n a 20-digit decimal number, in
// order), each a run of records: a 4-byte big-endian length of the body, the body's CRC-32C,
// then the body (record.marshal). A cursor file keeps, per segment, where its first record
// not yet acknowledged starts (a segment's acknowledged records stay in it until all of them
// are). The spool is not safe for concurrent use: the sink locks it.
type spool struct {
	dir         string
	max, segMax int64
	segs        []*segment
	w           *os.File // the last segment, appended to
	bytes       int64    // sum of segment sizes
	count       int64    // records not yet acknowledged
	readN       uint64   // the read cursor: segment and offset
	rOff        int64
	r           *os.File
	rb          *bufio.Reader
	rAt         int64 // offset of rb in r
	dirty       bool  // appended since the last sync
}

type segment struct {
	n     uint64
	size  int64
	start int64 // the records before are acknowledged
}

const (
	segExt      = ".seg"
	cursorFile  = "cursor"
	headerSize  = 8
	maxRecord   = 16 << 20 // a body larger than this is corruption
	firstSegNum = 1 << 40  // room below for segments Close prepends
)

var (
	errSpoolFull = errors.New("spool full")
	crcTable     = crc32.MakeTable(crc32.Castagnoli)
)

// openSpool opens (creating) the spool in dir. lost counts the records of a damaged tail
// that were cut off.
func openSpool(dir string, max, segMax int64) (sp *spool, lost int64, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, 0, fmt.Errorf("spool: %w", err)
	}
	sp = &spool{dir: dir, max: max, segMax: segMax}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, 0, fmt.Errorf("spool: %w", err)
	}
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), segExt)
		if !ok || !e.Type().IsRegular() {
			continue
		}
		n, err := strconv.ParseUint(name, 10, 64)
		if err != nil {
			continue
		}
		sp.segs = append(sp.segs, &segment{n: n})
	}
	slices.SortFunc(sp.segs, func(a, b *segment) int { return cmpU64(a.n, b.n) })
	starts := sp.loadCursor()
	for i := 0; i < len(sp.segs); i++ {
		seg := sp.segs[i]
		skip := starts[seg.n]
		size, count, before, cut, err := scanSegment(sp.path(seg.n), skip)
		if err != nil {
			return nil, lost, err
		}
		lost += cut
		seg.size = size
		if size == 0 || skip >= size {
			// empty, or acknowledged in full before the segment could be removed
			os.Remove(sp.path(seg.n))
			sp.segs = slices.Delete(sp.segs, i, i+1)
			i--
			continue
		}
		seg.start = skip
		sp.count += count - before
		sp.bytes += size
	}
	if len(sp.segs) > 0 {
		last := sp.segs[len(sp.segs)-1]
		if sp.w, err = os.OpenFile(sp.path(last.n), os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
			return nil, lost, fmt.Errorf("spool: %w", err)
		}
	}
	sp.rewind()
	return sp, lost, nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (sp *spool) path(n uint64) string {
	return filepath.Join(sp.dir, fmt.Sprintf("%020d%s", n, segExt))
}

// loadCursor reads the segments' starts: lines of "<segment> <offset>".
func (sp *spool) loadCursor() map[uint64]int64 {
	starts := map[uint64]int64{}
	b, err := os.ReadFile(filepath.Join(sp.dir, cursorFile))
	if err != nil {
		return starts
	}
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		n, err1 := strconv.ParseUint(f[0], 10, 64)
		off, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 == nil && err2 == nil && off > 0 {
			starts[n] = off
		}
	}
	return starts
}

// saveCursor writes the segments' starts (atomically: a temporary file renamed).
func (sp *spool) saveCursor() error {
	p := filepath.Join(sp.dir, cursorFile)
	tmp := p + ".tmp"
	var data []byte
	for _, seg := range sp.segs {
		if seg.start > 0 {
			data = fmt.Appendf(data, "%d %d\n", seg.n, seg.start)
		}
	}
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("spool cursor: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("spool cursor: %w", err)
	}
	return nil
}

// scanSegment checks the records of a segment: size is where the last whole record ends
// (a damaged tail is truncated away and its records counted in cut, at least one), count
// the records, before the records that end at or before skip.
func scanSegment(path string, skip int64) (size, count, before, cut int64, err error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 0, 0, 0, 0, fmt.Errorf("spool: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, 0, 0, 0, fmt.Errorf("spool: %w", err)
	}
	br := bufio.NewReaderSize(f, 64<<10)
	var off int64
	for {
		body, n, rerr := readRecord(br)
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			cut = 1
			break
		}
		_ = body
		off += n
		count++
		if off <= skip {
			before++
		}
	}
	if off < st.Size() {
		if cut == 0 {
			cut = 1
		}
		if err := f.Truncate(off); err != nil {
			return 0, 0, 0, 0, fmt.Errorf("spool: cutting a damaged tail: %w", err)
		}
	}
	return off, count, before, cut, nil
}

// readRecord reads one record's body; n is the bytes consumed. io.EOF only at a clean end.
func readRecord(br *bufio.Reader) (body []byte, n int64, err error) {
	var h [headerSize]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		if err == io.EOF {
			return nil, 0, io.EOF
		}
		return nil, 0, fmt.Errorf("spool: short header: %w", err)
	}
	l := binary.BigEndian.Uint32(h[:4])
	if l == 0 || l > maxRecord {
		return nil, 0, fmt.Errorf("spool: record length %d", l)
	}
	body = make([]byte, l)
	if _, err := io.ReadFull(br, body); err != nil {
		return nil, 0, fmt.Errorf("spool: short record: %w", err)
	}
	if crc32.Checksum(body, crcTable) != binary.BigEndian.Uint32(h[4:]) {
		return nil, 0, errors.New("spool: record checksum mismatch")
	}
	return body, int64(headerSize + l), nil
}

func appendRecord(b []byte, r *record) []byte {
	start := len(b)
	b = append(b, make([]byte, headerSize)...)
	b = r.marshal(b)
	body := b[start+headerSize:]
	binary.BigEndian.PutUint32(b[start:], uint32(len(body)))
	binary.BigEndian.PutUint32(b[start+4:], crc32.Checksum(body, crcTable))
	return b
}

// append adds r at the end; errSpoolFull when it would pass max.
func (sp *spool) append(r *record, scratch []byte) ([]byte, error) {
	scratch = appendRecord(scratch[:0], r)
	n := int64(len(scratch))
	if sp.bytes+n > sp.max {
		return scratch, errSpoolFull
	}
	if sp.w == nil || sp.segs[len(sp.segs)-1].size+n > sp.segMax && sp.segs[len(sp.segs)-1].size > 0 {
		next := uint64(firstSegNum)
		if len(sp.segs) > 0 {
			next = sp.segs[len(sp.segs)-1].n + 1
		}
		if err := sp.roll(next); err != nil {
			return scratch, err
		}
	}
	if _, err := sp.w.Write(scratch); err != nil {
		// a partial write would break the segment: cut it back
		last := sp.segs[len(sp.segs)-1]
		sp.w.Truncate(last.size)
		return scratch, fmt.Errorf("spool: %w", err)
	}
	sp.segs[len(sp.segs)-1].size += n
	sp.bytes += n
	sp.count++
	sp.dirty = true
	return scratch, nil
}

func (sp *spool) roll(next uint64) error {
	if sp.w != nil {
		sp.w.Sync()
		sp.w.Close()
		sp.w = nil
	}
	f, err := os.OpenFile(sp.path(next), os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	sp.w = f
	sp.segs = append(sp.segs, &segment{n: next})
	if len(sp.segs) == 1 {
		sp.rewind()
	}
	return nil
}

// prepend writes recs, which are older than everything spooled, into a new first segment
// (Close: what was in memory). It does not count against max: recs are bounded by the
// sink's buffer and window.
func (sp *spool) prepend(recs []*record) error {
	if len(recs) == 0 {
		return nil
	}
	n := uint64(firstSegNum)
	if len(sp.segs) > 0 {
		n = sp.segs[0].n - 1
	}
	var b []byte
	for _, r := range recs {
		b = appendRecord(b, r)
	}
	f, err := os.OpenFile(sp.path(n), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(sp.path(n))
		return fmt.Errorf("spool: %w", err)
	}
	sp.segs = slices.Insert(sp.segs, 0, &segment{n: n, size: int64(len(b))})
	if sp.w == nil {
		if sp.w, err = os.OpenFile(sp.path(n), os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
			return fmt.Errorf("spool: %w", err)
		}
	}
	sp.bytes += int64(len(b))
	sp.count += int64(len(recs))
	sp.rewind()
	// a cursor still naming the old first segment would, after a crash, make the next open
	// take the new one for delivered
	return sp.saveCursor()
}

// rewind moves the read cursor back to the first record not acknowledged (after a failed
// publish).
func (sp *spool) rewind() {
	sp.readN, sp.rOff = 0, 0
	if len(sp.segs) > 0 {
		sp.readN, sp.rOff = sp.segs[0].n, sp.segs[0].start
	}
	if sp.r != nil {
		sp.r.Close()
		sp.r, sp.rb = nil, nil
	}
}

func (sp *spool) seg(n uint64) (int, *segment) {
	for i, s := range sp.segs {
		if s.n == n {
			return i, s
		}
	}
	return -1, nil
}

// next reads the record at the read cursor; nil when every record has been read.
func (sp *spool) next() (*record, error) {
	for {
		i, seg := sp.seg(sp.readN)
		if seg == nil {
			return nil, nil
		}
		if sp.rOff >= seg.size {
			if i+1 >= len(sp.segs) {
				return nil, nil
			}
			sp.readN, sp.rOff = sp.segs[i+1].n, 0
			if sp.r != nil {
				sp.r.Close()
				sp.r, sp.rb = nil, nil
			}
			continue
		}
		if sp.r == nil {
			f, err := os.Open(sp.path(seg.n))
			if err != nil {
				return nil, fmt.Errorf("spool: %w", err)
			}
			if _, err := f.Seek(sp.rOff, io.SeekStart); err != nil {
				f.Close()
				return nil, fmt.Errorf("spool: %w", err)
			}
			sp.r, sp.rb, sp.rAt = f, bufio.NewReaderSize(f, 64<<10), sp.rOff
		}
		body, n, err := readRecord(sp.rb)
		if err != nil {
			// the segment ends in a record we cannot read: give the reader a fresh look
			// next time (the writer may still be appending to it)
			sp.r.Close()
			sp.r, sp.rb = nil, nil
			return nil, err
		}
		r, err := unmarshalRecord(body)
		if err != nil {
			sp.r.Close()
			sp.r, sp.rb = nil, nil
			return nil, err
		}
		sp.rOff += n
		r.fromDisk, r.seg, r.end = true, seg.n, sp.rOff
		return r, nil
	}
}

// ack marks r, the oldest record read and not yet acknowledged, delivered; a segment whose
// records are all delivered is removed.
func (sp *spool) ack(r *record) {
	if len(sp.segs) == 0 || sp.segs[0].n != r.seg {
		return // not the oldest: cannot happen while acks come in order
	}
	head := sp.segs[0]
	head.start = r.end
	sp.count--
	if head.start < head.size {
		return
	}
	if len(sp.segs) == 1 {
		sp.w.Close()
		sp.w = nil
	}
	if sp.r != nil && sp.readN == head.n {
		sp.r.Close()
		sp.r, sp.rb = nil, nil
	}
	os.Remove(sp.path(head.n))
	sp.bytes -= head.size
	sp.segs = sp.segs[1:]
	if len(sp.segs) == 0 {
		sp.segs, sp.readN, sp.rOff, sp.count = nil, 0, 0, 0
		return
	}
	if sp.readN == head.n {
		sp.readN, sp.rOff = sp.segs[0].n, sp.segs[0].start
	}
}

// sync makes appended records durable.
func (sp *spool) sync() error {
	if !sp.dirty || sp.w == nil {
		return nil
	}
	sp.dirty = false
	if err := sp.w.Sync(); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	return nil
}

func (sp *spool) close() error {
	err := sp.sync()
	if cerr := sp.saveCursor(); err == nil {
		err = cerr
	}
	if sp.w != nil {
		sp.w.Close()
		sp.w = nil
	}
	if sp.r != nil {
		sp.r.Close()
		sp.r, sp.rb = nil, nil
	}
	return err
}

// record is one event on its way: its message id, subject and JSON.
type record struct {
	id, subject string
	data        []byte
	// where a record read from the spool ends there
	fromDisk bool
	seg      uint64
	end      int64
}

func (r *record) marshal(b []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(r.id)))
	b = append(b, r.id...)
	b = binary.AppendUvarint(b, uint64(len(r.subject)))
	b = append(b, r.subject...)
	return append(b, r.data...)
}

func unmarshalRecord(b []byte) (*record, error) {
	var r record
	for _, dst := range []*string{&r.id, &r.subject} {
		l, n := binary.Uvarint(b)
		if n <= 0 || l > uint64(len(b)-n) || l == 0 || l > 1024 {
			return nil, errors.New("spool: malformed record")
		}
		*dst = string(b[n : n+int(l)])
		b = b[n+int(l):]
	}
	r.data = b
	return &r, nil
}
