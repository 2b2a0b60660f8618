package guardianast

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/icsnare/icsnare/protocols"
)

// service serves one profile's guardian_ast section for every host of that profile.
type service struct {
	cfg *config
}

var _ protocols.StreamService = (*service)(nil)

func newService(c *config) *service { return &service{cfg: c} }

// Endpoints implements protocols.Service.
func (s *service) Endpoints() []protocols.Endpoint {
	return []protocols.Endpoint{{Transport: protocols.TCP, Port: Port}}
}

// Event types.
const (
	evCommand = Name + ".command" // one command and its reply
	evGarbage = Name + ".garbage" // bytes outside any command (first chunk per connection)
	evSummary = Name + ".summary" // at the end of a connection whose events were summarised
)

// Bounds of one connection.
const (
	readChunk     = 512
	maxGarbageLog = 256 // bytes of non-command input kept in the garbage event
	maxDeliveries = 3   // deliveries per tank in the delivery report
	// maxEvents is how many commands of one connection get an event of their own; set
	// commands always do. Past it, commands are counted in the summary event.
	maxEvents = 256
)

// events counts a connection's command events.
type events struct {
	emitted, suppressed int
}

// ServeConn implements protocols.StreamService. It reads until the peer closes, resets or
// goes idle (the sensor's deadlines); every read error ends the loop, so a reset in the
// middle of a command never spins.
func (s *service) ServeConn(ctx context.Context, sess *protocols.Session, nc net.Conn) {
	var sp Splitter
	var toks []Token
	var ev events
	defer func() {
		if ev.suppressed > 0 {
			sess.Emit(evSummary, nil, nil, protocols.F("events_suppressed", ev.suppressed))
		}
	}()
	buf := make([]byte, readChunk)
	garbageLogged := false
	quietSet := false
	for ctx.Err() == nil {
		n, err := nc.Read(buf)
		if n > 0 {
			before := sp.Garbage
			toks = sp.Feed(buf[:n], toks[:0])
			if sp.Garbage > before && !garbageLogged {
				garbageLogged = true
				sess.Emit(evGarbage, buf[:min(n, maxGarbageLog)], nil)
				sess.Request(KindGarbage, true)
			}
			if !s.answer(sess, nc, &ev, toks) {
				return
			}
		}
		if err != nil {
			var ne net.Error
			timeout := errors.As(err, &ne) && ne.Timeout()
			if sp.Pending() && (timeout || errors.Is(err, io.EOF)) {
				// The line went quiet or closed with a command unfinished: act on it.
				if !s.answer(sess, nc, &ev, sp.Flush(toks[:0])) {
					return
				}
				if timeout && quietSet {
					quietSet = false
					if nc.SetReadDeadline(time.Time{}) != nil {
						return
					}
					continue
				}
			}
			return
		}
		// An unfinished command waits at most cfg.quiet for each next byte (the sensor's
		// request timeout bounds the whole command).
		if sp.Pending() || quietSet {
			quietSet = sp.Pending()
			var dl time.Time
			if quietSet {
				dl = time.Now().Add(s.cfg.quiet)
			}
			if nc.SetReadDeadline(dl) != nil {
				return
			}
		}
	}
}

// answer handles the commands in toks in order and reports whether the connection is
// still usable.
func (s *service) answer(sess *protocols.Session, nc net.Conn, ev *events, toks []Token) bool {
	for _, t := range toks {
		req := append([]byte{SOH}, t.Cmd...)
		c, err := ParseCommand(t.Cmd)
		if t.TooLong {
			err = fmt.Errorf("command longer than %d bytes", MaxCommand)
		}
		reply := s.reply(sess.Host, c, err)
		fields := []protocols.Field{protocols.F("command", c.Code), protocols.F("kind", c.Kind)}
		if c.Computer {
			fields = append(fields, protocols.F("format", "computer"))
		} else {
			fields = append(fields, protocols.F("format", "display"))
		}
		if err != nil {
			fields = append(fields, protocols.F("error", err.Error()))
		} else if c.Kind == KindSetProduct {
			fields = append(fields, protocols.F("tank", c.Tank), protocols.F("label", string(c.Data)))
		}
		sess.Request(c.Kind, err != nil)
		if ev.emitted < maxEvents || (c.Set && err == nil) {
			ev.emitted++
			sess.EmitText(evCommand, req, reply, fields...)
		} else {
			ev.suppressed++
		}
		if len(reply) > 0 {
			if _, werr := nc.Write(reply); werr != nil {
				return false
			}
		}
	}
	return true
}

// reply computes the answer to one command (nil for none) and applies a set command.
func (s *service) reply(h *protocols.Host, c Command, perr error) []byte {
	f := s.cfg.framing
	if perr != nil || h == nil || c.Tank > s.cfg.tanks || (c.Computer && !c.Set && !HasComputer(c.Kind)) {
		return Error(f, c.Computer)
	}
	st := s.stationFor(h)
	if c.Set {
		label := string(c.Data)
		for n := 1; n <= s.cfg.tanks; n++ {
			if c.Tank == 0 || c.Tank == n {
				st.setProduct(n, label)
			}
		}
		return SetReply(f, c)
	}
	station := s.stationName(h)
	loc := time.UTC
	if s.cfg.localClock {
		loc = stationZone(station)
	}
	snap := s.snapshot(h, st, c, time.Now().In(loc), station)
	if c.Computer {
		return Computer(c, snap)
	}
	return Display(f, c, snap)
}

// snapshot gathers what command c reports.
// now carries the clock's zone; every time in the snapshot is shown in it.
func (s *service) snapshot(h *protocols.Host, st *station, c Command, now time.Time, stationName string) *Snapshot {
	snap := &Snapshot{Now: now, Station: stationName}
	if c.Kind == KindRevision {
		snap.Software, snap.Created = software(h.Seed)
		snap.Created = snap.Created.In(now.Location())
		return snap
	}
	for n := 1; n <= s.cfg.tanks; n++ {
		if c.Tank != 0 && c.Tank != n {
			continue
		}
		r := st.read(n, now)
		snap.Readings = append(snap.Readings, r)
		snap.Alarms = append(snap.Alarms, st.alarms(n, now, r))
		switch c.Kind {
		case KindDelivery:
			snap.Delivery = append(snap.Delivery, st.reportDeliveries(n, now, r.Product))
			for i := range snap.Delivery[len(snap.Delivery)-1] {
				d := &snap.Delivery[len(snap.Delivery)-1][i]
				d.Start, d.End = d.Start.In(now.Location()), d.End.In(now.Location())
			}
		case KindAlarmHistory, KindTankAlarms:
			for _, a := range st.history(n, now, c.Kind == KindAlarmHistory) {
				a.Since = a.Since.In(now.Location())
				snap.History = append(snap.History, a)
			}
		case KindShift:
			snap.ShiftStart = shiftStart(h.Seed, now)
			sr := Reading{Tank: n, Product: r.Product, State: st.tanks[n-1].at(snap.ShiftStart)}
			sr.TCVol = sr.Vol * (1 - tcBeta(r.Product)*(sr.Temp-60))
			snap.Shift = append(snap.Shift, sr)
		}
	}
	return snap
}

// stationName is the databus station_name, or a header drawn from the host's seed.
// tcBeta is the thermal expansion coefficient of the product, per °F.
func tcBeta(product string) float64 {
	if strings.Contains(strings.ToUpper(product), "DIESEL") {
		return 0.00046
	}
	return 0.00069 // gasoline
}

func (s *service) stationName(h *protocols.Host) string {
	if v, err := h.Databus.GetString("station_name"); err == nil {
		return v
	}
	return fmt.Sprintf("STATION %04d", h.Seed%10000)
}

// Software versions of the TLS-350 family's serial interface manual ("through software
// versions 020/126/326/426/520", later 129/329/429 and 133/333/433) and revision letters.
var (
	softwareVersions  = []string{"126", "129", "133", "326", "329", "333", "426", "429", "433"}
	softwareRevisions = []string{"A", "B", "C", "D"}
)

// software returns the console's software version and build time, drawn from the host's
// seed: a fleet runs a handful of releases, so hosts share some, not all.
func software(seed uint64) (string, time.Time) {
	v := softwareVersions[int(unit(seed, 902, 1)*float64(len(softwareVersions)))]
	r := softwareRevisions[int(unit(seed, 902, 2)*float64(len(softwareRevisions)))]
	built := time.Date(2004, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(unit(seed, 902, 3)*10*365*24) * time.Hour)
	return "346330-" + v + "-" + r, built.Truncate(time.Minute)
}

// shiftStart is when the current shift began: one change a day, at a time of the
// station's own between 05:00 and 07:59 on its clock (now's zone).
func shiftStart(seed uint64, now time.Time) time.Time {
	at := time.Duration(5*60+seed%180) * time.Minute
	y, m, d := now.Date()
	start := time.Date(y, m, d, 0, 0, 0, 0, now.Location()).Add(at)
	if start.After(now) {
		start = time.Date(y, m, d-1, 0, 0, 0, 0, now.Location()).Add(at)
	}
	return start
}

// reportDeliveries returns tank n's latest deliveries as the delivery report shows them.
func (st *station) reportDeliveries(n int, now time.Time, product string) []Delivery {
	t := st.tanks[n-1]
	beta := tcBeta(product)
	var out []Delivery
	for _, d := range t.deliveries(now, maxDeliveries) {
		sa, sb := t.ends(d)
		out = append(out, Delivery{
			Start: fromDays(d.start), End: fromDays(d.end),
			StartVol: sa.Vol, StartTC: sa.Vol * (1 - beta*(sa.Temp-60)),
			EndVol: sb.Vol, EndTC: sb.Vol * (1 - beta*(sb.Temp-60)),
			StartWater: sa.Water, EndWater: sb.Water, StartTemp: sa.Temp, EndTemp: sb.Temp,
			StartHeight: sa.Height, EndHeight: sb.Height,
		})
	}
	return out
}
