package tftp

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/protocoltest"
	"github.com/icsnare/icsnare/protocols/vfs"
	"github.com/icsnare/icsnare/protocols/vfs/vfstest"
)

const testFile = "This is just a test file for Conpot's TFTP server\n"

type testServer struct {
	*vfstest.Server
	svc     *service
	capture string
}

func start(t *testing.T, mutate func(*service)) *testServer {
	t.Helper()
	p := protocoltest.Profile(t, "testdata/conpot")
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
	srv := vfstest.ServeUDP(t, Name, svc, protocoltest.Host(p, addr, 1), netip.AddrPortFrom(addr, 0).String())
	return &testServer{Server: srv, svc: svc, capture: dir}
}

// client is a raw TFTP client socket.
type client struct {
	t   *testing.T
	c   *net.UDPConn
	buf []byte
}

func newClient(t *testing.T) *client {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{t: t, c: c, buf: make([]byte, 70000)}
}

func (c *client) send(to netip.AddrPort, b []byte) {
	c.t.Helper()
	if _, err := c.c.WriteToUDPAddrPort(b, to); err != nil {
		c.t.Fatal(err)
	}
}

// recv waits (at most 10 s) for one packet.
func (c *client) recv() (packet, netip.AddrPort) {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, from, err := c.c.ReadFromUDPAddrPort(c.buf)
	if err != nil {
		c.t.Fatalf("no packet: %v", err)
	}
	b := append([]byte(nil), c.buf[:n]...)
	if binary.BigEndian.Uint16(b) == opOACK {
		return packet{op: opOACK, data: b[2:]}, from
	}
	p, err := parsePacket(b)
	if err != nil {
		c.t.Fatalf("bad packet % x", b)
	}
	return p, from
}

func (c *client) expectError(code uint16) string {
	c.t.Helper()
	p, _ := c.recv()
	if p.op != opERROR || p.block != code {
		c.t.Fatalf("got op %d block/code %d %q, want ERROR %d", p.op, p.block, p.data, code)
	}
	return string(p.data)
}

func TestCodec(t *testing.T) {
	r, err := parseRequest(encodeRequest(opRRQ, "a/b.txt", "OCTET", option{"BLKSIZE", "1024"}, option{"tsize", "0"}))
	if err != nil || r.filename != "a/b.txt" || r.mode != "octet" || len(r.options) != 2 || r.options[0] != (option{"blksize", "1024"}) {
		t.Fatalf("%+v %v", r, err)
	}
	for _, bad := range [][]byte{
		{0, 1}, {0, 3, 'a', 0, 'b', 0}, {0, 1, 'a', 0, 'o', 'c'}, {0, 1, 0, 'o', 0},
		encodeRequest(opRRQ, "a", "octet", option{"x", "1"})[:11],
		append(encodeRequest(opWRQ, "a", "octet"), 'x', 0),
		encodeRequest(opRRQ, strings.Repeat("a", 2000), "octet"),
	} {
		if _, err := parseRequest(bad); err == nil {
			t.Errorf("parseRequest(% x) accepted", bad)
		}
	}
	if got := fromNetascii(toNetascii([]byte("a\nb\rc\r\n"))); string(got) != "a\nb\rc\r\n" {
		t.Errorf("netascii round trip %q", got)
	}
	if got := string(toNetascii([]byte("a\nb\r"))); got != "a\r\nb\r\x00" {
		t.Errorf("toNetascii %q", got)
	}
	if n, ok := blksizeOption("65464"); !ok || n != maxBlksize {
		t.Errorf("blksize clamp %d %v", n, ok)
	}
	if _, ok := blksizeOption("7"); ok {
		t.Error("blksize 7 accepted")
	}
}

func TestMissingFileAndIllegal(t *testing.T) {
	srv := start(t, nil)
	c := newClient(t)
	c.send(srv.Addr, encodeRequest(opRRQ, "missing.bin", "octet"))
	if msg := c.expectError(errNotFound); msg != "File not found" {
		t.Errorf("message %q", msg)
	}
	for _, p := range []string{"../../etc/passwd", `..\..\boot.ini`, "/../x"} {
		c.send(srv.Addr, encodeRequest(opRRQ, p, "octet"))
		c.expectError(errAccess)
		c.send(srv.Addr, encodeRequest(opWRQ, p, "octet"))
		c.expectError(errAccess)
	}
	c.send(srv.Addr, encodeRequest(opRRQ, "tftp_data.txt", "mail"))
	c.expectError(errIllegal)
	c.send(srv.Addr, encodeACK(1))
	c.expectError(errIllegal)
	c.send(srv.Addr, []byte{0, 1, 'x'})
	c.expectError(errIllegal)
	if srv.Opener.UDP.Load() != 0 {
		t.Fatalf("%d transfer ports opened for refused requests", srv.Opener.UDP.Load())
	}
}

func TestDownloadOptionsRetransmitAndDuplicates(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 40) // 640 bytes: blocks of 256 → 3 blocks
	srv := start(t, func(s *service) { s.cfg.seed = map[string][]byte{"/fw.bin": data} })
	c := newClient(t)
	c.send(srv.Addr, encodeRequest(opRRQ, "fw.bin", "octet", option{"blksize", "256"}, option{"tsize", "0"},
		option{"timeout", "1"}, option{"windowsize", "4"}))
	p, tid := c.recv()
	if p.op != opOACK || string(p.data) != "blksize\x00256\x00tsize\x00640\x00timeout\x001\x00" {
		t.Fatalf("OACK %q (op %d)", p.data, p.op)
	}
	if tid.Addr() != srv.Host.Addr || tid.Port() == srv.Addr.Port() {
		t.Fatalf("transfer from %s, want a new port of %s", tid, srv.Host.Addr)
	}
	c.send(tid, encodeACK(0))
	p, _ = c.recv()
	if p.op != opDATA || p.block != 1 || len(p.data) != 256 {
		t.Fatalf("DATA 1: %+v", p)
	}
	// No ACK: the server retransmits DATA 1 after its (1 s) timeout.
	p, _ = c.recv()
	if p.op != opDATA || p.block != 1 {
		t.Fatalf("retransmission: %+v", p)
	}
	// A stranger gets ERROR 5 and the transfer goes on.
	stranger := newClient(t)
	stranger.send(tid, encodeACK(1))
	stranger.expectError(errUnknownTID)
	c.send(tid, encodeACK(1))
	p, _ = c.recv()
	if p.block != 2 {
		t.Fatalf("after ACK 1: %+v", p)
	}
	// A duplicate ACK 1 does not make the server send DATA 2 again (sorcerer's apprentice):
	// the packet after ACK 2 is DATA 3.
	c.send(tid, encodeACK(1))
	c.send(tid, encodeACK(2))
	p, _ = c.recv()
	if p.op != opDATA || p.block != 3 || len(p.data) != 128 {
		t.Fatalf("after a duplicate ACK: %+v", p)
	}
	c.send(tid, encodeACK(3))
	waitEvents(t, srv, "tftp.download", 1)
}

func waitEvents(t *testing.T, srv *testServer, typ string, n int) []*protocols.Event {
	t.Helper()
	for range 500 {
		if ev := srv.Events.OfType(typ); len(ev) >= n {
			return ev
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("fewer than %d %s events: %+v", n, typ, srv.Events.Events())
	return nil
}

func TestUploadOutOfOrderAndQuota(t *testing.T) {
	st, err := vfs.OpenStore(t.TempDir(), vfs.Quotas{Total: 1 << 20, PerSource: 600, Sources: 8})
	if err != nil {
		t.Fatal(err)
	}
	srv := start(t, func(s *service) { s.store = st })
	c := newClient(t)
	c.send(srv.Addr, encodeRequest(opWRQ, "dir/dir/up.bin", "octet", option{"tsize", "520"}))
	p, tid := c.recv()
	if p.op != opOACK || string(p.data) != "tsize\x00520\x00" {
		t.Fatalf("OACK %q", p.data)
	}
	block1 := bytes.Repeat([]byte{'A'}, 512)
	// Block 2 before block 1 is ignored; block 1 is ACKed; its duplicate is re-ACKed.
	c.send(tid, encodeData(2, []byte("late")))
	c.send(tid, encodeData(1, block1))
	if p, _ = c.recv(); p.op != opACK || p.block != 1 {
		t.Fatalf("ACK 1: %+v", p)
	}
	c.send(tid, encodeData(1, block1))
	if p, _ = c.recv(); p.op != opACK || p.block != 1 {
		t.Fatalf("re-ACK 1: %+v", p)
	}
	c.send(tid, encodeData(2, []byte("tail\n\n\n\n")))
	if p, _ = c.recv(); p.op != opACK || p.block != 2 {
		t.Fatalf("ACK 2: %+v", p)
	}
	want := append(block1, "tail\n\n\n\n"...)
	ev := waitEvents(t, srv, "tftp.upload", 1)
	sha := fieldOf(ev[0], "sha256").(string)
	if b, err := os.ReadFile(filepath.Join(st.Dir(), sha)); err != nil || !bytes.Equal(b, want) {
		t.Fatalf("capture: %v", err)
	}
	v, _ := vfs.ForHost(srv.Host).View("/data/tftp")
	if b, _, err := v.ReadFile("dir/dir/up.bin"); err != nil || !bytes.Equal(b, want) {
		t.Fatalf("upload not in the VFS (directories created): %v", err)
	}
	// The source has 80 bytes of quota left: the next upload is refused as disk full.
	c2 := newClient(t)
	c2.send(srv.Addr, encodeRequest(opWRQ, "second.bin", "octet"))
	p, tid = c2.recv()
	if p.op != opACK || p.block != 0 {
		t.Fatalf("ACK 0: %+v", p)
	}
	c2.send(tid, encodeData(1, bytes.Repeat([]byte{'B'}, 100)))
	c2.expectError(errDiskFull)
	// tsize announces too much: refused before any transfer.
	c2.send(srv.Addr, encodeRequest(opWRQ, "huge.bin", "octet", option{"tsize", "999999999"}))
	c2.expectError(errDiskFull)
}

func fieldOf(e *protocols.Event, key string) any {
	for _, f := range e.Fields {
		if f.Key == key {
			return f.Value
		}
	}
	return nil
}

func TestRRQFloodBounded(t *testing.T) {
	srv := start(t, nil)
	// Requests from many source ports of one address: at most perSource transfers run.
	var clients []*client
	for range 10 {
		cl := newClient(t)
		clients = append(clients, cl)
		cl.send(srv.Addr, encodeRequest(opRRQ, "tftp_data.txt", "octet"))
	}
	data, busy := 0, 0
	for _, cl := range clients {
		p, _ := cl.recv()
		switch {
		case p.op == opDATA:
			data++
		case p.op == opERROR && p.block == errUndefined:
			busy++
		default:
			t.Fatalf("flood answer %+v", p)
		}
	}
	if data != defaultPerSource || busy != 10-defaultPerSource {
		t.Fatalf("%d transfers and %d refusals, want %d and %d", data, busy, defaultPerSource, 10-defaultPerSource)
	}
	if int(srv.Opener.UDP.Load()) != defaultPerSource {
		t.Fatalf("%d transfer ports opened", srv.Opener.UDP.Load())
	}
}

// The exchanges of Conpot's test_tftp.py (conpot.md §3.23) with a real client, and curl.
func TestClients(t *testing.T) {
	srv := start(t, nil)
	protocoltest.NeedTool(t, "curl")
	url := fmt.Sprintf("tftp://%s/tftp_data.txt", srv.Addr)
	for _, args := range [][]string{{url}, {"--tftp-blksize", "1024", url}, {"--tftp-blksize", "8", url}} {
		out, err := protocoltest.Run(t, 30*time.Second, "curl", append([]string{"-sS", "--max-time", "20"}, args...)...)
		if err != nil || out != testFile {
			t.Fatalf("curl %v: %v %q", args, err, out)
		}
	}
	// A missing file: curl gets the ERROR 1 at once and exits with 68 (CURLE_TFTP_NOTFOUND),
	// not 28 (time-out).
	out, err := protocoltest.Run(t, 30*time.Second, "curl", "-sS", "--max-time", "20", fmt.Sprintf("tftp://%s/nothere", srv.Addr))
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 68 {
		t.Fatalf("curl missing file: %v %q, want exit status 68", err, out)
	}
	protocoltest.NeedTool(t, "tftp")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "test.txt"), []byte(testFile), 0o644)
	for _, remote := range []string{"test.txt", "/dir/dir/test.txt"} {
		out, err := runIn(t, dir, "tftp", "-v", "-m", "binary", srv.Addr.Addr().String(), fmt.Sprint(srv.Addr.Port()),
			"-c", "put", "test.txt", remote)
		if err != nil || !strings.Contains(out, "Sent 50 bytes") {
			t.Fatalf("tftp put %s: %v %q", remote, err, out)
		}
	}
	out, err = runIn(t, dir, "tftp", "-v", "-m", "netascii", srv.Addr.Addr().String(), fmt.Sprint(srv.Addr.Port()),
		"-c", "get", "/dir/dir/test.txt", "back.txt")
	if b, _ := os.ReadFile(filepath.Join(dir, "back.txt")); err != nil || string(b) != testFile {
		t.Fatalf("tftp get: %v %q %q", err, out, b)
	}
	ups := waitEvents(t, srv, "tftp.upload", 2)
	if fieldOf(ups[0], "name") != "/test.txt" || fieldOf(ups[1], "name") != "/dir/dir/test.txt" {
		t.Fatalf("upload names %v %v", fieldOf(ups[0], "name"), fieldOf(ups[1], "name"))
	}
	sha := fieldOf(ups[0], "sha256").(string)
	if b, err := os.ReadFile(filepath.Join(srv.capture, sha)); err != nil || string(b) != testFile {
		t.Fatalf("capture %s: %v", sha, err)
	}
}

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

func TestUnverifiedSourceGetsNoRetransmissions(t *testing.T) {
	p := protocoltest.Profile(t, "testdata/conpot")
	svc := protocoltest.Configure(t, protocol{}, p).(*service)
	addr := vfstest.Addr()
	srv := vfstest.ServeUDP(t, Name, svc, protocoltest.Host(p, addr, 1), netip.AddrPortFrom(addr, 0).String(),
		vfstest.Amplification(10))
	c := newClient(t)
	// A spoofed source never answers: it gets the first DATA once, and again only when it
	// repeats its request, never by the server's own retransmission.
	req := encodeRequest(opRRQ, "tftp_data.txt", "octet", option{"timeout", "1"})
	c.send(srv.Addr, req)
	p1, tid := c.recv()
	if p1.op != opOACK {
		t.Fatalf("first packet %+v", p1)
	}
	c.c.SetReadDeadline(time.Now().Add(2500 * time.Millisecond))
	if n, _, err := c.c.ReadFromUDPAddrPort(c.buf); err == nil {
		t.Fatalf("retransmission to an unverified source: % x", c.buf[:n])
	}
	c.send(srv.Addr, req) // the client's own retry
	if p2, from := c.recv(); p2.op != opOACK || from != tid {
		t.Fatalf("resend after the repeated request: %+v from %s", p2, from)
	}
	// Once the client answers on the transfer port it is verified: the transfer completes.
	c.send(tid, encodeACK(0))
	if d, _ := c.recv(); d.op != opDATA || string(d.data) != testFile {
		t.Fatalf("DATA %+v", d)
	}
	c.send(tid, encodeACK(1))
}

func TestNetasciiDownloadTsize(t *testing.T) {
	srv := start(t, nil)
	c := newClient(t)
	c.send(srv.Addr, encodeRequest(opRRQ, "tftp_data.txt", "netascii", option{"tsize", "0"}))
	p, tid := c.recv()
	if p.op != opOACK || string(p.data) != "tsize\x0051\x00" {
		t.Fatalf("OACK %q", p.data)
	}
	c.send(tid, encodeACK(0))
	if p, _ = c.recv(); p.op != opDATA || string(p.data) != strings.ReplaceAll(testFile, "\n", "\r\n") {
		t.Fatalf("DATA %q", p.data)
	}
	c.send(tid, encodeACK(1))
	waitEvents(t, srv, "tftp.download", 1)
	for range 500 {
		if vfs.InFlight.Used() == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("in-flight bytes not given back: %d", vfs.InFlight.Used())
}

func TestTransfersPerHostBounded(t *testing.T) {
	srv := start(t, func(s *service) { s.cfg.perHost, s.cfg.perSource = 2, 10 })
	var busy, data int
	for range 4 {
		c := newClient(t)
		c.send(srv.Addr, encodeRequest(opRRQ, "tftp_data.txt", "octet"))
		switch p, _ := c.recv(); {
		case p.op == opDATA:
			data++
		case p.op == opERROR && p.block == errUndefined:
			busy++
		default:
			t.Fatalf("answer %+v", p)
		}
	}
	if data != 2 || busy != 2 {
		t.Fatalf("%d transfers, %d refused; want 2 and 2", data, busy)
	}
}
