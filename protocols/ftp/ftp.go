package ftp

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/vfs"
)

// Bounds of one control connection.
const (
	maxLine          = 2048     // bytes of one command line
	maxDiscard       = 64 << 10 // bytes of an over-long line skipped before the connection closes
	maxCommandEvents = 256      // full command events per session; later ones are only counted
	maxEventReply    = 1024     // reply bytes kept in a command event
	acceptTimeout    = 30 * time.Second
	dialTimeout      = 10 * time.Second
	maxListEntries   = 4096
)

// service is FTP configured for one profile.
type service struct {
	cfg   *config
	store *vfs.Store
}

func newService(c *config) (*service, error) {
	st, err := vfs.OpenStore(c.captureDir, c.captureQuota)
	if err != nil {
		return nil, fmt.Errorf("ftp: %w", err)
	}
	return &service{cfg: c, store: st}, nil
}

// Endpoints implements protocols.Service.
func (*service) Endpoints() []protocols.Endpoint {
	return []protocols.Endpoint{{Transport: protocols.TCP, Port: Port}}
}

// view returns the host's filesystem seen from the FTP root, seeding it on first use.
func (sv *service) view(h *protocols.Host) (*vfs.View, error) {
	f := vfs.ForHost(h)
	c := sv.cfg
	err := f.SeedOnce("ftp:"+c.root, func(s *vfs.Seeder) error {
		now := time.Now().UTC()
		dm := vfs.Meta{Perm: 0o755 | modeBits(c.perms), UID: c.owner, GID: c.gid, ModTime: now, ATime: now}
		if err := s.Dir(c.root, dm); err != nil {
			return err
		}
		names := make([]string, 0, len(c.seed))
		for p := range c.seed {
			names = append(names, p)
		}
		sort.Strings(names)
		for _, p := range names {
			full, _ := vfs.Join(c.root, "."+p)
			fm := vfs.Meta{Perm: modeBits(c.perms), UID: c.owner, GID: c.gid, ModTime: now, ATime: now}
			if err := s.File(full, c.seed[p], fm, dm); err != nil {
				return err
			}
		}
		for _, g := range c.generated {
			full, _ := vfs.Join(c.root, "."+g.Path)
			fm := vfs.Meta{Perm: modeBits(c.perms), UID: c.owner, GID: c.gid, ModTime: now, ATime: now}
			if err := s.File(full, vfs.Generate(g.Kind, h.Seed, g.Path, g.Size, now), fm, dm); err != nil {
				return err
			}
		}
		for _, o := range c.overrides {
			full, _ := vfs.Join(c.root, "."+o.path)
			err := s.SetMeta(full, o.recursive, func(m *vfs.Meta) {
				if o.uid >= 0 {
					m.UID = o.uid
				}
				if o.perm >= 0 {
					m.Perm = modeBits(o.perm)
				}
				if !o.mtime.IsZero() {
					m.ModTime = o.mtime
				}
				if !o.atime.IsZero() {
					m.ATime = o.atime
				}
			})
			if err != nil && !errors.Is(err, vfs.ErrNotExist) {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return f.View(c.root)
}

// ServeConn implements protocols.StreamService.
func (sv *service) ServeConn(ctx context.Context, s *protocols.Session, nc net.Conn) {
	view, err := sv.view(s.Host)
	if err != nil {
		s.Log.Error("ftp: filesystem", slog.Any("err", err))
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	c := &conn{sv: sv, cfg: sv.cfg, s: s, ctx: ctx, nc: nc, view: view, cwd: "/",
		r: bufio.NewReaderSize(nc, maxLine), w: bufio.NewWriterSize(nc, 4096)}
	defer c.closeData()
	c.serve()
}

// conn is one control connection.
type conn struct {
	sv   *service
	cfg  *config
	s    *protocols.Session
	ctx  context.Context
	nc   net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
	view *vfs.View

	pendingUser string
	haveUser    bool
	user        string // logged in as
	uid         int
	loggedIn    bool
	failures    int
	cwd         string
	binary      bool
	rest        int64
	rnfr        string
	data        *dataChan

	// Read by the watcher while a transfer runs (see watch), consumed by serve after it.
	pending [][]byte // complete command lines that came during a transfer
	partial []byte   // the start of a line that came during a transfer (≤ maxLine+1 bytes)
	ctlErr  error    // the control connection ended during a transfer
	aborted bool     // ABOR came during the last transfer

	replyBuf []byte // the current command's replies, for its event
	commands int
	dropped  int
	quit     bool
}

// dataChan is the data connection the next transfer uses.
type dataChan struct {
	ep     protocols.StreamEndpoint // passive
	active netip.AddrPort           // PORT/EPRT
}

func (c *conn) serve() {
	c.reply(220, c.cfg.banner)
	c.flush()
	for !c.quit {
		if len(c.pending) > 0 {
			line := c.pending[0]
			c.pending = c.pending[1:]
			c.handle(line)
			if len(c.pending) == 0 && c.r.Buffered() == 0 {
				c.flush()
			}
			continue
		}
		if c.ctlErr != nil {
			break
		}
		if err := c.nc.SetReadDeadline(time.Now().Add(c.cfg.idle)); err != nil {
			return
		}
		line, err := c.readLine()
		if errors.Is(err, errLineTooLong) {
			c.replyBuf = c.replyBuf[:0]
			c.reply(500, "Command too long.")
			c.event("", "", line, 500)
			c.flush()
			continue
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && c.ctx.Err() == nil {
				c.reply(421, "Timeout.")
				c.flush()
				c.s.EmitText("timeout", nil, nil)
			}
			break
		}
		c.handle(line)
		// Pipelined commands get their replies in one segment; flush when none is waiting.
		if (c.r.Buffered() == 0 && len(c.pending) == 0) || c.quit {
			if c.flush() != nil {
				break
			}
		}
	}
	c.flush()
	c.s.EmitText("close", nil, nil, protocols.F("commands", c.commands), protocols.F("events_dropped", c.dropped),
		protocols.F("user", c.user), protocols.F("logged_in", c.loggedIn))
}

var errLineTooLong = errors.New("command line too long")

// readLine returns one command line without its line end, completing the start of one that
// came during a transfer. A line longer than maxLine is skipped (up to maxDiscard bytes, else
// the connection ends) and errLineTooLong returned with its first bytes.
func (c *conn) readLine() ([]byte, error) {
	if len(c.partial) == 0 {
		return c.readLine1()
	}
	head := c.partial
	c.partial = nil
	rest, err := c.readLine1()
	if err != nil && !errors.Is(err, errLineTooLong) {
		return nil, err
	}
	if err != nil || len(head)+len(rest) > maxLine {
		return head[:min(64, len(head))], errLineTooLong
	}
	return append(head, rest...), nil
}

// maxPending bounds the command lines kept while a transfer runs; the watcher stops
// reading past it.
const maxPending = 32

// watch reads the control connection while a transfer runs on dc, as RFC 959 wants: ABOR
// closes dc (the transfer ends with 426) and other commands wait for the transfer. The
// returned stop ends the watch and reports whether ABOR came.
func (c *conn) watch(dc net.Conn) (stop func() bool) {
	done := make(chan struct{})
	aborted := false
	c.nc.SetReadDeadline(time.Now().Add(c.cfg.transfer + c.cfg.idle))
	go func() {
		defer close(done)
		for len(c.pending) < maxPending {
			b, err := c.r.ReadSlice('\n')
			if err != nil {
				// Stopped (a deadline in the past), the sensor's idle timeout, a line too
				// long, or the end: keep what came of the line for serve.
				c.partial = append(c.partial, b[:min(len(b), maxLine+1-len(c.partial))]...)
				var ne net.Error
				if !errors.As(err, &ne) && !errors.Is(err, bufio.ErrBufferFull) {
					c.ctlErr = err
				}
				return
			}
			line := bytes.TrimRight(append(c.partial, b...), "\r\n")
			c.partial = nil
			if len(line) > maxLine {
				line = line[:maxLine]
			}
			if verb, _ := parseCommand(line); verb == "ABOR" {
				aborted = true
				dc.Close()
				return
			}
			c.pending = append(c.pending, line)
		}
	}()
	return func() bool {
		c.nc.SetReadDeadline(time.Unix(1, 0))
		<-done
		return aborted
	}
}

// readLine1 reads one line from the buffered control connection.
func (c *conn) readLine1() ([]byte, error) {
	b, err := c.r.ReadSlice('\n')
	if err == nil {
		return bytes.TrimRight(b, "\r\n"), nil
	}
	if !errors.Is(err, bufio.ErrBufferFull) {
		return nil, err
	}
	head := append([]byte(nil), b[:64]...)
	skipped := len(b)
	for skipped < maxDiscard {
		b, err = c.r.ReadSlice('\n')
		skipped += len(b)
		if err == nil {
			return head, errLineTooLong
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return nil, err
		}
	}
	return nil, fmt.Errorf("ftp: %d bytes without a line end", skipped)
}

// parseCommand splits a command line into its upper-cased verb and its argument, after
// removing Telnet IAC sequences (clients send IAC IP, IAC DM before ABOR).
func parseCommand(line []byte) (verb, arg string) {
	if bytes.IndexByte(line, 0xff) >= 0 {
		clean := make([]byte, 0, len(line))
		for i := 0; i < len(line); i++ {
			if line[i] == 0xff && i+1 < len(line) {
				i++
				if line[i] == 0xff {
					clean = append(clean, 0xff)
				}
				continue
			}
			clean = append(clean, line[i])
		}
		line = clean
	}
	s := strings.TrimLeft(string(line), " ")
	v, a, _ := strings.Cut(s, " ")
	if len(v) > 8 {
		v = v[:8]
	}
	return asciiUpper(v), a
}

// asciiUpper upper-cases ASCII letters only, so the verb never changes length.
func asciiUpper(s string) string {
	b := []byte(s)
	for i, x := range b {
		if 'a' <= x && x <= 'z' {
			b[i] = x - 32
		}
	}
	return string(b)
}

func (c *conn) handle(line []byte) {
	c.replyBuf = c.replyBuf[:0]
	verb, arg := parseCommand(line)
	if c.failures >= c.cfg.maxAttempts {
		c.reply(421, "Too many connections. Service temporarily unavailable.")
		c.quit = true
		c.event(verb, arg, line, 421)
		return
	}
	code := c.dispatch(verb, arg)
	c.event(verb, arg, line, code)
	if c.aborted {
		// ABOR came during this command's transfer.
		c.aborted = false
		c.replyBuf = c.replyBuf[:0]
		c.event("ABOR", "", []byte("ABOR"), c.reply(226, "ABOR command successful."))
	}
}

func (c *conn) dispatch(verb, arg string) int {
	if verb == "" {
		return c.reply(500, "Command '' not understood")
	}
	spec, ok := commands[verb]
	if !ok || (c.cfg.enabled != nil && spec.conpot && !c.cfg.enabled[verb]) {
		return c.reply(500, fmt.Sprintf("Command '%s' not understood", printable(verb)))
	}
	switch {
	case spec.needArg && arg == "":
		return c.reply(501, "Syntax error: command needs an argument")
	case spec.noArg && arg != "":
		return c.reply(501, "Syntax error: command does not accept arguments.")
	case spec.auth && !c.loggedIn:
		return c.reply(530, "Log in with USER and PASS first.")
	}
	return spec.fn(c, arg)
}

// printable clips attacker text for a reply.
func printable(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r < 0x20 || r == 0x7f || b.Len() >= 64 {
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// reply writes a one-line reply and returns its code.
func (c *conn) reply(code int, text string) int {
	line := strconv.Itoa(code) + " " + text + "\r\n"
	c.w.WriteString(line)
	c.keep(line)
	return code
}

// replyLines writes a multi-line reply: "code-first", the middle lines as given, "code last".
func (c *conn) replyLines(code int, first string, middle []string, last string) int {
	var b strings.Builder
	fmt.Fprintf(&b, "%d-%s\r\n", code, first)
	for _, m := range middle {
		b.WriteString(m)
		b.WriteString("\r\n")
	}
	fmt.Fprintf(&b, "%d %s\r\n", code, last)
	c.w.WriteString(b.String())
	c.keep(b.String())
	return code
}

func (c *conn) keep(s string) {
	if n := maxEventReply - len(c.replyBuf); n > 0 {
		if len(s) > n {
			s = s[:n]
		}
		c.replyBuf = append(c.replyBuf, s...)
	}
}

func (c *conn) flush() error { return c.w.Flush() }

// event records one command: an event for the first maxCommandEvents, a metric for all.
func (c *conn) event(verb, arg string, line []byte, code int) {
	c.commands++
	kind := verb
	if _, ok := commands[verb]; !ok {
		kind = "other"
	}
	c.s.Request(kind, code >= 400)
	if c.commands > maxCommandEvents {
		c.dropped++
		return
	}
	c.s.EmitText("command", line, c.replyBuf, protocols.F("command", printable(verb)),
		protocols.F("argument", arg), protocols.F("code", code))
}

// path resolves a client path; a path outside the root gets Conpot's 550 and ok false.
func (c *conn) path(verb, arg string) (string, int, bool) {
	p, err := vfs.Join(c.cwd, arg)
	switch {
	case errors.Is(err, vfs.ErrOutside):
		return "", c.reply(550, fmt.Sprintf("'%s %s' points to a path which is outside the user's root directory.",
			strings.ToLower(verb), printable(arg))), false
	case err != nil:
		return "", c.reply(553, "Requested action not taken. File name not allowed."), false
	}
	return p, 0, true
}

func (c *conn) closeData() {
	if c.data != nil && c.data.ep != nil {
		c.data.ep.Close()
	}
	c.data = nil
}

// openData connects the data channel PASV, EPSV, PORT or EPRT prepared.
func (c *conn) openData() (net.Conn, error) {
	d := c.data
	c.data = nil
	if d == nil {
		return nil, errors.New("no data channel prepared")
	}
	var dc net.Conn
	var err error
	if d.ep != nil {
		ctx, cancel := context.WithTimeout(c.ctx, acceptTimeout)
		dc, err = d.ep.Accept(ctx)
		cancel()
		if err != nil {
			d.ep.Close()
			return nil, fmt.Errorf("ftp: passive accept: %w", err)
		}
	} else {
		dl := net.Dialer{Timeout: dialTimeout, LocalAddr: &net.TCPAddr{IP: c.s.Local.Addr().AsSlice()}}
		raw, err := dl.DialContext(c.ctx, "tcp", d.active.String())
		if err != nil {
			return nil, fmt.Errorf("ftp: active connect: %w", err)
		}
		dc = &protocols.TimeoutConn{Conn: raw, Idle: c.cfg.idle, WriteTimeout: c.cfg.idle}
	}
	if err := dc.SetDeadline(time.Now().Add(c.cfg.transfer)); err != nil {
		dc.Close()
		return nil, err
	}
	return dc, nil
}

// receive reads an upload over a fresh data connection, at most max bytes.
func (c *conn) receive(max int64, what string) ([]byte, int, bool) {
	if c.data == nil {
		return nil, c.reply(425, "Use PORT or PASV first."), false
	}
	c.reply(150, what)
	c.flush()
	dc, err := c.openData()
	if err != nil {
		return nil, c.reply(425, "Can't open data connection."), false
	}
	stop := c.watch(dc)
	defer func() {
		dc.Close()
		c.aborted = stop()
	}()
	// Every byte held counts against the process-wide in-flight budget until it is stored.
	var b []byte
	var held int64
	chunk := make([]byte, 32<<10)
	defer func() { vfs.InFlight.Give(held) }()
	for {
		n, err := dc.Read(chunk)
		if n > 0 {
			if int64(len(b)+n) > max {
				return nil, c.reply(552, "Requested file action aborted. Exceeded storage allocation."), false
			}
			if !vfs.InFlight.Take(int64(n)) {
				return nil, c.reply(452, "Insufficient storage space."), false
			}
			held += int64(n)
			b = append(b, chunk[:n]...)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, c.reply(426, "Connection closed; transfer aborted."), false
		}
	}
	if !c.binary {
		b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
	}
	return b, 0, true
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// store handles STOR, APPE and STOU: the file goes into the host's filesystem and its
// content into the capture store.
func (c *conn) store(verb, arg string) int {
	if c.rest > 0 && verb != "STOR" {
		return c.reply(450, fmt.Sprintf("Can't %s while REST request is pending.", verb))
	}
	var p string
	if verb == "STOU" {
		for try := 0; ; try++ {
			name := c.cfg.stouPrefix + strconv.FormatUint(rand.Uint64()%(1<<40), 36) + c.cfg.stouSuffix
			var code int
			var ok bool
			if p, code, ok = c.path(verb, name); !ok {
				return code
			}
			if _, err := c.view.Stat(p); errors.Is(err, vfs.ErrNotExist) {
				break
			}
			if try == 8 {
				return c.reply(450, "No usable unique file name found.")
			}
		}
	} else {
		var code int
		var ok bool
		if p, code, ok = c.path(verb, arg); !ok {
			return code
		}
	}
	if inf, err := c.view.Stat(p); err == nil && inf.Dir {
		return c.reply(550, "Is a directory.")
	}
	if dir, err := c.view.Stat(parentOf(p)); err != nil || !dir.Dir {
		return c.reply(550, "No such file or directory.")
	}
	src := c.s.Remote.Addr()
	if !c.sv.store.Allowed(src) {
		c.s.EmitText("upload_refused", nil, nil, protocols.F("name", p), protocols.F("reason", "quota"))
		return c.reply(452, "Insufficient storage space.")
	}
	rest := c.rest
	c.rest = 0
	what := "File status okay. About to open data connection."
	if verb == "STOU" {
		what = "FILE: " + p[strings.LastIndexByte(p, '/')+1:]
	}
	b, code, ok := c.receive(vfs.DefaultLimits.MaxFileSize, what)
	if !ok {
		return code
	}
	now := time.Now().UTC()
	meta := vfs.Meta{Perm: modeBits(c.cfg.uploadPerms), UID: c.uid, GID: c.cfg.gid, ModTime: now, ATime: now}
	// The file as stored (after APPE or REST) is what is captured, so the capture of that
	// name is the file's content.
	if verb == "APPE" || rest > 0 {
		old, inf, err := c.view.ReadFile(p)
		switch {
		case rest > 0 && (err != nil || int64(len(old)) < rest):
			return c.reply(554, "Invalid REST parameter.")
		case rest > 0:
			old = old[:rest]
		}
		if err == nil {
			if int64(len(old))+int64(len(b)) > vfs.DefaultLimits.MaxFileSize {
				return c.reply(552, "Requested file action aborted. Exceeded storage allocation.")
			}
			if verb == "APPE" {
				meta.Perm, meta.UID, meta.GID = inf.Perm, inf.UID, inf.GID
			}
			b = append(append(make([]byte, 0, len(old)+len(b)), old...), b...)
		}
	}
	cp, err := c.sv.store.Save(src, b)
	fields := []protocols.Field{protocols.F("direction", "upload"), protocols.F("name", p),
		protocols.F("bytes", len(b)), protocols.F("sha256", cp.SHA256), protocols.F("command", verb)}
	if err != nil {
		reason := "capture failed"
		if errors.Is(err, vfs.ErrQuota) {
			reason = "quota"
		} else if c.sv.store.FirstFailure() {
			c.s.Log.Warn("ftp: cannot write captures; uploads are refused as disk full", slog.Any("err", err))
		}
		c.s.EmitText("upload_refused", nil, nil, append(fields, protocols.F("reason", reason))...)
		return c.reply(452, "Insufficient storage space.")
	}
	if err := c.view.WriteFile(p, b, false, false, meta); err != nil {
		c.s.EmitText("upload_refused", nil, nil, append(fields, protocols.F("reason", err.Error()))...)
		if errors.Is(err, vfs.ErrNoSpace) {
			return c.reply(452, "Insufficient storage space.")
		}
		return c.reply(550, fmt.Sprintf("%s command failed.", verb))
	}
	if cp.Path != "" {
		fields = append(fields, protocols.F("capture", filepath.Base(cp.Path)))
	}
	c.s.EmitText("upload", nil, nil, append(fields, protocols.F("duplicate", cp.Duplicate))...)
	return c.reply(226, "Transfer complete.")
}

func parentOf(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i <= 0 {
		return "/"
	}
	return p[:i]
}
