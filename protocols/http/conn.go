package http

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"time"
)

// guard is the connection's reader. It enforces a deadline for a whole phase (reading a
// request head, reading a body) on top of the per-Read idle timeout the sensor's connection
// applies, so a client trickling one byte at a time (slowloris) is cut off after the phase
// timeout however active it looks.
type guard struct {
	conn net.Conn

	mu      sync.Mutex
	timer   *time.Timer // made on the first arm and reset by later ones: no timer per request
	armed   time.Time   // when the current phase began (monotonic); zero between phases
	phase   time.Duration
	expired bool
	closed  bool // the context ended: never read again
}

var errPhaseTimeout = errors.New("http: request read timeout")

func (g *guard) Read(p []byte) (int, error) {
	g.mu.Lock()
	dead := g.expired || g.closed
	g.mu.Unlock()
	if dead {
		return 0, errPhaseTimeout
	}
	n, err := g.conn.Read(p)
	if err != nil {
		g.mu.Lock()
		if g.expired || g.closed {
			err = errPhaseTimeout
		}
		g.mu.Unlock()
	}
	return n, err
}

// arm starts a phase that must end within d.
func (g *guard) arm(d time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.expired = false
	g.armed, g.phase = time.Now(), d
	if g.timer == nil {
		g.timer = time.AfterFunc(d, g.fire)
	} else {
		g.timer.Reset(d)
	}
}

// disarm ends the phase.
func (g *guard) disarm() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.armed = time.Time{}
	if g.timer != nil {
		g.timer.Stop()
	}
}

// fire ends the phase when its time has come. A call of the timer's for an earlier phase
// (it may run just as the phase ends and the next is armed) finds the phase over or not yet
// due, and does nothing: the timer, reset for the new phase, calls again when it is due.
func (g *guard) fire() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.armed.IsZero() || time.Since(g.armed) < g.phase {
		return
	}
	g.expired = true
	// Unblock a pending Read. The sensor's connection resets the deadline on its next Read,
	// which the expired flag prevents.
	_ = g.conn.SetReadDeadline(time.Unix(1, 0))
}

// stop is called when the context ends.
func (g *guard) stop() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	_ = g.conn.SetReadDeadline(time.Unix(1, 0))
}

func (g *guard) release() {
	g.disarm()
}

// errHeadTooLarge and friends are the reasons a head cannot be read.
var (
	errLineTooLong = &httpError{status: 414, msg: "request line too long"}
	errHeadTooBig  = &httpError{status: 400, msg: "request head too large"}
	errNotHTTP     = &httpError{status: 400, msg: "not an HTTP request"}
)

// readHead reads one request head (through the blank line) into buf. It returns io.EOF when
// the client closed cleanly between requests; on errors head holds what arrived.
func readHead(r *bufio.Reader, buf []byte) ([]byte, error) {
	head := buf[:0]
	// Skip blank lines before the request line; answer binary garbage (a TLS hello) at once.
	for {
		c, err := r.ReadByte()
		if err != nil {
			return head, err
		}
		if c == '\r' || c == '\n' {
			if len(head) > 2*maxHeaders {
				return head, errHeadTooBig
			}
			head = append(head, c)
			continue
		}
		if !tokenChar[c] {
			_ = r.UnreadByte()
			b, _ := r.Peek(r.Buffered())
			return append(head, b...), errNotHTTP
		}
		_ = r.UnreadByte()
		break
	}
	first := true
	for {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			if first {
				return head, errLineTooLong
			}
			return head, errHeadTooBig
		}
		if err != nil {
			if err == io.EOF && len(line) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return head, err
		}
		if len(head)+len(line) > maxHead {
			return head, errHeadTooBig
		}
		head = append(head, line...)
		if !first && (len(line) == 1 || (len(line) == 2 && line[0] == '\r')) {
			return head, nil
		}
		first = false
	}
}

var errBodyTooLarge = &httpError{status: 413, msg: "request body too large"}

// readBody reads the request body (Content-Length or chunked, at most maxBody bytes) into buf.
func readBody(r *bufio.Reader, req *request, buf []byte) ([]byte, error) {
	body := buf[:0]
	switch {
	case req.chunked:
		return readChunked(r, body)
	case req.contentLength > maxBody:
		return nil, errBodyTooLarge
	case req.contentLength > 0:
		n := int(req.contentLength)
		if cap(body) < n {
			body = make([]byte, n)
		}
		body = body[:n]
		if _, err := io.ReadFull(r, body); err != nil {
			return nil, err
		}
		return body, nil
	}
	return body, nil
}

const maxChunkCount = 4096

func readChunked(r *bufio.Reader, body []byte) ([]byte, error) {
	for range maxChunkCount {
		line, err := r.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				return nil, badRequest("chunk size line too long")
			}
			return nil, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if i := bytes.IndexByte(line, ';'); i >= 0 { // chunk extensions
			line = line[:i]
		}
		size, err := strconv.ParseUint(string(bytes.TrimSpace(line)), 16, 32)
		if err != nil {
			return nil, badRequest("malformed chunk size")
		}
		if size == 0 {
			// Trailer section, up to the blank line.
			for range maxHeaders {
				t, err := r.ReadSlice('\n')
				if err != nil {
					return nil, badRequest("malformed trailer")
				}
				if len(bytes.TrimRight(t, "\r\n")) == 0 {
					return body, nil
				}
			}
			return nil, badRequest("too many trailer fields")
		}
		if len(body)+int(size) > maxBody {
			return nil, errBodyTooLarge
		}
		start := len(body)
		body = append(body, make([]byte, size)...)
		if _, err := io.ReadFull(r, body[start:]); err != nil {
			return nil, err
		}
		crlf, err := r.ReadSlice('\n')
		if err != nil || len(bytes.TrimRight(crlf, "\r\n")) != 0 {
			return nil, badRequest("chunk not terminated")
		}
	}
	return nil, badRequest("too many chunks")
}

// isTimeout reports whether err is a read timeout (phase or idle).
func isTimeout(err error) bool {
	if errors.Is(err, errPhaseTimeout) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
