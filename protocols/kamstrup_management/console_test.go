package kamstrupmgmt

import (
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols"
	kamstrupmeter "github.com/icsnare/icsnare/protocols/kamstrup_meter"
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// TestConsoleSession: Conpot's management test over TCP — banner, help, a command — with
// the real 0.25 s reply delay.
func TestConsoleSession(t *testing.T) {
	c := startConsole(t, true)
	cl := c.dial(t)
	mac := HostMAC("00:13:EA:00:00:00", c.Host.Seed)
	cl.expect("\r\nWelcome...\r\nConnected to [" + mac + "]\r\n")
	cl.send("H\r\n")
	cl.expect(menu)
	cl.send("H !SC\r\n")
	cl.expect(helpSC)
	cl.send("!AC 0 2 192.168.1.211\r\n")
	cl.expect("\r\nOK\r\n\r\nDISABLED \r\n [1] 0.0.0.0\r\n [2] 192.168.1.211\r\n [3] 0.0.0.0\r\n [4] 0.0.0.0\r\n [5] 0.0.0.0\r\n")
	ev := c.Events.OfType(evCommand)
	if len(ev) != 3 || string(ev[0].Request) != "H\r\n" || string(ev[0].Response) != menu || !ev[0].Text {
		t.Fatalf("events %+v", ev)
	}
}

// TestConsoleInput: line endings of every kind, telnet negotiation, empty lines and
// over-long lines.
func TestConsoleInput(t *testing.T) {
	c := startConsole(t, false)
	cl := c.dial(t)
	cl.readN(len(Banner(databusStore{db: c.Host.Databus, seed: c.Host.Seed})))
	gv := "\r\nSoftware Version: 5.5 (E5)\r\n"
	// A telnet client's negotiation, then commands ending in CR LF, LF, CR and CR NUL.
	cl.send("\xff\xfb\x01\xff\xfd\x03\xff\xfa\x18\x00xterm\xff\xf0!GV\r\n")
	cl.expect(gv)
	cl.send("!gv\n!GV\r!GV\r\x00\r\n\r\n")
	cl.expect(gv + gv + gv)
	// Pieces of a line arrive apart.
	for _, p := range []string{"!", "G", "V", "\r", "\n"} {
		cl.send(p)
	}
	cl.expect(gv)
	cl.send(strings.Repeat("A", 5000) + "\r\n!GV\r\n")
	cl.expect(notFound + gv)
	cl.send("Q\r\n")
	if !cl.closed() {
		t.Fatal("Q did not close the connection")
	}
}

// TestConsolePersistsAndReboots: settings written on one connection are there on the
// next; !RR closes the console and makes the host's meter restart.
func TestConsolePersistsAndReboots(t *testing.T) {
	c := startConsole(t, false)
	cl := c.dial(t)
	cl.readN(len(Banner(databusStore{db: c.Host.Databus, seed: c.Host.Seed})))
	cl.send("!SD pumpstation\r\n")
	cl.expect("\r\nOK")
	if !kamstrupmeter.Rebooting(c.Host, time.Now()) {
		t.Fatal("!SD did not restart the meter")
	}
	cl.send("!RR\r\n")
	if !cl.closed() {
		t.Fatal("!RR did not close the connection")
	}
	if !kamstrupmeter.Rebooting(c.Host, time.Now()) {
		t.Fatal("!RR did not restart the meter")
	}
	if v, _ := c.Host.Databus.GetInt("reboot_signal"); v != 1 {
		t.Fatalf("reboot_signal = %d", v)
	}
	cl2 := c.dial(t)
	cl2.readN(len(Banner(databusStore{db: c.Host.Databus, seed: c.Host.Seed})))
	cl2.send("!GC\r\n")
	if got := cl2.readN(len("Device Name         : pumpstation\r\n")); got != "Device Name         : pumpstation\r\n" {
		t.Fatalf("!GC on the next connection: %q", got)
	}
	ev := c.Events.OfType(evCommand)
	var rr *protocols.Event
	for _, e := range ev {
		if string(e.Request) == "!RR\r\n" {
			rr = e
		}
	}
	if rr == nil || rr.Response != nil {
		t.Fatalf("!RR event %+v", rr)
	}
}

func TestRequestTimeout(t *testing.T) {
	s := newService()
	if got := s.RequestTimeout(15 * time.Second); got != minRequestTimeout {
		t.Fatalf("%v", got)
	}
	if got := s.RequestTimeout(time.Hour); got != time.Hour {
		t.Fatalf("%v", got)
	}
}

func TestConpotEvents(t *testing.T) {
	got := protocol{}.ConpotEvents(&protocols.Event{Type: evCommand, Request: []byte("!GV\r\n"), Response: []byte("\r\nSoftware Version: 5.5 (E5)\r\n"), Text: true})
	if len(got) != 1 || got[0].DataType != "kamstrup_management_protocol" || got[0].Request != "!GV\r\n" || got[0].Response != "\r\nSoftware Version: 5.5 (E5)\r\n" {
		t.Fatalf("%+v", got)
	}
	if q := (protocol{}).ConpotEvents(&protocols.Event{Type: evCommand, Request: []byte("Q\r\n")}); len(q) != 1 || q[0].Response != nil {
		t.Fatalf("Q: %+v", q)
	}
}

// TestHostileConsole: binary junk, an endless line and a flood of lines leave the console
// bounded and answering.
func TestHostileConsole(t *testing.T) {
	c := startConsole(t, false)
	cl := c.dial(t)
	cl.readN(len(Banner(databusStore{db: c.Host.Databus, seed: c.Host.Seed})))
	junk := bytes.Repeat([]byte{0xff, 0xfa, 0x00, 0x80, 0x1b}, 20000) // an unterminated subnegotiation
	cl.send(string(junk))
	cl.send("\xff\xf0" + strings.Repeat("x", 200000) + "\n!GV\n")
	cl.expect(notFound + "\r\nSoftware Version: 5.5 (E5)\r\n")
	var lr LineReader
	lr.Feed(bytes.Repeat([]byte("a"), 1<<20))
	if len(lr.raw) > maxLine || len(lr.text) > maxLine {
		t.Fatalf("line reader holds %d/%d bytes", len(lr.raw), len(lr.text))
	}
	if c.Panics.Load() != 0 {
		t.Fatal("panic")
	}
}

// TestBurstBounded: lines pasted in one read are answered up to maxBurst; the rest are
// dropped and reported.
func TestBurstBounded(t *testing.T) {
	svc := newService()
	svc.sleep = func(ctx context.Context, _ time.Duration) bool { return ctx.Err() == nil }
	st, h := freshStore(t)
	rec := &protocoltest.Recorder{}
	sess := &protocols.Session{ID: "burst", Protocol: Name, Transport: protocols.TCP, Host: h, Events: rec, MaxPayload: 4096}
	srv, cl := net.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); svc.ServeConn(ctx, sess, srv); srv.Close() }()
	out := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(cl)
		out <- string(b)
	}()
	cl.Write([]byte(strings.Repeat("!GV\r\n", 40)))
	cl.Write([]byte("!WM\r\nQ\r\n"))
	got := <-out
	cl.Close()
	<-done
	gv := "\r\nSoftware Version: 5.5 (E5)\r\n"
	if want := Banner(st) + strings.Repeat(gv, maxBurst) + "\r\n\r\nOK\r\n"; got != want {
		t.Fatalf("got %d bytes, %d versions", len(got), strings.Count(got, gv))
	}
	if ev := rec.OfType(evOverrun); len(ev) != 1 || ev[0].Fields[0].Value != 40-maxBurst {
		t.Fatalf("overrun events %+v", ev)
	}
}
