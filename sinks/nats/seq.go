package nats

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// seqFile hands out the sensor's event sequence numbers. It reserves them in blocks, writing
// the block's end to its file before the first number of the block is used, so a restart
// (or a crash) continues after every number ever handed out: ids never repeat. A sensor
// without the file starts at the current time in microseconds, so a lost state directory
// does not repeat ids either.
type seqFile struct {
	path     string
	next, hi uint64 // next to hand out; last reserved
	block    uint64
}

const seqBlock = 4096

func openSeq(path string, now time.Time) (*seqFile, error) {
	s := &seqFile{path: path, block: seqBlock}
	b, err := os.ReadFile(path)
	switch {
	case os.IsNotExist(err):
		s.next = uint64(now.UnixMicro())
	case err != nil:
		return nil, fmt.Errorf("sequence: %w", err)
	default:
		hi, perr := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		if perr != nil {
			return nil, fmt.Errorf("sequence file %s: %w", path, perr)
		}
		s.next = hi + 1
	}
	s.hi = s.next - 1
	if err := s.reserve(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *seqFile) reserve() error {
	hi := s.next + s.block - 1
	tmp := s.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("sequence: %w", err)
	}
	_, err = f.WriteString(strconv.FormatUint(hi, 10) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, s.path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("sequence: %w", err)
	}
	s.hi = hi
	return nil
}

// take returns the next sequence number.
func (s *seqFile) take() (uint64, error) {
	if s.next > s.hi {
		if err := s.reserve(); err != nil {
			return 0, err
		}
	}
	n := s.next
	s.next++
	return n, nil
}
