// Command icsnare-ceiling is the bench harness's ceiling: minimal Go servers that do the
// same I/O as icsnare's services for the load generator's workloads and nothing else (no
// sessions, events, metrics, limits or profiles). icsnare's throughput per CPU-second over
// the ceiling's, measured in the same run, is how close the sensor is to the machine's limit.
//
//	icsnare-ceiling -addr 127.37.0.2 -modbus 20502 -s7comm 20102 -snmp 20161 -http 20080 -http-body body.html
//
// Modbus/TCP: one read per wakeup, every complete MBAP frame in it answered (FC3 with zero
// registers, anything else with exception 1), the answers of one read written together.
// s7comm: TPKT header then body through a 512-byte read buffer (one read per frame, as
// icsnare), a canned connection confirm and
// Setup Communication answer, Read Var answered with zero bytes. UDP (SNMP, BACnet): one
// socket per port with IP_PKTINFO, read with recvmmsg, answers sent with sendmmsg from each
// datagram's destination address by a packet-info control message, like icsnare's wildcard
// sockets (-udp-batch=false: one datagram per system call); SNMP turns the GET
// into a GetResponse in place, BACnet answers ReadProperty with a short ComplexACK. HTTP:
// net/http serving -http-body with the header lines of -http-headers, closing the
// connection after each answer when those headers do (an HTTP/1.0 status line without
// keep-alive, or Connection: close), as the sensor's server does. With -idle, Modbus and
// s7comm connections get an idle read deadline armed lazily, as icsnare's connections have:
// the same deadline pattern, for comparing with a ceiling that has none.
package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func main() {
	addr := flag.String("addr", "127.37.0.2", "address to listen on (loopback only)")
	modbus := flag.Int("modbus", 0, "Modbus/TCP `port` (0: off)")
	s7 := flag.Int("s7comm", 0, "s7comm (ISO-on-TCP) `port` (0: off)")
	snmp := flag.Int("snmp", 0, "SNMP UDP `port` (0: off)")
	bacnet := flag.Int("bacnet", 0, "BACnet/IP UDP `port` (0: off)")
	httpPort := flag.Int("http", 0, "HTTP `port` (0: off)")
	body := flag.String("http-body", "", "`file` whose bytes every HTTP GET answers")
	batched := flag.Bool("udp-batch", true, "UDP: recvmmsg/sendmmsg batches, as icsnare (false: one datagram per system call)")
	headers := flag.String("http-headers", "", "`file` of raw response header lines to copy (Date, Content-Length and Connection are the server's own)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile to `file` until the ceiling stops")
	idle := flag.Duration("idle", 0, "Modbus and s7comm: an idle `timeout` per connection, its read deadline armed lazily as icsnare's (0: none)")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			log.Fatalf("icsnare-ceiling: %v", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatalf("icsnare-ceiling: %v", err)
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	a, err := netip.ParseAddr(*addr)
	if err != nil || !a.IsLoopback() {
		log.Fatalf("icsnare-ceiling: -addr must be a loopback address")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 5)
	listen := func(port int, serve func(net.Listener)) {
		if port == 0 {
			return
		}
		ln, err := net.Listen("tcp", netip.AddrPortFrom(a, uint16(port)).String())
		if err != nil {
			log.Fatalf("icsnare-ceiling: %v", err)
		}
		context.AfterFunc(ctx, func() { ln.Close() })
		go serve(ln)
	}
	listen(*modbus, func(ln net.Listener) { errc <- acceptLoop(ln, *idle, serveModbus) })
	listen(*s7, func(ln net.Listener) { errc <- acceptLoop(ln, *idle, serveS7) })
	if *httpPort != 0 {
		h, err := httpHandler(*body, *headers)
		if err != nil {
			log.Fatalf("icsnare-ceiling: %v", err)
		}
		listen(*httpPort, func(ln net.Listener) {
			srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute}
			errc <- srv.Serve(ln)
		})
	}
	for _, u := range []struct {
		port   int
		answer func(req, out []byte) []byte
	}{{*snmp, snmpAnswer}, {*bacnet, bacnetAnswer}} {
		if u.port == 0 {
			continue
		}
		c, err := listenUDP(netip.AddrPortFrom(a, uint16(u.port)))
		if err != nil {
			log.Fatalf("icsnare-ceiling: %v", err)
		}
		context.AfterFunc(ctx, func() { c.Close() })
		serve := serveUDPBatch
		if !*batched {
			serve = serveUDP
		}
		go func() { errc <- serve(c, u.answer) }()
	}
	select {
	case <-ctx.Done():
	case err := <-errc:
		if ctx.Err() == nil {
			log.Fatalf("icsnare-ceiling: %v", err)
		}
	}
}

func acceptLoop(ln net.Listener, idle time.Duration, serve func(net.Conn)) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		if idle > 0 {
			c = &idleConn{Conn: c, idle: idle}
		}
		go func() {
			defer c.Close()
			serve(c)
		}()
	}
}

// idleConn gives each Read an idle deadline, re-armed only when the armed one is within a
// quarter of the timeout: one clock reading per Read and a timer update every few seconds,
// the deadline pattern of icsnare's connections.
type idleConn struct {
	net.Conn
	idle  time.Duration
	armed time.Time
}

func (c *idleConn) Read(b []byte) (int, error) {
	if now := time.Now(); c.armed.Sub(now) < c.idle/4 {
		c.armed = now.Add(c.idle)
		if err := c.Conn.SetReadDeadline(c.armed); err != nil {
			return 0, err
		}
	}
	return c.Conn.Read(b)
}

// serveModbus answers MBAP frames: every complete frame of a read, replies written together.
func serveModbus(c net.Conn) {
	var buf [260 * 4]byte
	out := make([]byte, 0, 4096)
	n := 0
	for {
		m, err := c.Read(buf[n:])
		n += m
		off := 0
		for n-off >= 7 {
			l := 6 + int(binary.BigEndian.Uint16(buf[off+4:]))
			if l < 8 || l > 260 {
				return
			}
			if n-off < l {
				break
			}
			out = modbusAnswer(out, buf[off:off+l])
			off += l
		}
		n = copy(buf[:], buf[off:n])
		if len(out) > 0 {
			if _, err := c.Write(out); err != nil {
				return
			}
			out = out[:0]
		}
		if err != nil {
			return
		}
	}
}

func modbusAnswer(out, req []byte) []byte {
	if req[7] == 3 && len(req) >= 12 {
		q := int(binary.BigEndian.Uint16(req[10:]))
		if q >= 1 && q <= 125 {
			out = append(out, req[0], req[1], 0, 0, 0, byte(3+2*q), req[6], 3, byte(2*q))
			return append(out, make([]byte, 2*q)...)
		}
	}
	return append(out, req[0], req[1], 0, 0, 0, 3, req[6], req[7]|0x80, 1)
}

// serveS7 answers TPKT frames: a CR with a CC, Setup Communication and Read Var jobs with
// Ack-Data, anything else by closing.
func serveS7(c net.Conn) {
	buf := make([]byte, 1024)
	out := make([]byte, 0, 1024)
	r := bufio.NewReaderSize(c, 512)
	for {
		if _, err := io.ReadFull(r, buf[:4]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint16(buf[2:]))
		if buf[0] != 3 || n < 7 || n > len(buf) {
			return
		}
		if _, err := io.ReadFull(r, buf[4:n]); err != nil {
			return
		}
		out = s7Answer(out[:0], buf[:n])
		if out == nil {
			return
		}
		if _, err := c.Write(out); err != nil {
			return
		}
	}
}

// s7Answer appends the answer to one TPKT frame, or returns nil to close.
func s7Answer(out, f []byte) []byte {
	switch {
	case f[5] == 0xe0: // COTP CR: CC with the client's reference, TPDU size 1024, TSAPs echoed
		if len(f) < 11 {
			return nil
		}
		cc := []byte{0x03, 0x00, 0x00, 0x16, 0x11, 0xd0, f[8], f[9], 0x00, 0x01, 0x00,
			0xc0, 0x01, 0x0a, 0xc1, 0x02, 0x01, 0x00, 0xc2, 0x02, 0x01, 0x02}
		return append(out, cc...)
	case f[5] == 0xf0 && len(f) >= 19 && f[7] == 0x32 && f[8] == 0x01:
		ref := f[11:13]
		switch f[17] {
		case 0xf0: // Setup Communication: AmQ 1/1, PDU 240
			return append(out, 0x03, 0x00, 0x00, 0x1b, 0x02, 0xf0, 0x80, 0x32, 0x03, 0x00, 0x00, ref[0], ref[1],
				0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0xf0, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0xf0)
		case 0x04: // Read Var, one item: its length in bytes
			if len(f) < 31 {
				return nil
			}
			n := int(binary.BigEndian.Uint16(f[23:]))
			if n > 200 {
				return nil
			}
			total := 4 + 3 + 12 + 2 + 4 + n
			out = append(out, 0x03, 0x00, byte(total>>8), byte(total), 0x02, 0xf0, 0x80, 0x32, 0x03, 0x00, 0x00, ref[0], ref[1],
				0x00, 0x02, byte((4+n)>>8), byte(4+n), 0x00, 0x00, 0x04, 0x01, 0xff, 0x04, byte((8*n)>>8), byte(8*n))
			return append(out, make([]byte, n)...)
		}
	}
	return nil
}

func httpHandler(bodyFile, headerFile string) (http.Handler, error) {
	body, err := os.ReadFile(bodyFile)
	if err != nil {
		return nil, fmt.Errorf("-http-body: %w", err)
	}
	hdr := http.Header{}
	closing := false
	if headerFile != "" {
		raw, err := os.ReadFile(headerFile)
		if err != nil {
			return nil, fmt.Errorf("-http-headers: %w", err)
		}
		keepAlive := true
		for _, line := range strings.Split(string(raw), "\n") {
			line = strings.TrimRight(line, "\r")
			if strings.HasPrefix(line, "HTTP/1.0 ") {
				keepAlive = false // an HTTP/1.0 answer closes unless it says keep-alive
				continue
			}
			k, v, ok := strings.Cut(line, ":")
			if !ok || strings.HasPrefix(k, "HTTP/") {
				continue
			}
			switch http.CanonicalHeaderKey(k) {
			case "Connection":
				keepAlive = strings.EqualFold(strings.TrimSpace(v), "keep-alive")
				continue
			case "Date", "Content-Length", "Keep-Alive":
				continue
			}
			hdr.Add(k, strings.TrimSpace(v))
		}
		closing = !keepAlive
	}
	n := strconv.Itoa(len(body))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		for k, v := range hdr {
			h[k] = v
		}
		h["Content-Length"] = []string{n}
		if closing {
			h["Connection"] = []string{"close"} // one request per connection, as the sensor's server
		}
		w.Write(body)
	}), nil
}

func listenUDP(a netip.AddrPort) (*net.UDPConn, error) {
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(a))
	if err != nil {
		return nil, err
	}
	c.SetReadBuffer(4 << 20)
	c.SetWriteBuffer(4 << 20)
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
	}); err != nil {
		return nil, err
	}
	return c, serr
}

// serveUDP answers each datagram from its destination address (IPv4 packet info).
func serveUDP(c *net.UDPConn, answer func(req, out []byte) []byte) error {
	buf := make([]byte, 9216)
	out := make([]byte, 0, 9216)
	oob := make([]byte, unix.CmsgSpace(unix.SizeofInet6Pktinfo))
	var woob [unix.SizeofCmsghdr + 16]byte
	h := (*unix.Cmsghdr)(unsafe.Pointer(&woob[0]))
	h.Level, h.Type = unix.IPPROTO_IP, unix.IP_PKTINFO
	h.SetLen(unix.CmsgLen(unix.SizeofInet4Pktinfo))
	wn := unix.CmsgSpace(unix.SizeofInet4Pktinfo)
	for {
		n, oobn, _, from, err := c.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			continue
		}
		dst, ok := pktinfoDst(oob[:oobn])
		if !ok {
			continue
		}
		out = answer(buf[:n], out[:0])
		if out == nil {
			continue
		}
		a := dst.As4()
		copy(woob[unix.CmsgLen(0)+4:], a[:])
		c.WriteMsgUDPAddrPort(out, woob[:wn], from)
	}
}

// pktinfoDst reads the destination of an IPv4 datagram from its IP_PKTINFO message
// (the first control message: the socket asks for no other).
func pktinfoDst(oob []byte) (netip.Addr, bool) {
	if len(oob) < unix.CmsgLen(unix.SizeofInet4Pktinfo) {
		return netip.Addr{}, false
	}
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	if h.Level != unix.IPPROTO_IP || h.Type != unix.IP_PKTINFO || int(h.Len) > len(oob) {
		return netip.Addr{}, false
	}
	d := oob[unix.CmsgLen(0):]
	return netip.AddrFrom4([4]byte(d[8:12])), true
}

// snmpAnswer turns an SNMP GetRequest into a GetResponse by changing the PDU's tag.
func snmpAnswer(req, out []byte) []byte {
	i := 0
	hdr := func(tag byte) (int, bool) {
		if i+2 > len(req) || req[i] != tag {
			return 0, false
		}
		n := int(req[i+1])
		i += 2
		if n&0x80 != 0 {
			k := n & 0x7f
			if k == 0 || k > 2 || i+k > len(req) {
				return 0, false
			}
			n = 0
			for j := 0; j < k; j++ {
				n = n<<8 | int(req[i+j])
			}
			i += k
		}
		return n, i+n <= len(req)
	}
	if _, ok := hdr(0x30); !ok {
		return nil
	}
	for _, tag := range []byte{0x02, 0x04} {
		n, ok := hdr(tag)
		if !ok {
			return nil
		}
		i += n
	}
	if i >= len(req) || req[i] != 0xa0 {
		return nil
	}
	out = append(out, req...)
	out[i] = 0xa2
	return out
}

// bacnetAnswer answers a confirmed ReadProperty with a ComplexACK carrying a short
// CharacterString.
func bacnetAnswer(req, out []byte) []byte {
	// BVLC (4), NPDU 01 04 (expecting a reply), APDU: type, max segments/APDU, invoke id, service.
	if len(req) < 10 || req[0] != 0x81 || req[4] != 0x01 || req[5] != 0x04 || req[6]>>4 != 0 || req[9] != 0x0c {
		return nil
	}
	apdu := []byte{0x30, req[8], 0x0c, 0x0c, 0x02, 0x3f, 0xff, 0xff, 0x19, 0x4d, 0x3e, 0x75, 0x08, 0x00,
		'c', 'e', 'i', 'l', 'i', 'n', 'g', 0x3f}
	n := 6 + len(apdu)
	out = append(out, 0x81, 0x0a, byte(n>>8), byte(n), 0x01, 0x00)
	return append(out, apdu...)
}
