package ftp

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols/protocoltest"
	"github.com/icsnare/icsnare/protocols/vfs"
	"github.com/icsnare/icsnare/protocols/vfs/vfstest"
)

func TestLongLinesAndPipelining(t *testing.T) {
	srv := startProfile(t, "conpot", nil)
	c := dial(t, srv)
	c.read()
	// A 10 kB command line is refused and the session goes on.
	c.expect("USER "+strings.Repeat("A", 10<<10), "500 Command too long.")
	// Pipelined commands in one segment are answered in order.
	io.WriteString(c.c, "USER nobody\r\nPASS nobody\r\nTYPE I\r\nSIZE ftp_data.txt\r\nNOOP\r\n")
	for _, want := range []int{331, 230, 200, 213, 200} {
		if code, text := c.read(); code != want {
			t.Fatalf("pipelined: got %q, want %d", text, want)
		}
	}
	// A line that never ends closes the connection after a bounded amount.
	go func() {
		chunk := strings.Repeat("B", 4096)
		for range 40 {
			if _, err := io.WriteString(c.c, chunk); err != nil {
				return
			}
		}
	}()
	c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	io.ReadAll(io.LimitReader(c.r, 1<<16)) // until the server closes
	if _, err := c.r.ReadByte(); err == nil {
		t.Fatal("connection open after an endless line")
	}
}

func TestTraversalRefused(t *testing.T) {
	srv := startProfile(t, "conpot", nil)
	c := dial(t, srv)
	c.read()
	c.login("nobody", "nobody")
	for _, p := range []string{"../../../etc/passwd", "/../../etc/passwd", `..\..\..\etc\passwd`, "a/../../x", "../data/tftp/tftp_data.txt"} {
		c.expect("RETR "+p, fmt.Sprintf("550 'retr %s' points to a path which is outside the user's root directory.", p))
		c.expect("CWD "+p, fmt.Sprintf("550 'cwd %s' points to a path which is outside the user's root directory.", p))
	}
	for _, p := range []string{"%2e%2e/%2e%2e/etc/passwd", "....//....//etc/passwd", "/etc/passwd"} {
		c.expect("RETR "+p, "550 The system cannot find the file specified.")
	}
	c.expect("RETR a\x00b", "553 Requested action not taken. File name not allowed.")
	c.expect("MKD "+strings.Repeat("d/", 40), "553 Requested action not taken. File name not allowed.")
}

func TestBounceRefused(t *testing.T) {
	srv := startProfile(t, "conpot", nil)
	c := dial(t, srv)
	c.read()
	c.login("nobody", "nobody")
	c.expect("PORT 192,0,2,1,200,10", "501 Rejected data connection to foreign address.")
	c.expect("PORT 127,0,0,2,200,10", "501 Rejected data connection to foreign address.")
	c.expect("EPRT |1|198.51.100.7|51210|", "501 Rejected data connection to foreign address.")
	c.expect("EPRT |2|::1|51210|", "501 Rejected data connection to foreign address.")
	c.expect("PORT 127,0,0,1,0,22", "501 Can't connect over a privileged port.")
	c.expect("PORT 1,2,3", "501 Invalid PORT format.")
	c.expect("EPRT |1|::1|5|", "501 Invalid EPRT format.")
	if n := len(srv.Events.OfType("ftp.bounce_refused")); n != 4 {
		t.Errorf("%d bounce_refused events, want 4", n)
	}
	// Active mode to the client's own address works.
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	c.expect(fmt.Sprintf("PORT 127,0,0,1,%d,%d", port>>8, port&0xff), "200 PORT Command Successful. Consider using PASV.")
	got := make(chan string, 1)
	go func() {
		d, err := ln.Accept()
		if err != nil {
			got <- err.Error()
			return
		}
		defer d.Close()
		d.SetDeadline(time.Now().Add(10 * time.Second))
		if a := d.RemoteAddr().(*net.TCPAddr).AddrPort().Addr(); a != srv.Host.Addr {
			got <- "active connection from " + a.String()
			return
		}
		b, _ := io.ReadAll(d)
		got <- string(b)
	}()
	if code, _ := c.cmd("NLST"); code != 150 {
		t.Fatalf("NLST active: %s", c.last)
	}
	if code, _ := c.read(); code != 226 {
		t.Fatalf("NLST active end: %s", c.last)
	}
	if s := <-got; s != "ftp_data.txt\r\n" {
		t.Fatalf("active NLST data %q", s)
	}
}

func TestAnonymousDisabled(t *testing.T) {
	srv := startProfile(t, "noanon", nil)
	c := dial(t, srv)
	if _, text := c.read(); text != "220 VxWorks (5.4.2) FTP server ready\r\n" {
		t.Fatalf("greeting %q", text)
	}
	for _, u := range []string{"anonymous", "ftp", "Anonymous"} {
		c.cmd("USER %s", u)
		if code, _ := c.cmd("PASS x@y"); code != 530 {
			t.Fatalf("%s logged in with anonymous login disabled: %s", u, c.last)
		}
		c = dial(t, srv)
		c.read()
	}
	c.login("admin", "s7cp443")
	c.expect("SYST", "215 VxWorks")
}

func TestIdleTimeout(t *testing.T) {
	srv := startWith(t, "conpot", nil, func(s *service) { s.cfg.idle = 200 * time.Millisecond })
	c := dial(t, srv)
	c.read()
	if code, text := c.read(); code != 421 || text != "421 Timeout.\r\n" {
		t.Fatalf("idle: %q", text)
	}
}

func TestUploadQuotaAndIsolation(t *testing.T) {
	p := protocoltest.Profile(t, "testdata/conpot")
	st, err := vfs.OpenStore(t.TempDir(), vfs.Quotas{Total: 1 << 20, PerSource: 10, Sources: 10})
	if err != nil {
		t.Fatal(err)
	}
	a := startWith(t, "conpot", nil, func(s *service) { s.store = st })
	// One service serves both hosts, as in the sensor.
	b := &testServer{svc: a.svc, Server: vfstest.ServeTCP(t, Name, a.svc, protocoltest.Host(p, a.Host.Addr.Next(), 2),
		netip.AddrPortFrom(a.Host.Addr.Next(), 0).String())}
	c := dial(t, a)
	c.read()
	c.login("nobody", "nobody")
	if done := c.storeData("STOR small.bin", "12345"); !strings.HasPrefix(done, "226") {
		t.Fatalf("STOR within quota: %q", done)
	}
	if done := c.storeData("STOR big.bin", "1234567890"); !strings.HasPrefix(done, "452 ") {
		t.Fatalf("STOR over quota: %q", done)
	}
	list, _ := c.retrieve("NLST")
	if list != "ftp_data.txt\r\nsmall.bin\r\n" {
		t.Fatalf("host a lists %q", list)
	}
	if n := len(a.Events.OfType("ftp.upload_refused")); n != 1 {
		t.Fatalf("%d upload_refused events", n)
	}
	// The other host (same profile) sees none of it.
	d := dial(t, b)
	d.read()
	d.login("nobody", "nobody")
	if list, _ := d.retrieve("NLST"); list != "ftp_data.txt\r\n" {
		t.Fatalf("host b lists %q", list)
	}
}

func TestParseCommand(t *testing.T) {
	for _, tc := range []struct{ line, verb, arg string }{
		{"USER nobody", "USER", "nobody"},
		{"user nobody", "USER", "nobody"},
		{"STOR a file name", "STOR", "a file name"},
		{"  NOOP", "NOOP", ""},
		{"\xff\xf4\xff\xf2ABOR", "ABOR", ""},
		{"VERYLONGVERB x", "VERYLONG", "x"},
		{"", "", ""},
		{"\xc0\xc0\xc00", "\xc0\xc0\xc00", ""},
	} {
		v, a := parseCommand([]byte(tc.line))
		if v != tc.verb || a != tc.arg {
			t.Errorf("parseCommand(%q) = %q %q", tc.line, v, a)
		}
	}
}

func TestIPv6Host(t *testing.T) {
	p := protocoltest.Profile(t, "testdata/conpot")
	svc := protocoltest.Configure(t, protocol{}, p).(*service)
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		if protocoltest.InCI() {
			t.Fatalf("no IPv6 loopback: %v", err)
		}
		t.Skipf("no IPv6 loopback: %v", err)
	}
	ln.Close()
	srv := &testServer{svc: svc, Server: vfstest.ServeTCP(t, Name, svc, protocoltest.Host(p, netip.IPv6Loopback(), 3), "[::1]:0")}
	c := dial(t, srv)
	c.read()
	c.login("nobody", "nobody")
	c.expect("PASV", "425 Can't open passive connection: use EPSV.")
	c.expect("EPRT |1|127.0.0.1|5000|", "501 Rejected data connection to foreign address.")
	code, text := c.cmd("EPSV")
	if code != 229 {
		t.Fatalf("EPSV: %s", text)
	}
	var port int
	fmt.Sscanf(text[strings.Index(text, "|||")+3:], "%d", &port)
	d, err := net.Dial("tcp6", fmt.Sprintf("[::1]:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	c.cmd("NLST")
	b, _ := io.ReadAll(d)
	if string(b) != "ftp_data.txt\r\n" {
		t.Fatalf("NLST over EPSV on IPv6: %q", b)
	}
	if code, _ := c.read(); code != 226 {
		t.Fatalf("NLST end: %s", c.last)
	}
}

func TestTransferTimeout(t *testing.T) {
	srv := startWith(t, "conpot", nil, func(s *service) { s.cfg.transfer = 300 * time.Millisecond })
	c := dial(t, srv)
	c.read()
	c.login("nobody", "nobody")
	// The client opens the data connection for an upload and then sends nothing.
	d := c.pasv()
	defer d.Close()
	if code, _ := c.cmd("STOR stalled.bin"); code != 150 {
		t.Fatalf("STOR: %s", c.last)
	}
	if code, text := c.read(); code != 426 {
		t.Fatalf("stalled upload: %q", text)
	}
	// The session goes on.
	c.expect("NOOP", "200 I successfully done nothin'.")
	if n := len(srv.Events.OfType("ftp.upload")); n != 0 {
		t.Fatalf("%d uploads recorded for an aborted transfer", n)
	}
}

func TestAbortDuringTransfer(t *testing.T) {
	srv := startProfile(t, "conpot", nil)
	c := dial(t, srv)
	c.read()
	c.login("nobody", "nobody")
	c.cmd("TYPE I")
	// An upload in progress: the server waits for more data when ABOR comes.
	d := c.pasv()
	defer d.Close()
	if code, _ := c.cmd("STOR big.bin"); code != 150 {
		t.Fatalf("STOR: %s", c.last)
	}
	d.Write([]byte("partial data"))
	io.WriteString(c.c, "\xff\xf4\xff\xf2ABOR\r\nPWD\r\n") // Telnet IP, DM, as clients send it
	for _, want := range []int{426, 226, 257} {
		if code, text := c.read(); code != want {
			t.Fatalf("after ABOR: %q, want %d", text, want)
		}
	}
	c.expect("SIZE big.bin", "550 /big.bin is not retrievable.")
	// A command pipelined behind a completed transfer waits for it and is answered after.
	d = c.pasv()
	io.WriteString(c.c, "RETR ftp_data.txt\r\nNOOP\r\n")
	body, _ := io.ReadAll(d)
	d.Close()
	for _, want := range []int{150, 226, 200} {
		if code, text := c.read(); code != want {
			t.Fatalf("pipelined behind RETR: %q, want %d", text, want)
		}
	}
	if string(body) != "This is just a test file for Conpot's FTP server\n" {
		t.Fatalf("RETR %q", body)
	}
	var abor bool
	for _, e := range srv.Events.OfType("ftp.command") {
		if e.Fields[0].Value == "ABOR" && e.Fields[2].Value == 226 {
			abor = true
		}
	}
	if !abor {
		t.Fatal("no ABOR command event")
	}
}
