package guardianast

import (
	"bytes"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// serveOne accepts one connection on a fresh loopback address and serves it; done closes
// when ServeConn returns.
func serveOne(t *testing.T, svc *service, idle time.Duration) (addr string, done chan struct{}, rec *protocoltest.Recorder) {
	t.Helper()
	p := loadConpot(t)
	a := testAddr()
	ln, err := net.Listen("tcp", net.JoinHostPort(a.String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	done = make(chan struct{})
	rec = &protocoltest.Recorder{}
	h := protocoltest.Host(p, a, 3)
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		s := testSession(h, rec)
		svc.ServeConn(t.Context(), s, &protocols.TimeoutConn{Conn: c, Idle: idle, WriteTimeout: 5 * time.Second})
	}()
	return ln.Addr().String(), done, rec
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestResetMidCommand reproduces Conpot issue #564: a scanner that resets (or half-closes)
// the connection in the middle of a command. The handler must return at once, and the
// process must stay near idle afterwards; the CPU used over 3 s after the resets is
// reported and only bounded generously.
func TestResetMidCommand(t *testing.T) {
	svc := configure(t, loadConpot(t))
	for _, x := range []struct {
		name string
		send string
		end  func(*net.TCPConn)
	}{
		{"reset partial inquiry", "\x01I201", func(c *net.TCPConn) { c.SetLinger(0); c.Close() }},
		{"reset partial set", "\x01S60201HALF", func(c *net.TCPConn) { c.SetLinger(0); c.Close() }},
		{"reset after garbage", "GET / HTTP/1.0\r\n", func(c *net.TCPConn) { c.SetLinger(0); c.Close() }},
		{"half-close partial set", "\x01S60202PARTIAL", func(c *net.TCPConn) { c.CloseWrite() }},
		{"close without data", "", func(c *net.TCPConn) { c.Close() }},
	} {
		addr, done, rec := serveOne(t, svc, 30*time.Second)
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if x.send != "" {
			c.Write([]byte(x.send))
			time.Sleep(50 * time.Millisecond)
		}
		x.end(c.(*net.TCPConn))
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: the handler did not return", x.name)
		}
		c.Close()
		if x.name == "half-close partial set" {
			// the unfinished set command was acted on when the line closed
			if evs := rec.OfType(evCommand); len(evs) != 1 || !strings.Contains(string(evs[0].Request), "PARTIAL") {
				t.Errorf("%s: events %+v", x.name, evs)
			}
		}
	}
	before, wall := cpuTime(), time.Now()
	time.Sleep(3 * time.Second)
	used, elapsed := cpuTime()-before, time.Since(wall)
	t.Logf("process CPU over %v after the resets: %v (%.2f%% of one core)", elapsed.Round(time.Millisecond), used, 100*used.Seconds()/elapsed.Seconds())
	if used > elapsed/2 { // a spinning handler would use a whole core
		t.Fatalf("CPU %v over %v after the resets", used, elapsed)
	}
}

// TestHostileInput: junk, overlong commands, binary bytes, a flood of commands and a
// trickled command get the error reply or nothing, never a crash, and the gauge keeps
// answering on the same connection.
func TestHostileInput(t *testing.T) {
	_, srv := serve(t, loadConpot(t), 11)
	c := dial(t, srv)
	for _, x := range []struct{ send, want string }{
		{"GET / HTTP/1.0\r\n\r\n", ""},                                         // no SOH: ignored, as a serial console does
		{"\x00\xff\xfe\x80garbage\r\n", ""},                                    // binary junk
		{"\x01" + strings.Repeat("Z", 5000) + "\r\n", "9999FF1B\n"},            // overlong: one error reply
		{"\x01I20100\x00\r\n", ""},                                             // NUL ends the line: complete inquiry answered below
		{"\x01S60201" + strings.Repeat("L", 40) + "\r\n", "9999FF1B\n"},        // label too long
		{"\x01S60209TANK9\r\n", "9999FF1B\n"},                                  // no tank 9
		{"\x01I20109\r\n", "9999FF1B\n"},                                       // no tank 9
		{"\x01S60201\xe2\x82\xac\r\n", "9999FF1B\n"},                           // not ASCII
		{"\x01i11100\r\n", "\x01" + "9999FF1B" + "\x03"},                       // computer format not rendered for I111
		{"\x01I2\x01I2\x01I2\x01S6020\n", "9999FF1B\n"},                        // restarts
		{strings.Repeat("\x01I99900\n", 50), strings.Repeat("9999FF1B\n", 50)}, // a flood
	} {
		c.send(x.send)
		got := string(c.readFor(300 * time.Millisecond))
		if x.send == "\x01I20100\x00\r\n" {
			if !strings.HasPrefix(got, "\nI20100\n") {
				t.Errorf("%q: %q", x.send, got)
			}
			continue
		}
		if got != x.want {
			t.Errorf("%.40q: got %.80q, want %.80q", x.send, got, x.want)
		}
	}
	// a command trickled a byte at a time is answered once complete
	for _, b := range []byte("\x01I20500") {
		c.send(string([]byte{b}))
		time.Sleep(5 * time.Millisecond)
	}
	if got := c.ask(""); !strings.HasPrefix(got, "\nI20500\n") {
		t.Fatalf("trickled I20500: %q", got)
	}
	if n := len(srv.Events.OfType(evGarbage)); n != 1 {
		t.Errorf("%d garbage events, want the first only", n)
	}
}

// TestSetWithoutLineEnd: a set command sent without a line end is acted on once the line
// is quiet (the profile's quiet_ms, 1 s by default).
func TestSetWithoutLineEnd(t *testing.T) {
	_, srv := serve(t, loadConpot(t), 12)
	c := dial(t, srv)
	c.send("\x01S60203QUIETNAME")
	if got := c.readFor(2500 * time.Millisecond); len(got) != 0 {
		t.Fatalf("set answered %q", got)
	}
	if got := c.ask("\x01I20100"); !strings.Contains(got, "  3  QUIETNAME ") {
		t.Fatalf("inventory:\n%s", got)
	}
}

// TestIdleTimeout: a silent connection is closed by the sensor's idle deadline.
func TestIdleTimeout(t *testing.T) {
	svc := configure(t, loadConpot(t))
	addr, done, _ := serveOne(t, svc, 300*time.Millisecond)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("\x01I20100"))
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("idle connection not closed")
	}
	got, _ := readAll(c)
	if !bytes.HasPrefix(got, []byte("\nI20100\n")) {
		t.Fatalf("reply before the idle close: %q", got)
	}
}

func readAll(c net.Conn) ([]byte, error) {
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var out []byte
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			return out, err
		}
	}
}

// TestEventFlood: a flood of commands on one connection gets full events for the first
// maxEvents and for every set command, then a summary with the count of the others.
func TestEventFlood(t *testing.T) {
	p := loadConpot(t)
	svc := configure(t, p)
	rec := &protocoltest.Recorder{}
	s := testSession(protocoltest.Host(p, testAddr(), 17), rec)
	in := strings.Repeat("\x01I20500", maxEvents+100) + "\x01S60201LAST\n"
	svc.ServeConn(s.Context(), s, &pipeConn{r: bytes.NewReader([]byte(in))})
	cmds, sums := rec.OfType(evCommand), rec.OfType(evSummary)
	if len(cmds) != maxEvents+1 || len(sums) != 1 || sums[0].Fields[0].Value != 100 {
		t.Fatalf("%d command events, summaries %+v", len(cmds), sums)
	}
	if last := cmds[len(cmds)-1]; !strings.Contains(string(last.Request), "LAST") {
		t.Fatalf("the set command's event is missing: %q", last.Request)
	}
	if s.Requests() != int64(maxEvents+101) {
		t.Fatalf("%d requests counted", s.Requests())
	}
}

// TestSlowTypist: a set command typed slower than a byte per quiet period's fraction is
// taken whole; the quiet period runs from the last byte.
func TestSlowTypist(t *testing.T) {
	_, srv := serve(t, loadConpot(t), 20)
	c := dial(t, srv)
	for _, b := range []byte("\x01S60204TYPED") {
		c.send(string([]byte{b}))
		time.Sleep(100 * time.Millisecond) // 1.2 s in all, more than the 1 s quiet period
	}
	c.send("\r\n")
	if got := c.ask("\x01I20100"); !strings.Contains(got, "  4  TYPED ") {
		t.Fatalf("inventory:\n%s", got)
	}
}
