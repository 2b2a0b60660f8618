package iec104

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"math"
	"net"
	"os"
	"time"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
)

// service serves one profile's IEC104 section for every host of that profile.
type service struct {
	cfg *config
}

var _ protocols.StreamService = (*service)(nil)

func newService(c *config) *service { return &service{cfg: c} }

// Endpoints implements protocols.Service.
func (s *service) Endpoints() []protocols.Endpoint {
	return []protocols.Endpoint{{Transport: protocols.TCP, Port: Port}}
}

// params are a host's protocol parameters, from its databus (Conpot's keys) or defaults.
type params struct {
	t1, t2, t3 time.Duration
	k, w       int
	maxASDU    int
	ca         uint16
}

// Bounds of one connection.
const (
	maxQueue     = 256               // ASDUs waiting for the k window; past it the connection closes
	pollInterval = 2 * time.Second   // how often changed points are sent spontaneously
	selectWindow = 30 * time.Second  // a select is valid this long
	maxEventIOAs = 16                // addresses listed per event
	defaultT1    = 15 * time.Second  // IEC 60870-5-104 defaults, and Conpot's template values
	defaultT2    = 10 * time.Second  //
	defaultT3    = 20 * time.Second  //
	maxTimer     = 255 * time.Second // the standard's upper bound
)

func (s *service) params(h *protocols.Host) params {
	p := params{t1: defaultT1, t2: defaultT2, t3: defaultT3, k: 12, w: 8, maxASDU: 249}
	if h == nil || h.Databus == nil {
		return p
	}
	db := h.Databus
	num := func(key string, lo, hi int64) (int64, bool) {
		v, err := db.GetInt(key)
		return v, err == nil && v >= lo && v <= hi
	}
	for key, d := range map[string]*time.Duration{"T_1": &p.t1, "T_2": &p.t2, "T_3": &p.t3} {
		if v, ok := num(key, 1, int64(maxTimer/time.Second)); ok {
			*d = time.Duration(v) * time.Second
		}
	}
	if v, ok := num("k", 1, 32767); ok {
		p.k = int(v)
	}
	if v, ok := num("w", 1, 32767); ok {
		p.w = int(v)
	}
	if p.w > p.k*2/3 && p.k >= 3 { // the standard recommends w at most two thirds of k
		p.w = p.k * 2 / 3
	}
	if v, ok := num("MaxFrameSize", 6+asduHeaderLen+4, 255); ok {
		p.maxASDU = min(int(v)-6, 249)
	}
	p.ca = h.State(Name+".ca", func() any {
		if v, ok := num("CommonAddress", 1, 65534); ok && s.cfg.hasCA {
			return uint16(v)
		}
		return uint16(1 + db.Env().Rand(Name+".ca").IntN(65534))
	}).(uint16)
	return p
}

// conn is one TCP connection's state.
type conn struct {
	svc  *service
	sess *protocols.Session
	nc   net.Conn
	db   *profiles.Databus
	p    params

	active     bool   // STARTDT received
	vs, vr     uint16 // next send and expected receive sequence numbers
	ack        uint16 // oldest send sequence number the peer has not acknowledged
	sentAt     []time.Time
	recvUnack  int       // I-frames received since we last acknowledged
	recvSince  time.Time // when the oldest of them arrived
	testfrAt   time.Time // a TESTFR act of ours awaiting its con
	lastRx     time.Time
	nextPoll   time.Time
	queue      [][]byte
	out        []byte
	objs       []object
	selected   map[ioa]time.Time
	last       map[ioa]float64
	closeCause string
}

// ServeConn implements protocols.StreamService.
func (s *service) ServeConn(ctx context.Context, sess *protocols.Session, nc net.Conn) {
	c := &conn{svc: s, sess: sess, nc: nc, selected: map[ioa]time.Time{}, last: map[ioa]float64{}}
	if sess.Host != nil {
		c.db = sess.Host.Databus
	}
	c.p = s.params(sess.Host)
	c.serve(ctx)
	if c.closeCause != "" {
		sess.Emit(evClose, nil, nil, protocols.F("reason", c.closeCause))
	}
}

// Event types.
const (
	evASDU     = Name + ".asdu"
	evCommand  = Name + ".command"
	evUFrame   = Name + ".u_frame"
	evBadFrame = Name + ".bad_frame"
	evClose    = Name + ".close"
)

func (c *conn) log() *slog.Logger {
	if c.sess.Log != nil {
		return c.sess.Log
	}
	return slog.Default()
}

func (c *conn) serve(ctx context.Context) {
	buf := make([]byte, 2+maxAPDULen+1024)
	n := 0
	c.lastRx = time.Now()
	for ctx.Err() == nil {
		dl := c.deadline()
		if err := c.nc.SetReadDeadline(dl); err != nil {
			return
		}
		m, rerr := c.nc.Read(buf[n:])
		now := time.Now()
		n += m
		if m > 0 {
			c.lastRx = now
		}
		off := 0
		for off < n {
			l, err := nextAPDU(buf[off:n])
			if err != nil {
				c.sess.Emit(evBadFrame, buf[off:n], nil, protocols.F("error", err.Error()))
				c.sess.Request("invalid", true)
				c.closeCause = "framing"
				c.flush()
				return
			}
			if l == 0 {
				break
			}
			if !c.frame(buf[off:off+l], now) {
				c.flush()
				return
			}
			off += l
		}
		n = copy(buf, buf[off:n])
		if rerr != nil {
			if errors.Is(rerr, os.ErrDeadlineExceeded) && !now.Before(dl) {
				if !c.timers(now) {
					c.flush()
					return
				}
				if !c.flush() {
					return
				}
				continue
			}
			if !errors.Is(rerr, net.ErrClosed) {
				c.log().Debug("iec104: connection ends", "err", rerr)
			}
			return
		}
		if !c.timers(now) {
			c.flush()
			return
		}
		c.pump(now)
		if !c.flush() {
			return
		}
	}
}

func (c *conn) flush() bool {
	if len(c.out) == 0 {
		return true
	}
	_, err := c.nc.Write(c.out)
	c.out = c.out[:0]
	return err == nil
}

// deadline is when the next timer fires.
func (c *conn) deadline() time.Time {
	d := c.lastRx.Add(c.p.t3)
	if !c.testfrAt.IsZero() {
		d = c.testfrAt.Add(c.p.t1)
	}
	if len(c.sentAt) > 0 {
		d = earlier(d, c.sentAt[0].Add(c.p.t1))
	}
	if c.recvUnack > 0 {
		d = earlier(d, c.recvSince.Add(c.p.t2))
	}
	if c.active {
		d = earlier(d, c.nextPoll)
	}
	return d
}

func earlier(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// timers runs t1, t2, t3 and the spontaneous poll; false closes the connection.
func (c *conn) timers(now time.Time) bool {
	if len(c.sentAt) > 0 && now.Sub(c.sentAt[0]) >= c.p.t1 {
		c.closeCause = "t1_expired_i_frame"
		return false
	}
	if !c.testfrAt.IsZero() && now.Sub(c.testfrAt) >= c.p.t1 {
		c.closeCause = "t1_expired_testfr"
		return false
	}
	if c.recvUnack > 0 && now.Sub(c.recvSince) >= c.p.t2 {
		c.out = appendS(c.out, c.vr)
		c.recvUnack = 0
	}
	if c.testfrAt.IsZero() && now.Sub(c.lastRx) >= c.p.t3 {
		c.out = appendU(c.out, uTestFRAct)
		c.testfrAt = now
	}
	if c.active && !now.Before(c.nextPoll) {
		c.spontaneous()
		c.nextPoll = now.Add(pollInterval)
		c.pump(now)
	}
	return true
}

// frame handles one APDU; false closes the connection.
func (c *conn) frame(f []byte, now time.Time) bool {
	a, err := parseAPDU(f)
	if err != nil {
		c.sess.Emit(evBadFrame, f, nil, protocols.F("error", err.Error()))
		c.sess.Request("invalid", true)
		c.closeCause = "framing"
		return false
	}
	switch a.Format {
	case formatU:
		return c.uframe(a.U, f, now)
	case formatS:
		c.sess.Request("s_frame", false)
		return c.acked(a.NR)
	}
	if !c.active {
		// IEC 60870-5-104, 5.3: no I-format APDU before STARTDT
		c.sess.Emit(evBadFrame, f, nil, protocols.F("error", "I-format APDU before STARTDT"))
		c.sess.Request("invalid", true)
		c.closeCause = "i_frame_while_stopped"
		return false
	}
	if a.NS != c.vr {
		c.sess.Emit(evBadFrame, f, nil, protocols.F("error", "send sequence number out of order"),
			protocols.F("ns", a.NS), protocols.F("expected", c.vr))
		c.sess.Request("invalid", true)
		c.closeCause = "sequence"
		return false
	}
	if !c.acked(a.NR) {
		return false
	}
	c.vr = (c.vr + 1) % seqMod
	if c.recvUnack == 0 {
		c.recvSince = now
	}
	c.recvUnack++
	start := len(c.out)
	typ, fields := c.asdu(a.ASDU)
	if len(c.queue) > maxQueue {
		c.closeCause = "send_queue_full"
		return false
	}
	c.pump(now)
	// the response is what went out at once; frames the k window holds back are not in it
	c.sess.Emit(typ, f, c.out[start:], fields...)
	if c.recvUnack >= c.p.w {
		c.out = appendS(c.out, c.vr)
		c.recvUnack = 0
	}
	return true
}

// acked takes the peer's receive sequence number; false when it acknowledges frames never
// sent (the connection closes).
func (c *conn) acked(nr uint16) bool {
	d := seqDiff(nr, c.ack)
	if d > len(c.sentAt) {
		c.sess.Emit(evBadFrame, nil, nil, protocols.F("error", "receive sequence number acknowledges unsent frames"),
			protocols.F("nr", nr), protocols.F("sent", c.vs))
		c.closeCause = "sequence"
		return false
	}
	c.sentAt = c.sentAt[d:]
	c.ack = nr
	return true
}

// pump sends queued ASDUs while the k window allows.
func (c *conn) pump(now time.Time) {
	for len(c.queue) > 0 && len(c.sentAt) < c.p.k && c.active {
		c.out = appendI(c.out, c.vs, c.vr, c.queue[0])
		c.queue[0] = nil
		c.queue = c.queue[1:]
		c.vs = (c.vs + 1) % seqMod
		c.sentAt = append(c.sentAt, now)
		c.recvUnack = 0
	}
	if len(c.queue) == 0 {
		c.queue = nil
	}
}

// send queues an ASDU.
func (c *conn) send(asdu []byte) {
	c.queue = append(c.queue, asdu)
}

func (c *conn) uframe(f byte, raw []byte, now time.Time) bool {
	c.sess.Request(uName(f), false)
	var resp []byte
	switch f {
	case uStartDTAct:
		resp = appendU(nil, uStartDTCon)
		if !c.active {
			c.active = true
			c.snapshot()
			c.nextPoll = now.Add(pollInterval)
		}
	case uStopDTAct:
		if c.recvUnack > 0 {
			resp = appendS(resp, c.vr)
			c.recvUnack = 0
		}
		resp = appendU(resp, uStopDTCon)
		c.active = false
		c.queue = nil
	case uTestFRAct:
		resp = appendU(nil, uTestFRCon)
	case uTestFRCon:
		c.testfrAt = time.Time{}
		return true // the answer to our keep-alive: not an event
	}
	c.out = append(c.out, resp...)
	c.sess.Emit(evUFrame, raw, resp, protocols.F("function", uName(f)))
	return true
}

// snapshot records the values the client is taken to know, so only later changes are
// sent spontaneously.
func (c *conn) snapshot() {
	for _, t := range giOrder {
		for _, p := range c.svc.cfg.monitored[t] {
			c.last[p.addr] = c.value(p)
		}
	}
}

// spontaneous queues the monitored points whose value changed since last reported.
func (c *conn) spontaneous() {
	for _, t := range giOrder {
		for _, p := range c.svc.cfg.monitored[t] {
			v := c.value(p)
			if old, ok := c.last[p.addr]; ok && old == v {
				continue
			}
			c.last[p.addr] = v
			a := appendASDUHeader(nil, t, 1, cotSpontaneous, false, 0, c.p.ca)
			a = append(a, p.addr[:]...)
			c.send(appendElement(a, t, v))
		}
	}
}

// value reads a point's value from the databus.
func (c *conn) value(p *point) float64 {
	if c.db == nil {
		return 0
	}
	v, err := c.db.Get(p.key)
	if err != nil {
		return 0
	}
	f, _ := toFloat(v)
	return f
}

// asdu answers one received ASDU and returns its event type and fields.
func (c *conn) asdu(raw []byte) (string, []protocols.Field) {
	a, err := parseASDU(raw, c.objs)
	c.objs = a.Objects
	fields := []protocols.Field{protocols.F("type_id", raw[0]), protocols.F("cot", raw[2]&0x3F),
		protocols.F("common_address", binary.LittleEndian.Uint16(raw[4:]))}
	typ := evASDU
	result := ""
	switch {
	case errors.Is(err, errUnknownType):
		c.send(mirror(nil, raw, cotUnknownType, true))
		result = "unknown_type"
	case err != nil:
		// a malformed ASDU of a known type: no confirmation is possible
		result = "malformed"
		fields = append(fields, protocols.F("error", err.Error()))
	case a.CA != c.p.ca && !(a.CA == 0xFFFF && (a.Type == cICNA || a.Type == cCINA || a.Type == cCSNA)):
		c.send(mirror(nil, raw, cotUnknownCA, true))
		result = "unknown_common_address"
	default:
		if isCommand(foldCommand(a.Type)) || a.Type == cCSNA {
			typ = evCommand
		}
		result = c.dispatch(&a, raw)
	}
	var ioas []string
	var vals []any
	for i, o := range a.Objects {
		if i == maxEventIOAs {
			break
		}
		ioas = append(ioas, o.IOA.String())
		if v, ok := commandValue(a.Type, o.Element); ok {
			vals = append(vals, v)
		}
	}
	if ioas != nil {
		fields = append(fields, protocols.F("ioas", ioas))
	}
	if vals != nil {
		fields = append(fields, protocols.F("values", vals))
	}
	fields = append(fields, protocols.F("result", result))
	c.sess.Request(typeName(raw[0]), result != "act_con" && result != "act_term" && result != "read")
	return typ, fields
}

// foldCommand maps time-tagged commands (58-63) onto 45-50.
func foldCommand(t byte) byte {
	if t >= cSCTA && t <= cSETC {
		return t - (cSCTA - cSCNA)
	}
	return t
}

// typeName names a type for metrics (a fixed set).
func typeName(t byte) string {
	switch t {
	case cSCNA, cSCTA:
		return "single_command"
	case cDCNA, cDCNA + 13:
		return "double_command"
	case cRCNA, cRCNA + 13:
		return "regulating_step_command"
	case cSENA, cSENA + 13, cSENB, cSENB + 13, cSENC, cSETC:
		return "set_point_command"
	case cICNA:
		return "interrogation"
	case cCINA:
		return "counter_interrogation"
	case cRDNA:
		return "read"
	case cCSNA:
		return "clock_sync"
	case cTSTA:
		return "test_command"
	}
	return "other"
}

// dispatch runs a well-formed ASDU addressed to this station and returns the outcome.
func (c *conn) dispatch(a *asdu, raw []byte) string {
	cmd := foldCommand(a.Type)
	switch {
	case a.Type == cICNA:
		return c.interrogation(a, raw)
	case a.Type == cCINA:
		return c.counterInterrogation(a, raw)
	case a.Type == cRDNA:
		return c.read(a, raw)
	case a.Type == cCSNA || a.Type == cTSTA:
		if a.COT != cotActivation || a.N != 1 {
			c.send(mirror(nil, raw, cotUnknownCause, true))
			return "unknown_cause"
		}
		c.send(c.ownCA(mirror(nil, raw, cotActCon, false)))
		return "act_con"
	case isCommand(cmd):
		return c.command(a, raw, cmd)
	}
	// monitored types in the control direction, end of initialisation
	c.send(mirror(nil, raw, cotUnknownType, true))
	return "unknown_type"
}

// ownCA writes this station's common address into a mirrored ASDU (an answer to a
// broadcast names the station).
func (c *conn) ownCA(b []byte) []byte {
	binary.LittleEndian.PutUint16(b[4:], c.p.ca)
	return b
}

// interrogation answers a (group) interrogation: act con, the points of every type packed
// into ASDUs of at most maxASDU octets, act term.
func (c *conn) interrogation(a *asdu, raw []byte) string {
	if a.COT != cotActivation && a.COT != cotDeactivation || a.N != 1 {
		c.send(mirror(nil, raw, cotUnknownCause, true))
		return "unknown_cause"
	}
	o := a.Objects[0]
	qoi := o.Element[0]
	if o.IOA != (ioa{}) {
		c.send(mirror(nil, raw, cotUnknownIOA, false))
		return "unknown_ioa"
	}
	if qoi < 20 || qoi > 36 {
		c.send(c.ownCA(mirror(nil, raw, cotActCon, true)))
		return "neg_con"
	}
	if a.COT == cotDeactivation {
		c.send(c.ownCA(mirror(nil, raw, cotDeactCon, false)))
		return "deact_con"
	}
	c.send(c.ownCA(mirror(nil, raw, cotActCon, false)))
	group := int(qoi) - 20
	for _, t := range giOrder {
		var pts []*point
		for _, p := range c.svc.cfg.monitored[t] {
			if group == 0 || p.group == group {
				pts = append(pts, p)
			}
		}
		c.pack(t, qoi, pts)
	}
	c.send(c.ownCA(mirror(nil, raw, cotActTerm, false)))
	return "act_term"
}

// pack queues pts of type t with cause cot, as many per ASDU as fit.
func (c *conn) pack(t, cot byte, pts []*point) {
	es, _ := elementSize(t)
	per := min((c.p.maxASDU-asduHeaderLen)/(ioaLen+es), maxObjects)
	for len(pts) > 0 {
		n := min(per, len(pts))
		b := appendASDUHeader(make([]byte, 0, asduHeaderLen+n*(ioaLen+es)), t, n, cot, false, 0, c.p.ca)
		for _, p := range pts[:n] {
			b = append(b, p.addr[:]...)
			v := c.value(p)
			c.last[p.addr] = v
			b = appendElement(b, t, v)
		}
		c.send(b)
		pts = pts[n:]
	}
}

// counterInterrogation answers C_CI_NA_1 with the integrated totals.
func (c *conn) counterInterrogation(a *asdu, raw []byte) string {
	if a.COT != cotActivation || a.N != 1 {
		c.send(mirror(nil, raw, cotUnknownCause, true))
		return "unknown_cause"
	}
	qcc := a.Objects[0].Element[0]
	rqt := qcc & 0x3F
	if rqt < 1 || rqt > 5 {
		c.send(c.ownCA(mirror(nil, raw, cotActCon, true)))
		return "neg_con"
	}
	c.send(c.ownCA(mirror(nil, raw, cotActCon, false)))
	if qcc>>6 == 0 { // read, no freeze
		cot := cotCounter
		if rqt < 5 {
			cot += rqt
		}
		var pts []*point
		for _, p := range c.svc.cfg.monitored[mITNA] {
			if rqt == 5 || p.group == int(rqt) {
				pts = append(pts, p)
			}
		}
		c.pack(mITNA, cot, pts)
	}
	c.send(c.ownCA(mirror(nil, raw, cotActTerm, false)))
	return "act_term"
}

// read answers C_RD_NA_1 with the point's value.
func (c *conn) read(a *asdu, raw []byte) string {
	if a.COT != cotRequest || a.N != 1 {
		c.send(mirror(nil, raw, cotUnknownCause, true))
		return "unknown_cause"
	}
	p := c.svc.cfg.points[a.Objects[0].IOA]
	if p == nil || isCommand(p.typ) {
		c.send(mirror(nil, raw, cotUnknownIOA, false))
		return "unknown_ioa"
	}
	b := appendASDUHeader(nil, p.typ, 1, cotRequest, false, 0, c.p.ca)
	b = append(b, p.addr[:]...)
	c.send(appendElement(b, p.typ, c.value(p)))
	return "read"
}

// command runs a single, double, regulating-step or set-point command.
func (c *conn) command(a *asdu, raw []byte, cmd byte) string {
	if a.COT != cotActivation && a.COT != cotDeactivation || a.N != 1 {
		c.send(mirror(nil, raw, cotUnknownCause, true))
		return "unknown_cause"
	}
	o := a.Objects[0]
	p := c.svc.cfg.points[o.IOA]
	if p == nil {
		// Conpot's verified answer: cause 47 without the P/N bit
		c.send(mirror(nil, raw, cotUnknownIOA, false))
		return "unknown_ioa"
	}
	if p.typ != cmd {
		c.send(mirror(nil, raw, cotActCon, true))
		return "neg_con"
	}
	if a.COT == cotDeactivation {
		delete(c.selected, p.addr)
		c.send(mirror(nil, raw, cotDeactCon, false))
		return "deact_con"
	}
	e := o.Element
	qual := e[0]
	switch cmd {
	case cSENA, cSENB:
		qual = e[2]
	case cSENC:
		qual = e[4]
	}
	now := time.Now()
	if qual&0x80 != 0 { // select
		if len(c.selected) >= len(c.svc.cfg.points) {
			clear(c.selected)
		}
		c.selected[p.addr] = now
		c.send(mirror(nil, raw, cotActCon, false))
		return "select_con"
	}
	selAt, selected := c.selected[p.addr]
	delete(c.selected, p.addr)
	if p.sbo && (!selected || now.Sub(selAt) > selectWindow) {
		c.send(mirror(nil, raw, cotActCon, true))
		return "neg_con_not_selected"
	}
	v, _ := commandValue(cmd, e)
	if (cmd == cDCNA || cmd == cRCNA) && (v == 0 || v == 3) {
		c.send(mirror(nil, raw, cotActCon, true)) // not permitted
		return "neg_con"
	}
	c.send(mirror(nil, raw, cotActCon, false))
	if c.db != nil {
		c.db.Set(p.key, storeValue(cmd, v))
		if r := p.rel; r != nil {
			nv := v
			cot := cotRemoteCommand
			switch cmd {
			case cRCNA: // one step lower (1) or higher (2)
				nv = c.value(r) + 2*v - 3
				nv = math.Max(-64, math.Min(63, nv))
			case cSENA, cSENB, cSENC:
				cot = cotSpontaneous
			}
			c.db.Set(r.key, storeValue(r.typ, nv))
			c.last[r.addr] = nv
			b := appendASDUHeader(nil, r.typ, 1, cot, false, 0, c.p.ca)
			b = append(b, r.addr[:]...)
			c.send(appendElement(b, r.typ, nv))
		}
	}
	c.send(mirror(nil, raw, cotActTerm, false))
	return "act_term"
}

// commandValue decodes the value a command (or time-tagged command) carries.
func commandValue(t byte, e []byte) (float64, bool) {
	switch foldCommand(t) {
	case cSCNA:
		return float64(e[0] & 1), true
	case cDCNA, cRCNA:
		return float64(e[0] & 3), true
	case cSENA:
		return float64(int16(binary.LittleEndian.Uint16(e))) / 32768, true
	case cSENB:
		return float64(int16(binary.LittleEndian.Uint16(e))), true
	case cSENC:
		return float64(math.Float32frombits(binary.LittleEndian.Uint32(e))), true
	}
	return 0, false
}

// storeValue is the databus form of a value of type t: integers for the discrete types.
func storeValue(t byte, v float64) any {
	switch t {
	case mMENA, mMENC, cSENA, cSENC:
		return v
	}
	return int64(v)
}
