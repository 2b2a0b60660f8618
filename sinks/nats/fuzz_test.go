package nats

import (
	"bufio"
	"bytes"
	"testing"
)

// FuzzSpoolRecord feeds arbitrary bytes to the spool's record reader (what a damaged or
// tampered segment file holds): it must return records or an error, never panic, and a
// record it returns must encode back to the bytes it came from.
func FuzzSpoolRecord(f *testing.F) {
	f.Add(appendRecord(nil, rec(1)))
	f.Add(append(appendRecord(nil, rec(2)), appendRecord(nil, rec(3))...))
	f.Add([]byte{0, 0, 0, 4, 0, 0, 0, 0, 1, 'a', 1, 'b'})
	f.Fuzz(func(t *testing.T, b []byte) {
		br := bufio.NewReader(bytes.NewReader(b))
		var off int64
		for range 1000 {
			body, n, err := readRecord(br)
			if err != nil {
				return
			}
			r, err := unmarshalRecord(body)
			if err != nil {
				continue
			}
			again := appendRecord(nil, r)
			if !bytes.Equal(again, b[off:off+n]) {
				t.Fatalf("record at %d encodes to %x, read from %x", off, again, b[off:off+n])
			}
			off += n
		}
	})
}
