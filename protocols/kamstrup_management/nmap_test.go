package kamstrupmgmt

import (
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// TestNmapServiceScan: nmap -sV's probes get the banner and the console's own answers;
// the console keeps answering afterwards.
func TestNmapServiceScan(t *testing.T) {
	nmap := protocoltest.NeedTool(t, "nmap")
	c := startConsole(t, false)
	out, err := protocoltest.Run(t, 120*time.Second, nmap, "-sV", "-Pn", "-n", "--version-intensity", "2",
		"-p", strconv.Itoa(int(c.Addr.Port())), c.Addr.Addr().String())
	if err != nil || !strings.Contains(out, "/tcp open") || !strings.Contains(out, `Welcome\.\.\.`) {
		t.Fatalf("nmap: %v\n%s", err, out)
	}
	cl := c.dial(t)
	cl.readN(len(Banner(databusStore{db: c.Host.Databus, seed: c.Host.Seed})))
	cl.send("!GV\r\n")
	cl.expect("\r\nSoftware Version: 5.5 (E5)\r\n")
	if c.Panics.Load() != 0 {
		t.Fatal("handler panic")
	}
}

// TestResetMidLine: a client that resets the connection in the middle of a line ends the
// session at once.
func TestResetMidLine(t *testing.T) {
	_, h := freshStore(t)
	svc := newService()
	ln, err := net.Listen("tcp", netip.AddrPortFrom(testAddr(), 0).String())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		svc.ServeConn(t.Context(), &protocols.Session{ID: "rst", Protocol: Name, Transport: protocols.TCP, Host: h}, nc)
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("!SC 0 1.2.3"))
	c.(*net.TCPConn).SetLinger(0)
	c.Close()
	select {
	case <-done:
	case <-time.After(10 * time.Second): // a hang guard, not a timing assertion
		t.Fatal("the session did not end after a reset")
	}
}
