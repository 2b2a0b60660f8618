package enip

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
)

// service serves one profile's EtherNet/IP section for every host of that profile, over
// TCP and UDP on the same port as real devices do.
type service struct {
	cfg *config
}

var (
	_ protocols.StreamService    = (*service)(nil)
	_ protocols.BroadcastService = (*service)(nil)
)

func newService(c *config) *service { return &service{cfg: c} }

// Endpoints implements protocols.Service.
func (s *service) Endpoints() []protocols.Endpoint {
	return []protocols.Endpoint{{Transport: protocols.TCP, Port: Port}, {Transport: protocols.UDP, Port: Port}}
}

// Limits of one TCP connection.
const (
	readBufSize = headerLen + maxData
	// maxConnections bounds the CIP connections (Forward Open) of one TCP connection; a
	// Logix controller has a few dozen for the whole device.
	maxConnections = 8
	// maxUnconnected is the CIP reply size an unconnected message may have.
	maxUnconnected = 504
	// maxEventItems bounds the services and tags one event lists.
	maxEventItems = 16
)

// cipConn is a class 3 connection opened with Forward Open.
type cipConn struct {
	otID, toID   uint32
	serial       uint16
	vendor       uint16
	origSerial   uint32
	maxSize      int
	lastSequence uint16
}

// conn is one TCP connection's state.
type conn struct {
	x       exec
	nc      net.Conn
	session uint32
	conns   []cipConn
	buf     []byte
	out     []byte
	items   []cpfItem
}

// exec runs CIP requests for one host; ev collects what the event reports.
type exec struct {
	svc  *service
	sess *protocols.Session
	db   *profiles.Databus
	dev  *device
	ev   evInfo
	conn *conn  // nil over UDP
	img  []byte // scratch: a read's tag image
}

// evInfo is what one encapsulation request did, for its event. Its slices are reused
// from request to request: a kept event gets copies (fields).
type evInfo struct {
	services []string
	paths    []string
	tags     []tagRef
	status   int // first non-zero CIP general status, -1 when no CIP request ran
	write    bool
}

// tagRef is a tag a request named: a configured tag's name, or the symbol as the client
// sent it (in the request's bytes, valid until the request's event is emitted).
type tagRef struct {
	name string
	sym  []byte
}

// fields appends the event fields of the CIP requests, copying what evInfo reuses.
func (e *evInfo) fields(f []protocols.Field) []protocols.Field {
	if len(e.services) > 0 {
		f = append(f, protocols.F("cip_services", slices.Clone(e.services)))
	}
	if len(e.paths) > 0 {
		f = append(f, protocols.F("cip_paths", slices.Clone(e.paths)))
	}
	if len(e.tags) > 0 {
		tags := make([]string, len(e.tags))
		for i, t := range e.tags {
			tags[i] = t.name
			if t.sym != nil {
				tags[i] = string(t.sym)
			}
		}
		f = append(f, protocols.F("tags", tags))
	}
	if e.status >= 0 {
		f = append(f, protocols.F("general_status", e.status))
	}
	return f
}

func (e *evInfo) reset() {
	e.services, e.paths, e.tags, e.status, e.write = e.services[:0], e.paths[:0], e.tags[:0], -1, false
}

// ServeConn implements protocols.StreamService: it reads encapsulation frames until the
// peer closes, unregisters or breaks the framing.
func (s *service) ServeConn(ctx context.Context, sess *protocols.Session, nc net.Conn) {
	c := &conn{nc: nc, buf: make([]byte, 4096)}
	c.x = exec{svc: s, sess: sess, conn: c}
	if sess.Host != nil {
		c.x.db = sess.Host.Databus
		c.x.dev = s.hostDevice(sess.Host)
	} else {
		c.x.dev = &device{}
	}
	n := 0
	for ctx.Err() == nil {
		m, rerr := nc.Read(c.buf[n:])
		n += m
		off := 0
		for off < n {
			l, err := nextFrame(c.buf[off:n])
			if err != nil {
				// The frame cannot be read: say so as the specification does, then close.
				h, _ := parseHeader(c.buf[off:n])
				c.out = appendHeader(c.out[:0], &h, 0, statusInvalidLength)
				c.flush()
				sess.Emit(evBadFrame, c.buf[off:n], c.out, protocols.F("command", commandName(h.Command)),
					protocols.F("length", h.Length))
				sess.Request("invalid", true)
				return
			}
			if l == 0 {
				if len(c.buf) < readBufSize && n-off >= headerLen {
					// grow once for a frame larger than the initial buffer
					nb := make([]byte, readBufSize)
					n = copy(nb, c.buf[off:n])
					c.buf, off = nb, 0
				}
				break
			}
			keep := c.handle(c.buf[off : off+l])
			off += l
			if !c.flush() || !keep {
				return
			}
		}
		n = copy(c.buf, c.buf[off:n])
		if rerr != nil {
			if n > 0 {
				sess.Emit(evPartialFrame, c.buf[:n], nil)
				sess.Request("invalid", true)
			}
			if !errors.Is(rerr, net.ErrClosed) {
				c.x.log().Debug("enip: connection ends", "err", rerr)
			}
			return
		}
	}
}

func (x *exec) log() *slog.Logger {
	if x.sess.Log != nil {
		return x.sess.Log
	}
	return slog.Default()
}

func (c *conn) flush() bool {
	if len(c.out) == 0 {
		return true
	}
	_, err := c.nc.Write(c.out)
	c.out = c.out[:0]
	return err == nil
}

// Event types.
const (
	evRequest      = Name + ".request"
	evWrite        = Name + ".write"
	evBadFrame     = Name + ".bad_frame"
	evPartialFrame = Name + ".partial_frame"
)

// handle answers one complete frame over TCP, appending the reply to c.out; false closes
// the connection.
func (c *conn) handle(frame []byte) bool {
	h, _ := parseHeader(frame)
	data := frame[headerLen:]
	x := &c.x
	x.ev.reset()
	start := len(c.out)
	keep, status, reply := true, statusSuccess, true
	switch {
	case h.Options != 0:
		reply = false // 2-3.1: a packet with non-zero options is discarded
	case h.Command == cmdNOP:
		reply = false
	case h.Command == cmdListIdentity, h.Command == cmdListServices, h.Command == cmdListInterfaces:
		c.out = x.appendList(c.out, &h, x.sess.Local.Addr())
	case h.Command == cmdRegisterSession:
		c.out, status = c.register(c.out, &h, data)
	case h.Command == cmdUnRegisterSession:
		reply, keep = false, false
	case h.Command == cmdSendRRData, h.Command == cmdSendUnitData:
		if c.session == 0 || h.Session != c.session {
			status = statusInvalidSession
			c.out = appendHeader(c.out, &h, 0, status)
			break
		}
		c.out, status, reply = c.send(c.out, &h, data)
	default:
		status = statusInvalidCommand
		c.out = appendHeader(c.out, &h, 0, status)
	}
	if !reply {
		c.out = c.out[:start]
	}
	x.finish(&h, frame, c.out[start:], status, reply)
	return keep
}

// finish counts and reports one encapsulation request.
func (x *exec) finish(h *header, req, resp []byte, status uint32, replied bool) {
	kind := commandName(h.Command)
	if len(x.ev.services) > 0 {
		kind = x.ev.services[0]
	}
	failed := status != statusSuccess || x.ev.status > 0
	typ := evRequest
	if x.ev.write {
		typ = evWrite
	}
	if !replied {
		resp = nil
	}
	// The request is counted, and volume control decides on the type (it keeps writes):
	// the fields are built only for an event it keeps.
	if x.sess.RequestSkip(kind, failed, typ, req, resp) {
		return
	}
	f := make([]protocols.Field, 0, 8)
	f = append(f, protocols.F("command", commandName(h.Command)), protocols.F("session_handle", h.Session),
		protocols.F("encap_status", status))
	if h.Command != cmdNOP && commandName(h.Command) == "unknown" {
		f = append(f, protocols.F("command_code", h.Command))
	}
	f = x.ev.fields(f)
	if !replied {
		f = append(f, protocols.F("no_reply", true))
	}
	x.sess.Emit(typ, req, resp, f...)
}

// appendList answers ListIdentity, ListServices and ListInterfaces (2-4.2 to 2-4.4).
func (x *exec) appendList(dst []byte, h *header, local netip.Addr) []byte {
	start := len(dst)
	dst = appendHeader(dst, h, 0, statusSuccess)
	switch h.Command {
	case cmdListIdentity:
		dst = binary.LittleEndian.AppendUint16(dst, 1)
		dst = x.appendIdentityItem(dst, local, Port)
	case cmdListServices:
		dst = binary.LittleEndian.AppendUint16(dst, 1)
		dst = appendItemHeader(dst, itemServices, 20)
		dst = binary.LittleEndian.AppendUint16(dst, protocolVersion)
		// CIP encapsulation over TCP (bit 5) and class 0/1 over UDP (bit 8)
		dst = binary.LittleEndian.AppendUint16(dst, 0x0120)
		var name [16]byte
		copy(name[:], "Communications")
		dst = append(dst, name[:]...)
	case cmdListInterfaces:
		dst = binary.LittleEndian.AppendUint16(dst, 0)
	}
	binary.LittleEndian.PutUint16(dst[start+2:], uint16(len(dst)-start-headerLen))
	return dst
}

// register answers RegisterSession (2-4.4).
func (c *conn) register(dst []byte, h *header, data []byte) ([]byte, uint32) {
	switch {
	case len(data) != 4:
		return appendHeader(dst, h, 0, statusInvalidLength), statusInvalidLength
	case binary.LittleEndian.Uint16(data) != protocolVersion:
		dst = appendHeader(dst, h, 4, statusUnsupportedProtocol)
		return append(dst, protocolVersion, 0, 0, 0), statusUnsupportedProtocol
	case c.session != 0:
		// one session per TCP connection
		return appendHeader(dst, h, 0, statusInvalidCommand), statusInvalidCommand
	}
	for c.session == 0 {
		c.session = rand.Uint32()
	}
	r := *h
	r.Session = c.session
	dst = appendHeader(dst, &r, 4, statusSuccess)
	return append(dst, protocolVersion, 0, 0, 0), statusSuccess // no option flag is defined
}

// send answers SendRRData and SendUnitData (2-4.7, 2-4.8). reply is false for a connected
// message on an unknown connection, which a device discards.
func (c *conn) send(dst []byte, h *header, data []byte) ([]byte, uint32, bool) {
	start := len(dst)
	bad := func() ([]byte, uint32, bool) {
		return appendHeader(dst[:start], h, 0, statusIncorrectData), statusIncorrectData, true
	}
	if len(data) < 6 {
		return bad()
	}
	var err error
	if c.items, err = parseCPF(data[6:], c.items); err != nil || len(c.items) < 2 {
		return bad()
	}
	addr, msg := c.items[0], c.items[1]
	dst = appendHeader(dst, h, 0, statusSuccess)
	dst = append(dst, 0, 0, 0, 0, 0, 0) // interface handle (CIP) and timeout
	dst = binary.LittleEndian.AppendUint16(dst, 2)
	if h.Command == cmdSendRRData {
		if addr.Type != itemNullAddress || msg.Type != itemUnconnectedData || len(msg.Data) == 0 {
			return bad()
		}
		dst = appendItemHeader(dst, itemNullAddress, 0)
		dst = appendItemHeader(dst, itemUnconnectedData, 0)
		mstart := len(dst)
		dst = c.x.request(dst, msg.Data, 0, maxUnconnected)
		binary.LittleEndian.PutUint16(dst[mstart-2:], uint16(len(dst)-mstart))
	} else {
		if addr.Type != itemConnectedAddress || len(addr.Data) != 4 || msg.Type != itemConnectedData || len(msg.Data) < 3 {
			return bad()
		}
		id := binary.LittleEndian.Uint32(addr.Data)
		cc := c.find(id)
		if cc == nil {
			c.x.ev.status = int(gsConnectionFailure)
			return dst[:start], statusSuccess, false
		}
		cc.lastSequence = binary.LittleEndian.Uint16(msg.Data)
		dst = appendItemHeader(dst, itemConnectedAddress, 4)
		dst = binary.LittleEndian.AppendUint32(dst, cc.toID)
		dst = appendItemHeader(dst, itemConnectedData, 0)
		mstart := len(dst)
		dst = binary.LittleEndian.AppendUint16(dst, cc.lastSequence)
		dst = c.x.request(dst, msg.Data[2:], 0, cc.maxSize)
		binary.LittleEndian.PutUint16(dst[mstart-2:], uint16(len(dst)-mstart))
	}
	binary.LittleEndian.PutUint16(dst[start+2:], uint16(len(dst)-start-headerLen))
	return dst, statusSuccess, true
}

func (c *conn) find(otID uint32) *cipConn {
	for i := range c.conns {
		if c.conns[i].otID == otID {
			return &c.conns[i]
		}
	}
	return nil
}

// RepliesPromptly implements protocols.PromptReplier: a datagram is answered while
// ServePacket runs.
func (s *service) RepliesPromptly() bool { return true }

// ServePacket implements protocols.PacketService: ListIdentity, ListServices and
// ListInterfaces over UDP; other commands are not valid over UDP.
func (s *service) ServePacket(ctx context.Context, sess *protocols.Session, req []byte, reply func([]byte)) {
	s.servePacket(sess, sess.Local.Addr(), req, reply, false)
}

// ServeBroadcast implements protocols.BroadcastService: every host answers a broadcast
// ListIdentity (and ListServices) from its own address, as devices on a segment do.
func (s *service) ServeBroadcast(ctx context.Context, sess *protocols.Session, to netip.Addr, req []byte, reply func([]byte)) {
	s.servePacket(sess, sess.Local.Addr(), req, reply, true)
}

func (s *service) servePacket(sess *protocols.Session, local netip.Addr, req []byte, reply func([]byte), broadcast bool) {
	x := exec{svc: s, sess: sess}
	if sess.Host != nil {
		x.db = sess.Host.Databus
		x.dev = s.hostDevice(sess.Host)
	} else {
		x.dev = &device{}
	}
	x.ev.reset()
	h, ok := parseHeader(req)
	if !ok || len(req) != headerLen+int(h.Length) {
		sess.Emit(evBadFrame, req, nil, protocols.F("broadcast", broadcast))
		sess.Request("invalid", true)
		return
	}
	var out []byte
	status := statusSuccess
	bp := answerPool.Get().(*[]byte)
	switch {
	case h.Options != 0, h.Command == cmdNOP:
	case h.Command == cmdListIdentity, h.Command == cmdListServices, h.Command == cmdListInterfaces:
		out = x.appendList((*bp)[:0], &h, local)
	case broadcast:
		// only the discovery commands are answered to a broadcast
	default:
		status = statusInvalidCommand
		out = appendHeader((*bp)[:0], &h, 0, status)
	}
	if out != nil {
		reply(out)
	}
	x.finish(&h, req, out, status, out != nil)
	if out != nil && cap(out) <= maxPooledAnswer {
		*bp = out[:0] // out may have outgrown the pooled buffer: keep the larger one
	}
	answerPool.Put(bp)
}

// answerPool holds the buffers of UDP answers: the sensor sends an answer and its event
// copies it before servePacket returns, so the buffer serves the next datagram.
var answerPool = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

// maxPooledAnswer bounds the buffer an answer gives back to answerPool.
const maxPooledAnswer = 4 << 10
