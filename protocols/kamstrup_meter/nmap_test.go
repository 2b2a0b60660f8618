package kamstrupmeter

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// TestNmapServiceScan: nmap -sV throws its service probes (HTTP, RPC, TLS, X11 …) at the
// meter; it keeps the connection open and silent for all of them, as a meter does for
// telegrams it does not understand, and still answers KMP afterwards.
func TestNmapServiceScan(t *testing.T) {
	nmap := protocoltest.NeedTool(t, "nmap")
	m := startMeter(t, false)
	out, err := protocoltest.Run(t, 120*time.Second, nmap, "-sV", "-Pn", "-n", "--version-intensity", "2",
		"-p", strconv.Itoa(int(m.Addr.Port())), m.Addr.Addr().String())
	if err != nil || !strings.Contains(out, "/tcp open") {
		t.Fatalf("nmap: %v\n%s", err, out)
	}
	c := m.dial(t)
	c.request(0x3f, 1001)
	if _, err := ParseFrame(c.read()); err != nil {
		t.Fatal(err)
	}
	if m.Panics.Load() != 0 {
		t.Fatal("handler panic")
	}
	if n := len(m.Events.OfType(evRequest)); n != 1 {
		t.Errorf("%d request events; nmap's probes are not KMP frames", n)
	}
}

// TestResetMidFrame: a client that resets the connection in the middle of a frame ends
// the session at once (no spinning on the dead connection).
func TestResetMidFrame(t *testing.T) {
	p := loadTemplate(t)
	svc := newService(mustConfig(t, p))
	h := hostFor(p)
	ln, err := net.Listen("tcp", testAddr().String()+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		svc.ServeConn(t.Context(), testSession(h), c)
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.Write(unhex(t, "80 3f 10 01"))
	c.(*net.TCPConn).SetLinger(0)
	c.Close() // RST
	select {
	case <-done:
	case <-time.After(10 * time.Second): // a hang guard, not a timing assertion
		t.Fatal("the session did not end after a reset")
	}
}
