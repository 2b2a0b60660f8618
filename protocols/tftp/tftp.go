package tftp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/ratelimit"
	"github.com/icsnare/icsnare/protocols/vfs"
)

// Transfer bounds.
const (
	maxForeign   = 16  // ERROR 5 answers to strangers per transfer
	maxIgnored   = 256 // stale or out-of-order packets tolerated per transfer
	maxDally     = 3   // re-ACKs of a repeated final DATA
	maxSources   = 65536
	maxFileBytes = 8 << 20
	// maxErrorEvents bounds the error events of one flow; the flow's request metrics count
	// the rest.
	maxErrorEvents = 64
)

// service is TFTP configured for one profile.
type service struct {
	cfg   *config
	store *vfs.Store

	mu        sync.Mutex
	perSource map[netip.Addr]int
}

func newService(c *config) (*service, error) {
	st, err := vfs.OpenStore(c.captureDir, c.captureQuota)
	if err != nil {
		return nil, fmt.Errorf("tftp: %w", err)
	}
	return &service{cfg: c, store: st, perSource: map[netip.Addr]int{}}, nil
}

// Endpoints implements protocols.Service.
func (*service) Endpoints() []protocols.Endpoint {
	return []protocols.Endpoint{{Transport: protocols.UDP, Port: Port}}
}

// Payload patterns of the request classes: the opcode.
var (
	rrqPattern = ratelimit.MustParsePattern("0:0001")
	wrqPattern = ratelimit.MustParsePattern("0:0002")
)

// RateLimits implements protocols.RateLimited: RRQ ("read") and WRQ ("write") on port 69
// are limited per source and in total, in the kernel when XDP runs, else by the sensor.
// Transfer packets go to the transfer ports and are not counted.
func (sv *service) RateLimits() []protocols.RateLimit {
	var out []protocols.RateLimit
	for _, c := range []struct {
		class string
		p     protocols.Pattern
	}{{"read", rrqPattern}, {"write", wrqPattern}} {
		l := sv.cfg.limits[c.class]
		if l.perSource == 0 && l.global == 0 {
			continue
		}
		out = append(out, protocols.RateLimit{Port: Port, Class: c.class, Match: []protocols.Pattern{c.p},
			PerSource: l.perSource, Global: l.global})
	}
	return out
}

// view returns the host's filesystem seen from the TFTP root, seeding it on first use.
func (sv *service) view(h *protocols.Host) (*vfs.View, error) {
	f := vfs.ForHost(h)
	c := sv.cfg
	err := f.SeedOnce("tftp:"+c.root, func(s *vfs.Seeder) error {
		now := time.Now().UTC()
		dm := vfs.Meta{Perm: defaultDirPerms, ModTime: now, ATime: now}
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
			if err := s.File(full, c.seed[p], vfs.Meta{Perm: defaultWritePerms, ModTime: now, ATime: now}, dm); err != nil {
				return err
			}
		}
		for _, g := range c.generated {
			full, _ := vfs.Join(c.root, "."+g.Path)
			data := vfs.Generate(g.Kind, h.Seed, g.Path, g.Size, now)
			if err := s.File(full, data, vfs.Meta{Perm: defaultWritePerms, ModTime: now, ATime: now}, dm); err != nil {
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

// RepliesPromptly implements protocols.PromptReplier: port 69 refuses while ServePacket
// runs; a transfer answers from its own endpoint.
func (sv *service) RepliesPromptly() bool { return true }

// ServePacket implements protocols.PacketService: RRQ and WRQ on port 69 start a transfer
// on a port of its own; anything else is an illegal operation.
func (sv *service) ServePacket(ctx context.Context, s *protocols.Session, req []byte, reply func([]byte)) {
	if len(req) < 2 {
		s.Request("malformed", true)
		return
	}
	fail := func(kind string, code uint16, msg string, fields ...protocols.Field) {
		resp := encodeError(code, msg)
		s.Request(kind, true)
		// A flood of refused requests is summarised: full events for the first ones of a flow.
		if n := s.State("tftp.errors", func() any { return new(atomic.Int64) }).(*atomic.Int64).Add(1); n <= maxErrorEvents {
			s.Emit("error", req, resp, append(fields, protocols.F("error_code", code), protocols.F("error", msg))...)
		}
		reply(resp)
	}
	op := binary.BigEndian.Uint16(req)
	if op != opRRQ && op != opWRQ {
		fail("other", errIllegal, "Illegal TFTP operation", protocols.F("opcode", op))
		return
	}
	kind := "rrq"
	if op == opWRQ {
		kind = "wrq"
	}
	r, err := parseRequest(req)
	if err != nil {
		fail(kind, errIllegal, "Illegal TFTP operation")
		return
	}
	fields := []protocols.Field{protocols.F("opcode", kind), protocols.F("filename", r.filename), protocols.F("mode", r.mode)}
	for _, o := range r.options {
		fields = append(fields, protocols.F("option_"+printableOpt(o.name), o.value))
	}
	active := s.State("tftp.active", func() any { return new(atomic.Pointer[transfer]) }).(*atomic.Pointer[transfer])
	if cur := active.Load(); cur != nil && bytes.Equal(cur.raw, req) {
		// The client repeated its request while the transfer it started runs: not a new
		// one. Until the client has answered on the transfer port, its repeat is the only
		// thing that makes the server send the first packet again.
		s.Request(kind, false)
		if !s.Verified() {
			cur.resend()
		}
		return
	}
	if r.mode != "octet" && r.mode != "netascii" {
		fail(kind, errIllegal, "Unknown transfer mode", fields...)
		return
	}
	view, err := sv.view(s.Host)
	if err != nil {
		s.Log.Error("tftp: filesystem", slog.Any("err", err))
		fail(kind, errUndefined, "Filesystem error", fields...)
		return
	}
	p, err := vfs.Join("/", r.filename)
	if err != nil {
		fail(kind, errAccess, "Access violation", fields...)
		return
	}
	t := &transfer{sv: sv, s: s, req: r, raw: bytes.Clone(req), path: p, view: view, blksize: defBlksize, timeout: sv.cfg.timeout}
	if op == opRRQ {
		data, inf, err := view.ReadFile(p)
		if err != nil || inf.Dir {
			fail(kind, errNotFound, "File not found", fields...)
			return
		}
		t.data = data // converted to netascii once the transfer has its slot
	} else {
		if sv.cfg.readOnly {
			fail(kind, errAccess, "Access violation", fields...)
			return
		}
		if inf, err := view.Stat(p); err == nil && inf.Dir {
			fail(kind, errAccess, "Access violation", fields...)
			return
		}
		if !sv.store.Allowed(s.Remote.Addr()) {
			fail(kind, errDiskFull, "Disk full or allocation exceeded", fields...)
			return
		}
	}
	if code, msg := t.negotiate(); code != 0 {
		fail(kind, code, msg, fields...)
		return
	}
	release, ok := sv.acquire(s)
	if !ok {
		fail(kind, errUndefined, "Too many transfers, try again later", fields...)
		return
	}
	var held int64
	if op == opRRQ && r.mode == "netascii" {
		// The converted copy is this transfer's own: it counts against the in-flight budget.
		if held = int64(netasciiLen(t.data)); !vfs.InFlight.Take(held) {
			release()
			fail(kind, errUndefined, "Server busy", fields...)
			return
		}
		t.data = toNetascii(t.data)
		inner := release
		release = func() { inner(); vfs.InFlight.Give(held) }
	}
	ep, err := s.OpenUDP()
	if err != nil {
		release()
		fail(kind, errUndefined, "Server busy", fields...)
		return
	}
	active.Store(t)
	s.Request(kind, false)
	s.Emit("request", req, nil, fields...)
	t.ep = ep
	go func() {
		defer func() {
			ep.Close()
			release()
			active.CompareAndSwap(t, nil)
		}()
		t.run()
	}()
}

func printableOpt(s string) string {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s) && len(b) < 32; i++ {
		if c := s[i]; c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' {
			b = append(b, c)
		}
	}
	return string(b)
}

// acquire takes a transfer slot of the host and of the source address.
func (sv *service) acquire(s *protocols.Session) (func(), bool) {
	host := s.Host.State("tftp.transfers", func() any { return new(atomic.Int32) }).(*atomic.Int32)
	if host.Add(1) > int32(sv.cfg.perHost) {
		host.Add(-1)
		return nil, false
	}
	src := s.Remote.Addr()
	sv.mu.Lock()
	if sv.perSource[src] >= sv.cfg.perSource || (sv.perSource[src] == 0 && len(sv.perSource) >= maxSources) {
		sv.mu.Unlock()
		host.Add(-1)
		return nil, false
	}
	sv.perSource[src]++
	sv.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			host.Add(-1)
			sv.mu.Lock()
			if sv.perSource[src]--; sv.perSource[src] <= 0 {
				delete(sv.perSource, src)
			}
			sv.mu.Unlock()
		})
	}, true
}

// transfer is one RRQ or WRQ on its own port.
type transfer struct {
	sv      *service
	s       *protocols.Session
	req     *request
	raw     []byte // the request as received, to recognise its repeats
	path    string
	view    *vfs.View
	ep      protocols.PacketEndpoint
	data    []byte // RRQ: what is sent (after netascii conversion)
	blksize int
	timeout time.Duration
	oack    []option
	foreign int
	ignored int
	cur     atomic.Pointer[[]byte] // the packet last sent, for resend
}

// resend repeats the packet last sent (the client repeated its request).
func (t *transfer) resend() {
	if p := t.cur.Load(); p != nil {
		t.write(*p)
	}
}

// negotiate applies the RFC 2347 options the server knows and prepares the OACK.
func (t *transfer) negotiate() (uint16, string) {
	for _, o := range t.req.options {
		switch o.name {
		case "blksize":
			if n, ok := blksizeOption(o.value); ok {
				t.blksize = n
				t.oack = append(t.oack, option{"blksize", strconv.Itoa(n)})
			}
		case "timeout":
			if n, err := strconv.Atoi(o.value); err == nil && n >= minTimeout && n <= maxTimeout {
				t.timeout = time.Duration(n) * time.Second
				t.oack = append(t.oack, option{"timeout", o.value})
			}
		case "tsize":
			n, err := strconv.ParseInt(o.value, 10, 64)
			if err != nil || n < 0 {
				continue
			}
			if t.req.op == opRRQ {
				size := len(t.data)
				if t.req.mode == "netascii" {
					size = netasciiLen(t.data)
				}
				t.oack = append(t.oack, option{"tsize", strconv.Itoa(size)})
			} else {
				if n > maxFileBytes {
					return errDiskFull, "Disk full or allocation exceeded"
				}
				t.oack = append(t.oack, option{"tsize", o.value})
			}
		}
	}
	return 0, ""
}

var (
	errGiveUp    = errors.New("no answer after the retries")
	errAborted   = errors.New("the client sent an ERROR")
	errBadPacket = errors.New("illegal packet")
)

func (t *transfer) client() netip.AddrPort { return t.s.Remote }

func (t *transfer) write(b []byte) error {
	_, err := t.ep.WriteTo(b, t.client())
	return err
}

// abort tells the client why the transfer ends.
func (t *transfer) abort(code uint16, msg string) { t.write(encodeError(code, msg)) }

// next reads the client's next packet until deadline, answering strangers with ERROR 5.
func (t *transfer) next(buf []byte, deadline time.Time) (packet, error) {
	for {
		t.ep.SetReadDeadline(deadline)
		n, from, err := t.ep.ReadFrom(buf)
		if err != nil {
			return packet{}, err
		}
		if from != t.client() {
			if t.foreign++; t.foreign <= maxForeign {
				t.ep.WriteTo(encodeError(errUnknownTID, "Unknown transfer ID"), from)
			}
			continue
		}
		p, err := parsePacket(buf[:n])
		if err != nil {
			return packet{}, errBadPacket
		}
		// The client learnt the transfer port, so it receives what the host sends: its
		// answers are no longer bound by the amplification factor.
		t.s.Verify()
		if p.op == opERROR {
			return p, errAborted
		}
		return p, nil
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// exchange sends pkt and waits for the packet accept takes, retransmitting on timeout
// only: a stale duplicate never triggers a resend (no sorcerer's apprentice). Before the
// client has answered once (a spoofed source cannot), nothing is retransmitted.
func (t *transfer) exchange(pkt []byte, buf []byte, accept func(p packet) (bool, error)) (packet, error) {
	t.cur.Store(&pkt)
	for try := 0; try <= t.sv.cfg.retries; try++ {
		if try == 0 || t.s.Verified() {
			if err := t.write(pkt); err != nil {
				return packet{}, err
			}
		}
		deadline := time.Now().Add(t.timeout)
		for {
			p, err := t.next(buf, deadline)
			if isTimeout(err) {
				break
			}
			if err != nil {
				return p, err
			}
			ok, err := accept(p)
			if err != nil {
				return p, err
			}
			if ok {
				return p, nil
			}
			if t.ignored++; t.ignored > maxIgnored {
				return p, errBadPacket
			}
		}
	}
	return packet{}, errGiveUp
}

func (t *transfer) run() {
	var err error
	if t.req.op == opRRQ {
		err = t.send()
	} else {
		err = t.receive()
	}
	if err != nil {
		dir := "download"
		if t.req.op == opWRQ {
			dir = "upload"
		}
		reason := err.Error()
		if errors.Is(err, net.ErrClosed) {
			reason = "session closed"
		}
		t.s.Emit("transfer_failed", nil, nil, protocols.F("direction", dir), protocols.F("name", t.path),
			protocols.F("reason", reason))
	}
}

func (t *transfer) send() error {
	buf := make([]byte, 4+t.blksize+64)
	ackOf := func(want uint16) func(p packet) (bool, error) {
		return func(p packet) (bool, error) {
			if p.op != opACK {
				t.abort(errIllegal, "Illegal TFTP operation")
				return false, errBadPacket
			}
			return p.block == want, nil
		}
	}
	if len(t.oack) > 0 {
		if _, err := t.exchange(encodeOACK(t.oack), buf, ackOf(0)); err != nil {
			return err
		}
	}
	blocks := 0
	for off := 0; ; off += t.blksize {
		blocks++
		block := uint16(blocks)
		chunk := t.data[off:min(off+t.blksize, len(t.data))]
		if _, err := t.exchange(encodeData(block, chunk), buf, ackOf(block)); err != nil {
			return err
		}
		if len(chunk) < t.blksize {
			break
		}
	}
	h := sha256.Sum256(t.data)
	t.s.Emit("download", nil, nil, protocols.F("direction", "download"), protocols.F("name", t.path),
		protocols.F("bytes", len(t.data)), protocols.F("sha256", hex.EncodeToString(h[:])),
		protocols.F("blksize", t.blksize), protocols.F("blocks", blocks), protocols.F("mode", t.req.mode))
	return nil
}

func (t *transfer) receive() error {
	buf := make([]byte, 4+t.blksize+64)
	first := encodeACK(0)
	if len(t.oack) > 0 {
		first = encodeOACK(t.oack)
	}
	var data []byte
	var held int64
	defer func() { vfs.InFlight.Give(held) }()
	expect := uint16(1)
	last := first
	received := false
	for {
		want, got := expect, received
		p, err := t.exchange(last, buf, func(p packet) (bool, error) {
			if p.op != opDATA {
				t.abort(errIllegal, "Illegal TFTP operation")
				return false, errBadPacket
			}
			if got && p.block == want-1 {
				// The client missed our ACK: repeat it once for this DATA, no more.
				t.write(encodeACK(p.block))
			}
			return p.block == want, nil
		})
		if err != nil {
			return err
		}
		if len(p.data) > t.blksize {
			t.abort(errIllegal, "Illegal TFTP operation")
			return errBadPacket
		}
		if len(data)+len(p.data) > maxFileBytes || !vfs.InFlight.Take(int64(len(p.data))) {
			t.abort(errDiskFull, "Disk full or allocation exceeded")
			return fmt.Errorf("upload over %d bytes or the in-flight budget", maxFileBytes)
		}
		held += int64(len(p.data))
		data = append(data, p.data...)
		if len(p.data) < t.blksize {
			return t.finish(data, p.block, buf)
		}
		last = encodeACK(expect)
		expect++
		received = true
	}
}

// finish stores a complete upload, then ACKs the final block (or refuses it: disk full)
// and dallies to re-ACK a repeated final DATA.
func (t *transfer) finish(data []byte, block uint16, buf []byte) error {
	if t.req.mode == "netascii" {
		data = fromNetascii(data)
	}
	cp, err := t.sv.store.Save(t.s.Remote.Addr(), data)
	fields := []protocols.Field{protocols.F("direction", "upload"), protocols.F("name", t.path),
		protocols.F("bytes", len(data)), protocols.F("sha256", cp.SHA256), protocols.F("mode", t.req.mode)}
	if err == nil {
		now := time.Now().UTC()
		err = t.view.WriteFile(t.path, data, false, true, vfs.Meta{Perm: defaultWritePerms, ModTime: now, ATime: now})
	}
	if err != nil {
		reason := err.Error()
		if !errors.Is(err, vfs.ErrQuota) && !errors.Is(err, vfs.ErrNoSpace) && t.sv.store.FirstFailure() {
			t.s.Log.Warn("tftp: cannot write captures; uploads are refused as disk full", slog.Any("err", err))
		}
		t.abort(errDiskFull, "Disk full or allocation exceeded")
		t.s.Emit("upload_refused", nil, nil, append(fields, protocols.F("reason", reason))...)
		return nil
	}
	if cp.Path != "" {
		fields = append(fields, protocols.F("capture", filepath.Base(cp.Path)))
	}
	t.s.Emit("upload", nil, nil, append(fields, protocols.F("duplicate", cp.Duplicate))...)
	ack := encodeACK(block)
	t.write(ack)
	deadline := time.Now().Add(t.timeout)
	for range maxDally {
		p, err := t.next(buf, deadline)
		if err != nil {
			break
		}
		if p.op == opDATA && p.block == block {
			t.write(ack)
		}
	}
	return nil
}
