package sensor

import (
	"errors"
	"net/netip"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// udpBatchSize is how many datagrams one recvmmsg or sendmmsg call moves at most.
const udpBatchSize = 32

// mmsghdr is struct mmsghdr: a msghdr and the byte count the kernel filled in.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
	_   [4]byte
}

// mmsgBatch is the scratch space of one recvmmsg or sendmmsg call: per message a buffer,
// an address and a control-message area, allocated once per reader.
type mmsgBatch struct {
	msgs  [udpBatchSize]mmsghdr
	iovs  [udpBatchSize]unix.Iovec
	names [udpBatchSize]unix.RawSockaddrInet6 // large enough for either family
	bufs  [udpBatchSize][]byte
	oobs  [udpBatchSize][]byte

	recv func(fd uintptr) bool // readBatch's recvmmsg call and what it got
	got  int
	err  error
}

func newMmsgBatch(bufSize, oobSize int) *mmsgBatch {
	b := &mmsgBatch{}
	for i := range b.bufs {
		b.bufs[i] = make([]byte, bufSize)
		b.oobs[i] = make([]byte, oobSize)
		b.msgs[i].hdr.Iov = &b.iovs[i]
		b.msgs[i].hdr.Iovlen = 1
		b.msgs[i].hdr.Name = (*byte)(unsafe.Pointer(&b.names[i]))
	}
	return b
}

// arm resets message i for a call: its buffer holds n bytes, its control area oobn.
func (b *mmsgBatch) arm(i, n, oobn int) {
	m := &b.msgs[i]
	b.iovs[i].Base = &b.bufs[i][0]
	b.iovs[i].SetLen(n)
	m.hdr.Namelen = uint32(unsafe.Sizeof(b.names[i]))
	if oobn > 0 {
		m.hdr.Control = &b.oobs[i][0]
	} else {
		m.hdr.Control = nil
	}
	m.hdr.SetControllen(oobn)
	m.hdr.Flags = 0
	m.n = 0
}

// from returns message i's address.
func (b *mmsgBatch) from(i int) netip.AddrPort {
	sa := &b.names[i]
	port := func(p uint16) uint16 {
		pb := (*[2]byte)(unsafe.Pointer(&p))
		return uint16(pb[0])<<8 | uint16(pb[1])
	}
	switch sa.Family {
	case unix.AF_INET:
		s4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(s4.Addr), port(s4.Port))
	case unix.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), port(sa.Port))
	}
	return netip.AddrPort{}
}

// setTo stores message i's destination address.
func (b *mmsgBatch) setTo(i int, to netip.AddrPort, v6 bool) {
	sa := &b.names[i]
	*sa = unix.RawSockaddrInet6{}
	pb := (*[2]byte)(unsafe.Pointer(&sa.Port))
	pb[0], pb[1] = byte(to.Port()>>8), byte(to.Port())
	if v6 {
		sa.Family = unix.AF_INET6
		sa.Addr = to.Addr().As16()
		b.msgs[i].hdr.Namelen = unix.SizeofSockaddrInet6
		return
	}
	s4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
	s4.Family = unix.AF_INET
	s4.Addr = to.Addr().Unmap().As4()
	b.msgs[i].hdr.Namelen = unix.SizeofSockaddrInet4
}

// readBatch receives up to udpBatchSize datagrams with one recvmmsg, waiting in the
// runtime's poller until at least one is there. It returns how many it got.
func (l *udpListener) readBatch(b *mmsgBatch) (int, error) {
	for i := range b.msgs {
		b.arm(i, len(b.bufs[i]), len(b.oobs[i]))
	}
	if b.recv == nil { // made once per batch: a closure per call would be an allocation
		b.recv = func(fd uintptr) bool {
			r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.msgs[0])), udpBatchSize, unix.MSG_DONTWAIT, 0, 0)
			switch {
			case e == unix.EAGAIN:
				return false
			case e == unix.EINTR:
				return false
			case e != 0:
				b.err = e
			default:
				b.got = int(r)
			}
			return true
		}
	}
	b.got, b.err = 0, nil
	if err := l.raw.Read(b.recv); err != nil {
		return 0, err
	}
	return b.got, b.err
}

// udpOut collects the answers of one batch of requests and sends them with sendmmsg. It is
// safe for concurrent use (a handler may answer from a goroutine of its own).
type udpOut struct {
	l       *udpListener
	timeout time.Duration
	mu      sync.Mutex
	b       *mmsgBatch
	n       int
	failed  func(err error)

	send  func(fd uintptr) bool // flushLocked's sendmmsg call, made once
	sent  int
	serr  error
	armed time.Time // the write deadline last set on the socket

	last  serviceLookup // the reader's last service lookup (handleDatagram), touched by the reader only
	reply *udpReply     // the reply of the reader's requests to prompt repliers, reused
}

func newUDPOut(l *udpListener, timeout time.Duration, failed func(error)) *udpOut {
	o := &udpOut{l: l, timeout: timeout, b: newMmsgBatch(maxDatagram, 64), failed: failed, reply: newUDPReply()}
	o.send = func(fd uintptr) bool {
		r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&o.b.msgs[o.sent])), uintptr(o.n-o.sent), unix.MSG_DONTWAIT, 0, 0)
		switch {
		case e == unix.EAGAIN || e == unix.EINTR:
			return false
		case e != 0:
			o.serr = e
		default:
			o.sent += int(r)
		}
		return true
	}
	return o
}

// add queues resp to dst from src, sending the batch first when it is full.
func (o *udpOut) add(resp []byte, src netip.Addr, dst netip.AddrPort) {
	if len(resp) > maxDatagram || len(resp) == 0 {
		if err := o.l.write(resp, src, dst, o.timeout); err != nil && o.failed != nil {
			o.failed(err)
		}
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.n == udpBatchSize {
		o.flushLocked()
	}
	i := o.n
	o.n++
	copy(o.b.bufs[i], resp)
	oobn := pktinfoControl(o.b.oobs[i], src, o.l.v6)
	o.b.arm(i, len(resp), oobn)
	o.b.setTo(i, dst, o.l.v6)
}

// flush sends what is queued.
func (o *udpOut) flush() {
	o.mu.Lock()
	o.flushLocked()
	o.mu.Unlock()
}

func (o *udpOut) flushLocked() {
	if o.n == 0 {
		return
	}
	// The write deadline is re-armed only when less than three quarters of the timeout
	// is left (a timer-heap update per batch otherwise); every setter of this socket's
	// write deadline moves it later, so the one armed is at least o.armed.
	if now := time.Now(); o.armed.Sub(now) < o.timeout*3/4 {
		o.armed = now.Add(o.timeout)
		o.l.conn.SetWriteDeadline(o.armed)
	}
	o.sent = 0
	for o.sent < o.n {
		o.serr = nil
		if err := o.l.raw.Write(o.send); err != nil { // deadline or closed: the rest is lost
			if o.failed != nil {
				o.failed(err)
			}
			break
		}
		if o.serr != nil { // this message failed (an unreachable destination): skip it
			if o.failed != nil && !errors.Is(o.serr, syscall.ECONNREFUSED) {
				o.failed(o.serr)
			}
			o.sent++
		}
	}
	o.n = 0
}

// pktinfoControl writes into oob the packet-info control message that makes a datagram
// leave from src, and returns its length.
func pktinfoControl(oob []byte, src netip.Addr, v6 bool) int {
	clear(oob)
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	if v6 {
		h.Level, h.Type = unix.IPPROTO_IPV6, unix.IPV6_PKTINFO
		h.SetLen(unix.CmsgLen(unix.SizeofInet6Pktinfo))
		a := src.As16()
		copy(oob[unix.CmsgLen(0):], a[:])
		return unix.CmsgSpace(unix.SizeofInet6Pktinfo)
	}
	h.Level, h.Type = unix.IPPROTO_IP, unix.IP_PKTINFO
	h.SetLen(unix.CmsgLen(unix.SizeofInet4Pktinfo))
	a := src.Unmap().As4()
	copy(oob[unix.CmsgLen(0)+4:], a[:]) // ipi_spec_dst: the source address to use
	return unix.CmsgSpace(unix.SizeofInet4Pktinfo)
}
