package ftp

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/protocoltest"
	"github.com/icsnare/icsnare/protocols/vfs"
	"github.com/icsnare/icsnare/protocols/vfs/vfstest"
)

// testServer runs FTP from testdata/<profile> on a fresh 127.80/16 address, with uploads
// captured under the test's TempDir.
type testServer struct {
	*vfstest.Server
	svc     *service
	capture string
}

func startProfile(t *testing.T, profile string, host *protocols.Host) *testServer {
	t.Helper()
	return startWith(t, profile, host, nil)
}

// startWith is startProfile with a change to the service before it serves.
func startWith(t *testing.T, profile string, host *protocols.Host, mutate func(*service)) *testServer {
	t.Helper()
	p := protocoltest.Profile(t, "testdata/"+profile)
	svc := protocoltest.Configure(t, protocol{}, p).(*service)
	dir := t.TempDir()
	st, err := vfs.OpenStore(dir, vfs.DefaultQuotas)
	if err != nil {
		t.Fatal(err)
	}
	svc.store = st
	if mutate != nil {
		mutate(svc)
	}
	addr := vfstest.Addr()
	if host == nil {
		host = protocoltest.Host(p, addr, 1)
	} else {
		addr = host.Addr
	}
	srv := vfstest.ServeTCP(t, Name, svc, host, netip.AddrPortFrom(addr, 0).String())
	return &testServer{Server: srv, svc: svc, capture: dir}
}

// client is a raw control connection.
type client struct {
	t    *testing.T
	c    net.Conn
	r    *bufio.Reader
	last string // the full last reply
}

func dial(t *testing.T, srv *testServer) *client {
	t.Helper()
	c, err := net.DialTimeout("tcp", srv.Addr.String(), 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	cl := &client{t: t, c: c, r: bufio.NewReader(c)}
	return cl
}

// read reads one (possibly multi-line) reply and returns its code and full text.
func (c *client) read() (int, string) {
	c.t.Helper()
	var all strings.Builder
	line, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read reply: %v (so far %q)", err, line)
	}
	all.WriteString(line)
	if len(line) < 4 {
		c.t.Fatalf("short reply %q", line)
	}
	code, err := strconv.Atoi(line[:3])
	if err != nil {
		c.t.Fatalf("reply %q", line)
	}
	if line[3] == '-' {
		for i := 0; ; i++ {
			if i > 10000 {
				c.t.Fatal("endless multi-line reply")
			}
			l, err := c.r.ReadString('\n')
			if err != nil {
				c.t.Fatalf("read multi-line reply: %v", err)
			}
			all.WriteString(l)
			if strings.HasPrefix(l, line[:3]+" ") {
				break
			}
		}
	}
	c.last = all.String()
	return code, c.last
}

// cmd sends one command and returns the reply.
func (c *client) cmd(format string, args ...any) (int, string) {
	c.t.Helper()
	if _, err := fmt.Fprintf(c.c, format+"\r\n", args...); err != nil {
		c.t.Fatal(err)
	}
	return c.read()
}

// expect sends a command and checks the reply's first line.
func (c *client) expect(command, want string) {
	c.t.Helper()
	_, text := c.cmd("%s", command)
	first, _, _ := strings.Cut(text, "\r\n")
	if first != want {
		c.t.Errorf("%s: got %q, want %q", command, first, want)
	}
}

func (c *client) login(user, pass string) {
	c.t.Helper()
	if code, _ := c.cmd("USER %s", user); code != 331 {
		c.t.Fatalf("USER: %s", c.last)
	}
	if code, _ := c.cmd("PASS %s", pass); code != 230 {
		c.t.Fatalf("PASS: %s", c.last)
	}
}

// pasv opens a passive data connection.
func (c *client) pasv() net.Conn {
	c.t.Helper()
	code, text := c.cmd("PASV")
	if code != 227 {
		c.t.Fatalf("PASV: %s", text)
	}
	i, j := strings.IndexByte(text, '('), strings.IndexByte(text, ')')
	ap, ok := parsePORT(text[i+1 : j])
	if !ok {
		c.t.Fatalf("PASV reply %q", text)
	}
	d, err := net.DialTimeout("tcp", ap.String(), 3*time.Second)
	if err != nil {
		c.t.Fatal(err)
	}
	d.SetDeadline(time.Now().Add(10 * time.Second))
	return d
}

// retrieve runs a data command over PASV and returns the data and the final reply.
func (c *client) retrieve(command string) (string, string) {
	c.t.Helper()
	d := c.pasv()
	defer d.Close()
	if code, _ := c.cmd("%s", command); code != 150 && code != 125 {
		c.t.Fatalf("%s: %s", command, c.last)
	}
	b, err := io.ReadAll(io.LimitReader(d, 1<<20))
	if err != nil {
		c.t.Fatal(err)
	}
	_, done := c.read()
	return string(b), done
}

// storeData uploads data with command over PASV and returns the final reply.
func (c *client) storeData(command, data string) string {
	c.t.Helper()
	d := c.pasv()
	if code, _ := c.cmd("%s", command); code != 150 {
		d.Close()
		return c.last
	}
	io.WriteString(d, data)
	d.Close()
	_, done := c.read()
	return done
}

// runIn runs a client in dir with a timeout and returns its combined output.
func runIn(t *testing.T, dir, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.WaitDelay = 2 * time.Second
	out, err := cmd.CombinedOutput()
	t.Logf("$ %s %s\n%s", name, strings.Join(args, " "), out)
	return string(out), err
}
