package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols"
	_ "github.com/icsnare/icsnare/protocols/tftp"
	"github.com/icsnare/icsnare/protocols/vfs/vfstest"
)

// tftpProfile writes a copy of the tftp package's Conpot test profile (tftp_data.txt)
// that also serves generated files: startup.log (about 5000 bytes), fw/big.bin (5000
// bytes: nine full blocks and a short one) and fw/image.bin (2048 bytes: four full blocks,
// then an empty one). Its transfer caps are above what 3 connections need: the service
// frees a transfer's slot once it has handled the final ACK, so a connection's next RRQ,
// sent right after that ACK, may find its previous transfer still holding one, and the
// default 4 per source refuses some of the transfers of 3 connections, and even of one
// under the race detector, whose scheduling delays let several finished transfers hold
// their slots a while.
func tftpProfile(t *testing.T) string {
	t.Helper()
	const conpot = "../../protocols/tftp/testdata/conpot"
	dir := t.TempDir()
	files := map[string]string{
		"template.xml":             conpot + "/template.xml",
		"tftp/files/tftp_data.txt": conpot + "/tftp/files/tftp_data.txt",
	}
	for to, from := range files {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, to)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, to), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const sec = `<tftp enabled="True" host="0.0.0.0" port="6969">
    <tftp_root_path>/data/tftp/</tftp_root_path>
    <add_src>files</add_src>
    <data_fs_subdir>tftp</data_fs_subdir>
    <max_transfers_per_host>64</max_transfers_per_host>
    <max_transfers_per_source>64</max_transfers_per_source>
    <generated path="startup.log" kind="log" size="5000"/>
    <generated path="fw/big.bin" kind="binary" size="5000"/>
    <generated path="fw/image.bin" kind="binary" size="2048"/>
</tftp>
`
	if err := os.WriteFile(filepath.Join(dir, "tftp", "tftp.xml"), []byte(sec), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// serveTFTP serves the TFTP of a profile directory on a test address.
func serveTFTP(t *testing.T, dir string) *vfstest.Server {
	t.Helper()
	a := testAddr()
	svc, h := service(t, "tftp", dir, a)
	return vfstest.ServeUDP(t, "tftp", svc.(protocols.PacketService), h, netip.AddrPortFrom(a, 0).String())
}

// TestTFTPMode runs the tftp mode against the TFTP service on loopback, reading the
// default file, the same named otherwise and multi-block files, and checks that transfers
// succeeded and none failed, each connection over one socket.
func TestTFTPMode(t *testing.T) {
	profile := tftpProfile(t)
	for _, args := range [][]string{
		nil,
		{"-file", "/tftp_data.txt"},
		{"-file", "startup.log"},
		{"-file", "fw/image.bin"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			srv := serveTFTP(t, profile)
			code, ok, failed, _ := runCounts(t, "tftp", srv.Addr.String(), args...)
			if code != 0 || ok <= 0 || failed != 0 {
				t.Fatalf("exit %d requests=%d errors=%d", code, ok, failed)
			}
			if n := len(srv.Events.OfType("tftp.download")); n == 0 {
				t.Error("no tftp.download event")
			}
			// Each connection reuses its socket (a server session).
			if n := srv.Sessions.Load(); n > 3 {
				t.Errorf("%d sockets for 3 connections", n)
			}
		})
	}
}

// TestTFTPWholeFile reads files several times over one socket and checks each transfer
// returned the whole file.
func TestTFTPWholeFile(t *testing.T) {
	profile := tftpProfile(t)
	for _, c := range []struct {
		file string
		size int
	}{
		{"tftp_data.txt", 50},
		{"fw/big.bin", 5000},
		{"fw/image.bin", 2048},
	} {
		t.Run(c.file, func(t *testing.T) {
			srv := serveTFTP(t, profile)
			uc, err := net.ListenUDP("udp4", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer uc.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			tc := &tftpConn{ctx: ctx, c: uc, server: srv.Addr, buf: make([]byte, tftpBlock+64)}
			for i, mode := range []string{"octet", "OCTET"} {
				tc.rrq[i] = tftpRequest(tftpRRQ, c.file, mode)
			}
			for i := range 5 {
				n, err := tc.read()
				if err != nil || n != c.size {
					t.Fatalf("transfer %d: %d bytes, %v; want %d", i, n, err, c.size)
				}
			}
		})
	}
}

// TestTFTPStrays runs a transfer that packets from other sources, before and after the
// server's transfer id is known, and a repeated block try to disturb: the client ignores
// them, answers the stranger on the server's address with ERROR 5, re-ACKs the repeat and
// reads the whole file.
func TestTFTPStrays(t *testing.T) {
	a, other := testAddr(), testAddr()
	for other == a {
		other = testAddr()
	}
	listen := func(addr netip.Addr) *net.UDPConn {
		c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, 0)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(5 * time.Second))
		return c
	}
	srv, tid, stranger, elsewhere := listen(a), listen(a), listen(a), listen(other)
	client := listen(netip.IPv4Unspecified())
	to := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), client.LocalAddr().(*net.UDPAddr).AddrPort().Port())
	data := func(block uint16, n int) []byte {
		return append([]byte{0, 3, byte(block >> 8), byte(block)}, make([]byte, n)...)
	}
	errc := make(chan error, 1)
	go func() {
		errc <- func() error {
			b := make([]byte, 1024)
			expect := func(c *net.UDPConn, want []byte) error {
				n, _, err := c.ReadFromUDPAddrPort(b)
				if err != nil {
					return err
				}
				if !bytes.HasPrefix(b[:n], want) {
					return fmt.Errorf("got % x, want % x…", b[:n], want)
				}
				return nil
			}
			if err := expect(srv, []byte("\x00\x01tftp_data.txt\x00octet\x00")); err != nil {
				return fmt.Errorf("RRQ: %w", err)
			}
			elsewhere.WriteToUDPAddrPort(data(1, 10), to) // another host: ignored
			tid.WriteToUDPAddrPort(data(1, 512), to)
			if err := expect(tid, []byte{0, 4, 0, 1}); err != nil {
				return fmt.Errorf("ACK 1: %w", err)
			}
			stranger.WriteToUDPAddrPort(data(2, 10), to) // not the transfer id: ERROR 5
			if err := expect(stranger, []byte{0, 5, 0, 5}); err != nil {
				return fmt.Errorf("ERROR 5 to the stranger: %w", err)
			}
			tid.WriteToUDPAddrPort(data(1, 512), to) // a repeat: ACKed again
			if err := expect(tid, []byte{0, 4, 0, 1}); err != nil {
				return fmt.Errorf("repeated ACK 1: %w", err)
			}
			tid.WriteToUDPAddrPort(data(2, 100), to)
			if err := expect(tid, []byte{0, 4, 0, 2}); err != nil {
				return fmt.Errorf("ACK 2: %w", err)
			}
			return nil
		}()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tc := &tftpConn{ctx: ctx, c: client, server: srv.LocalAddr().(*net.UDPAddr).AddrPort(), buf: make([]byte, tftpBlock+64)}
	tc.rrq[0] = tftpRequest(tftpRRQ, "tftp_data.txt", "octet")
	n, err := tc.read()
	if err != nil || n != 612 {
		t.Errorf("read %d bytes, %v; want 612", n, err)
	}
	if err := <-errc; err != nil {
		t.Error(err)
	}
}

// TestTFTPWrongAnswers runs the tftp mode against servers that answer wrongly: the mode
// must not report success.
func TestTFTPWrongAnswers(t *testing.T) {
	t.Run("missing file", func(t *testing.T) {
		srv := serveTFTP(t, "../../protocols/tftp/testdata/conpot")
		code, ok, failed, out := runCounts(t, "tftp", srv.Addr.String(), "-file", "missing.bin")
		if code == 0 && failed <= 0 {
			t.Fatalf("exit %d requests=%d errors=%d", code, ok, failed)
		}
		if !strings.Contains(out, `ERROR 1 "File not found"`) {
			t.Error("the output does not name the server's ERROR")
		}
	})
	for _, c := range []struct {
		name   string
		answer func(rrq []byte, block uint16) []byte // nil: no answer
		want   string
	}{
		{"ERROR", func([]byte, uint16) []byte {
			return append([]byte{0, 5, 0, 2}, "Access violation\x00"...)
		}, `ERROR 2 "Access violation"`},
		{"wrong block", func(_ []byte, block uint16) []byte {
			return append([]byte{0, 3, 0, byte(block + 1)}, "short"...)
		}, "block 2, want 1"},
		{"ACK instead of DATA", func([]byte, uint16) []byte { return []byte{0, 4, 0, 1} }, "opcode 4, want DATA"},
		{"oversized block", func(_ []byte, block uint16) []byte {
			return append([]byte{0, 3, 0, byte(block)}, make([]byte, 600)...)
		}, "block 1 over 512 bytes"},
		{"silence", func([]byte, uint16) []byte { return nil }, "no block 1 within"},
	} {
		t.Run(c.name, func(t *testing.T) {
			addr := fakeTFTP(t, c.answer)
			code, ok, failed, out := runCounts(t, "tftp", addr, "-duration", "2500ms")
			if code == 0 && failed <= 0 {
				t.Fatalf("exit %d requests=%d errors=%d against a wrong server", code, ok, failed)
			}
			if !strings.Contains(out, c.want) {
				t.Errorf("output does not name %q", c.want)
			}
		})
	}
}

func TestTFTPFlagsChecked(t *testing.T) {
	for _, args := range [][]string{
		{"-mode", "tftp", "-file", strings.Repeat("a", 256)},
		{"-mode", "tftp", "-file", "a\x00b"},
	} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 2 {
			t.Errorf("%q: exit %d, want 2 (%s)", args, code, errb.String())
		}
	}
	for _, f := range []string{"", strings.Repeat("a", 255)} {
		if err := newTFTP(opts{file: f}).(checker).check(); err != nil {
			t.Errorf("-file %q refused: %v", f, err)
		}
	}
}

// fakeTFTP answers each RRQ on a test address from a port of its own (a new transfer id):
// answer(rrq, 1), then answer(ack, n+1) to each ACK n that comes to that port. It stops
// when the test ends.
func fakeTFTP(t *testing.T, answer func(pkt []byte, block uint16) []byte) string {
	t.Helper()
	a := testAddr()
	ln, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, 0)))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	socks := []*net.UDPConn{ln}
	closed := false
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 2048)
		for {
			n, from, err := ln.ReadFromUDPAddrPort(buf)
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err != nil || n < 2 || binary.BigEndian.Uint16(buf) != tftpRRQ {
				continue
			}
			tid, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, 0)))
			if err != nil {
				continue
			}
			mu.Lock()
			if closed {
				mu.Unlock()
				tid.Close()
				return
			}
			socks = append(socks, tid)
			mu.Unlock()
			wg.Add(1)
			go func(rrq []byte) {
				defer wg.Done()
				defer tid.Close()
				tid.SetDeadline(time.Now().Add(5 * time.Second))
				pkt, block := rrq, uint16(1)
				for range 100 {
					if p := answer(pkt, block); p != nil {
						tid.WriteToUDPAddrPort(p, from)
					}
					b := make([]byte, 2048)
					n, _, err := tid.ReadFromUDPAddrPort(b)
					if err != nil || n < 4 || binary.BigEndian.Uint16(b) != tftpACK {
						return
					}
					pkt, block = b[:n], binary.BigEndian.Uint16(b[2:])+1
				}
			}(bytes.Clone(buf[:n]))
		}
	}()
	t.Cleanup(func() {
		mu.Lock()
		closed = true
		for _, s := range socks {
			s.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.LocalAddr().String()
}
