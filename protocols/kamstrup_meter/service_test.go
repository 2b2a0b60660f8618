package kamstrupmeter

import (
	"bytes"
	"context"
	"crypto/rand"
	"net"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// TestConpotExchange is Conpot's test_kamstrup_meter over TCP against the kamstrup_382
// template: the register 1033 request gets the meter's framed reply, byte for byte.
func TestConpotExchange(t *testing.T) {
	m := startMeter(t, true) // with the real reply delay
	c := m.dial(t)
	c.send(unhex(t, req1033))
	got := c.read()
	if want := unhex(t, rsp1033); !bytes.Equal(got, want) {
		t.Fatalf("reply % x, want % x", got, want)
	}
	if !bytes.Contains(got, []byte{0x40}) || !bytes.Contains(got, []byte{0x3f}) || !bytes.Contains(got, []byte{0x0d}) {
		t.Fatal("reply lacks 0x40, 0x3F or 0x0D")
	}
	ev := m.Events.OfType(evRequest)
	if len(ev) != 1 || !bytes.Equal(ev[0].Request, unhex(t, req1033)) || !bytes.Equal(ev[0].Response, got) {
		t.Fatalf("events %+v", ev)
	}
}

// TestEveryRegister reads every register of the template and checks the record's units,
// length and sign/exponent byte against the template, and its value against the databus.
func TestEveryRegister(t *testing.T) {
	m := startMeter(t, false)
	c := m.dial(t)
	ids := make([]int, 0, len(m.svc.cfg.registers))
	for id := range m.svc.cfg.registers {
		ids = append(ids, int(id))
	}
	sort.Ints(ids)
	if len(ids) != 124 {
		t.Fatalf("template has %d registers, Conpot's has 124", len(ids))
	}
	live := map[string]bool{}
	for _, k := range (&Simulator{}).Overlays() {
		live[k] = true
	}
	for _, id := range ids {
		r := m.svc.cfg.registers[uint16(id)]
		c.request(0x3f, uint16(id))
		msg, err := ParseFrame(c.read())
		if err != nil {
			t.Fatal(err)
		}
		regs, err := ParseRegisters(msg.Data)
		if err != nil || len(regs) != 1 {
			t.Fatalf("register %d: %+v %v", id, regs, err)
		}
		g := regs[0]
		if g.ID != uint16(id) || g.Units != r.units || len(g.Value) != r.length || g.SiEx != r.siex {
			t.Fatalf("register %d: got %+v, template %+v", id, g, r)
		}
		if live[r.key] {
			continue
		}
		v, _ := m.Host.Databus.Get(r.key)
		if want := EncodeValue(v, r.length); !bytes.Equal(g.Value, want) {
			t.Fatalf("register %d value % x, want % x", id, g.Value, want)
		}
	}
}

// TestSeveralRegisters: known registers come back in the order asked, unknown ones are
// left out, and a request for unknown registers only gets the bare command back.
func TestSeveralRegisters(t *testing.T) {
	m := startMeter(t, false)
	c := m.dial(t)
	c.request(0x3f, 1001, 9999, 1054, 1)
	msg, err := ParseFrame(c.read())
	if err != nil {
		t.Fatal(err)
	}
	regs, _ := ParseRegisters(msg.Data)
	var got []uint16
	for _, r := range regs {
		got = append(got, r.ID)
	}
	if !slices.Equal(got, []uint16{1001, 1054, 1}) || msg.Addr != 0x3f {
		t.Fatalf("registers %v from %#x", got, msg.Addr)
	}
	if v := new(bytesInt).set(regs[0].Value); v != 15085488 {
		t.Fatalf("serial number register %d", v)
	}
	c.request(0x3f, 9999, 7)
	raw := c.read()
	if want := AppendFrame(nil, ResponseMagic, Message{Addr: 0x3f, Cmd: CmdGetRegister, Data: []byte{}}); !bytes.Equal(raw, want) {
		t.Fatalf("unknown registers: % x, want % x", raw, want)
	}
}

type bytesInt int64

func (b *bytesInt) set(v []byte) int64 {
	var n int64
	for _, x := range v {
		n = n<<8 | int64(x)
	}
	return n
}

// TestSilentCases: a wrong communication address, a CRC failure, an unknown command and a
// malformed GetRegister get no reply and leave the connection open: the next good request
// gets the next reply.
func TestSilentCases(t *testing.T) {
	m := startMeter(t, false)
	c := m.dial(t)
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"other address", AppendFrame(nil, RequestMagic, Message{Addr: 0x40, Cmd: CmdGetRegister, Data: AppendGetRegister(nil, 1033)})},
		{"bad crc", unhex(t, "80 3f 10 02 00 01 55 a1 0d")},
		{"unknown command", AppendFrame(nil, RequestMagic, Message{Addr: 0x3f, Cmd: 0x77, Data: []byte{1, 2, 3}})},
		{"put register", AppendFrame(nil, RequestMagic, Message{Addr: 0x3f, Cmd: CmdPutRegister, Data: []byte{0x04, 0x1e, 0, 0}})},
		{"count mismatch", AppendFrame(nil, RequestMagic, Message{Addr: 0x3f, Cmd: CmdGetRegister, Data: []byte{3, 0x04, 0x1e}})},
		{"escape at end", unhex(t, "80 3f 10 1b 0d")},
	} {
		c.send(tc.b)
		c.request(0x3f, 1055)
		msg, err := ParseFrame(c.read())
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if regs, _ := ParseRegisters(msg.Data); len(regs) != 1 || regs[0].ID != 1055 {
			t.Fatalf("%s: the reply after it is %+v", tc.name, regs)
		}
	}
	if n := len(m.Events.OfType(evBadFrame)); n != 2 {
		t.Errorf("%d bad_frame events, want 2 (CRC, escape)", n)
	}
}

func TestGetSerialNo(t *testing.T) {
	m := startMeter(t, false)
	c := m.dial(t)
	c.send(AppendFrame(nil, RequestMagic, Message{Addr: 0x3f, Cmd: CmdGetSerialNo}))
	msg, err := ParseFrame(c.read())
	if err != nil || msg.Cmd != CmdGetSerialNo || !bytes.Equal(msg.Data, EncodeValue(int64(15085488), 4)) {
		t.Fatalf("% x %v", msg.Data, err)
	}
}

// TestReboot: a reboot closes open meter connections and closes new ones until it is over.
func TestReboot(t *testing.T) {
	m := startMeter(t, false)
	c := m.dial(t)
	c.request(0x3f, 1054)
	c.read()
	now := time.Now()
	Reboot(m.Host, now)
	if !c.closed() {
		t.Fatal("open connection survived the reboot")
	}
	if !Rebooting(m.Host, now.Add(RebootTime/2)) || Rebooting(m.Host, now.Add(RebootTime)) {
		t.Fatal("reboot window wrong")
	}
	m.skew.Store(int64(RebootTime/2 - time.Since(now)))
	c2 := m.dial(t)
	c2.request(0x3f, 1054)
	if !c2.closed() {
		t.Fatal("connection during the reboot was answered")
	}
	if len(m.Events.OfType(evRefused)) == 0 {
		t.Fatal("no rebooting event")
	}
	m.skew.Store(int64(RebootTime))
	c3 := m.dial(t)
	c3.request(0x3f, 1054)
	if _, err := ParseFrame(c3.read()); err != nil {
		t.Fatal(err)
	}
}

// TestHostileInput: garbage, oversized frames and a client leaving mid-frame neither
// crash nor stall the meter, and it still answers.
func TestHostileInput(t *testing.T) {
	m := startMeter(t, false)
	junk := make([]byte, 64<<10)
	rand.Read(junk)
	for i := range junk { // no frame ends, so nothing in it is a request
		if junk[i] == EOT {
			junk[i] = 0
		}
	}
	c := m.dial(t)
	c.send(junk)
	c.send(append([]byte{RequestMagic}, bytes.Repeat([]byte{0x55}, 3*MaxFrame)...))
	c.send([]byte{EOT})
	c.request(0x3f, 1056)
	msg, err := ParseFrame(c.read())
	if err != nil || len(msg.Data) == 0 {
		t.Fatalf("after junk: %v", err)
	}
	if len(m.Events.OfType(evBadFrame)) == 0 {
		t.Error("oversized frame not reported")
	}
	// Mid-frame hang-up.
	c2 := m.dial(t)
	c2.send(unhex(t, "80 3f 10 01"))
	c2.c.Close()
	// Every register id at once: bounded reply.
	ids := make([]uint16, 255)
	for i := range ids {
		ids[i] = uint16(1000 + i)
	}
	c3 := m.dial(t)
	c3.request(0x3f, ids...)
	if raw := c3.read(); len(raw) > 2*(4+255*21) {
		t.Fatalf("reply of %d bytes", len(raw))
	}
	if m.Panics.Load() != 0 {
		t.Fatal("handler panicked")
	}
}

func TestConpotEvents(t *testing.T) {
	e := &protocols.Event{Type: evRequest, Request: unhex(t, req1033), Response: unhex(t, rsp1033)}
	got := protocol{}.ConpotEvents(e)
	if len(got) != 1 || got[0].DataType != "kamstrup_protocol" || got[0].Request != "b'803f10010409186d0d'" || got[0].Response != "b'403f100409160443000000004a410d'" {
		t.Fatalf("%+v", got)
	}
	silent := protocol{}.ConpotEvents(&protocols.Event{Type: evRequest, Request: []byte{1}})
	if len(silent) != 1 || silent[0].Response != nil {
		t.Fatalf("unanswered: %+v", silent)
	}
	if len(protocol{}.ConpotEvents(&protocols.Event{Type: evBadFrame})) != 0 {
		t.Fatal("bad frames are not Conpot request documents")
	}
}

// TestBurstBounded: frames pipelined in one read are served up to maxBurst; the rest are
// dropped and reported, so a flood cannot queue minutes of reply delays.
func TestBurstBounded(t *testing.T) {
	p := loadTemplate(t)
	svc := newService(mustConfig(t, p))
	svc.sleep = func(ctx context.Context, _ time.Duration) bool { return ctx.Err() == nil }
	h := hostFor(p)
	rec := &protocoltest.Recorder{}
	sess := testSession(h)
	sess.Events = rec
	srv, cl := net.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); svc.ServeConn(ctx, sess, srv) }()
	replies := make(chan []byte, 64)
	go func() {
		sc := Scanner{Start: ResponseMagic}
		buf := make([]byte, 4096)
		for {
			n, err := cl.Read(buf)
			for _, f := range sc.Feed(buf[:n]) {
				replies <- f.Raw
			}
			if err != nil {
				close(replies)
				return
			}
		}
	}()
	var burst []byte
	for range 20 {
		burst = append(burst, unhex(t, req1033)...)
	}
	cl.Write(burst)
	cl.Write(AppendFrame(nil, RequestMagic, Message{Addr: 0x3f, Cmd: CmdGetRegister, Data: AppendGetRegister(nil, 1056)}))
	n := 0
	for r := range replies {
		m, err := ParseFrame(r)
		if err != nil {
			t.Fatal(err)
		}
		if regs, _ := ParseRegisters(m.Data); len(regs) == 1 && regs[0].ID == 1056 {
			break
		}
		n++
	}
	cl.Close()
	<-done
	if n != maxBurst {
		t.Fatalf("%d replies to a burst of 20, want %d", n, maxBurst)
	}
	ev := rec.OfType(evOverrun)
	if len(ev) != 1 || ev[0].Fields[0].Value != 20-maxBurst {
		t.Fatalf("overrun events %+v", ev)
	}
}
