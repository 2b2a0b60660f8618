package kamstrupmeter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"time"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
)

// Event types.
const (
	evRequest  = Name + ".request"   // a frame addressed to the meter, answered or not
	evBadFrame = Name + ".bad_frame" // a frame that failed its CRC or framing
	evRefused  = Name + ".rebooting" // a connection closed because the meter is restarting
	evOverrun  = Name + ".overrun"   // frames dropped because a client sent many at once
)

// service serves one profile's meter section for every host of that profile.
type service struct {
	cfg *config
	// sleep waits the reply delay; tests replace it.
	sleep func(ctx context.Context, d time.Duration) bool
	now   func() time.Time
}

var _ protocols.StreamService = (*service)(nil)

func newService(c *config) *service {
	return &service{cfg: c, sleep: protocols.Sleep, now: time.Now}
}

// Endpoints implements protocols.Service.
func (s *service) Endpoints() []protocols.Endpoint {
	return []protocols.Endpoint{{Transport: protocols.TCP, Port: Port}}
}

// readBuf is the size of one read; frames are reassembled by a Scanner bounded by MaxFrame.
const readBuf = 2048

// maxBurst is how many frames of one read are served; the rest are dropped.
const maxBurst = 8

// ServeConn implements protocols.StreamService.
func (s *service) ServeConn(ctx context.Context, sess *protocols.Session, nc net.Conn) {
	h := sess.Host
	if Rebooting(h, s.now()) {
		sess.Emit(evRefused, nil, nil)
		return
	}
	// A reboot closes the connection, as Conpot's meter server stops and restarts.
	reboot := rebootSignal(h)
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-reboot:
			nc.Close()
		case <-ctx.Done():
		case <-done:
		}
	}()
	var db *profiles.Databus
	if h != nil {
		db = h.Databus
	}
	rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	sc := Scanner{Start: RequestMagic}
	buf := make([]byte, readBuf)
	for ctx.Err() == nil {
		n, rerr := nc.Read(buf)
		frames := sc.Feed(buf[:n])
		if len(frames) > maxBurst {
			// A meter answers one telegram at a time; what a client pipelines past a few
			// is lost, as on the module's serial line, so a flood cannot queue minutes of
			// reply delays.
			sess.Emit(evOverrun, nil, nil, protocols.F("dropped_frames", len(frames)-maxBurst))
			sess.Request("overrun", true)
			frames = frames[:maxBurst]
		}
		for _, f := range frames {
			resp, ok := s.handle(sess, db, f)
			if !ok || resp == nil {
				continue
			}
			if d := s.delay(rng); !s.sleep(ctx, d) {
				return
			}
			if Rebooting(h, s.now()) {
				return
			}
			if _, err := nc.Write(resp); err != nil {
				return
			}
		}
		if rerr != nil {
			if !errors.Is(rerr, net.ErrClosed) && !errors.Is(rerr, os.ErrDeadlineExceeded) {
				logger(sess).Debug("kamstrup_meter: connection ends", "err", rerr)
			}
			return
		}
	}
}

func logger(sess *protocols.Session) *slog.Logger {
	if sess.Log != nil {
		return sess.Log
	}
	return slog.Default()
}

// delay draws the reply delay.
func (s *service) delay(r *rand.Rand) time.Duration {
	lo, hi := s.cfg.delayMin, s.cfg.delayMax
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(r.Int64N(int64(hi-lo)+1))
}

// handle answers one frame. It returns the response frame (nil for none) and false when
// the frame was not a request to this meter's address at all.
func (s *service) handle(sess *protocols.Session, db *profiles.Databus, f Frame) ([]byte, bool) {
	if f.Err != nil {
		sess.Emit(evBadFrame, f.Raw, nil, protocols.F("error", f.Err.Error()))
		sess.Request("too_long", true)
		return nil, false
	}
	m, err := ParseFrame(f.Raw)
	if err != nil {
		fields := []protocols.Field{protocols.F("error", err.Error())}
		if errors.Is(err, ErrCRC) {
			fields = append(fields, protocols.F("address", int(m.Addr)), protocols.F("command", int(m.Cmd)))
		}
		sess.Emit(evBadFrame, f.Raw, nil, fields...)
		sess.Request("invalid", true)
		return nil, false
	}
	fields := []protocols.Field{protocols.F("address", int(m.Addr)), protocols.F("command", int(m.Cmd)), protocols.F("command_name", commandName(m.Cmd))}
	if m.Addr != s.cfg.addr {
		// Another device's address on a shared line: a meter stays silent.
		sess.Emit(evRequest, f.Raw, nil, append(fields, protocols.F("ignored", "address"))...)
		sess.Request("other_address", false)
		return nil, false
	}
	var data []byte
	switch m.Cmd {
	case CmdGetRegister:
		ids, err := ParseGetRegister(m.Data)
		if err != nil {
			sess.Emit(evRequest, f.Raw, nil, append(fields, protocols.F("error", err.Error()))...)
			sess.Request("get_register", true)
			return nil, true
		}
		data = s.registers(db, ids)
		fields = append(fields, protocols.F("registers", idList(ids)))
	case CmdGetSerialNo:
		if len(m.Data) != 0 {
			break
		}
		data = EncodeValue(getValue(db, "register_1001"), 4)
	}
	if data == nil {
		// Commands this meter does not serve (or malformed ones) get no answer: the 382
		// answers only telegrams it understands, and the client times out.
		sess.Emit(evRequest, f.Raw, nil, append(fields, protocols.F("ignored", "command"))...)
		sess.Request("unsupported", false)
		return nil, true
	}
	resp := AppendFrame(nil, ResponseMagic, Message{Addr: s.cfg.addr, Cmd: m.Cmd, Data: data})
	sess.Emit(evRequest, f.Raw, resp, fields...)
	sess.Request(commandName(m.Cmd), false)
	return resp, true
}

// registers encodes the records of a GetRegister response: every requested register the
// profile defines, in the order asked; others are left out, as the meter does.
func (s *service) registers(db *profiles.Databus, ids []uint16) []byte {
	out := make([]byte, 0, 1+len(ids)*21)
	for _, id := range ids {
		r, ok := s.cfg.registers[id]
		if !ok {
			continue
		}
		out = AppendRegister(out, RegisterValue{ID: id, Units: r.units, SiEx: r.siex, Value: EncodeValue(getValue(db, r.key), r.length)})
	}
	if len(out) == 0 {
		return []byte{} // the command echoed with no records
	}
	return out
}

func getValue(db *profiles.Databus, key string) any {
	if db == nil {
		return int64(0)
	}
	v, err := db.Get(key)
	if err != nil {
		return int64(0)
	}
	return v
}

func idList(ids []uint16) []int {
	out := make([]int, len(ids))
	for i, id := range ids {
		out[i] = int(id)
	}
	return out
}

// commandName names a command id for events and metrics (a fixed set).
func commandName(c byte) string {
	switch c {
	case CmdGetType:
		return "get_type"
	case CmdGetSerialNo:
		return "get_serial_no"
	case CmdGetRegister:
		return "get_register"
	case CmdPutRegister:
		return "put_register"
	case CmdLogin:
		return "login"
	}
	return fmt.Sprintf("0x%02x", c)
}
