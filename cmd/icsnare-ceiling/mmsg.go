package main

import (
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The ceiling's UDP path uses the sensor's batch pattern: recvmmsg of up to batchSize
// datagrams with their packet info, then one sendmmsg of the answers, each with a
// packet-info control message naming its source address.

const batchSize = 32

type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
	_   [4]byte
}

type batch struct {
	msgs  [batchSize]mmsghdr
	iovs  [batchSize]unix.Iovec
	names [batchSize]unix.RawSockaddrInet4
	bufs  [batchSize][]byte
	oobs  [batchSize][]byte
}

func newBatch() *batch {
	b := &batch{}
	for i := range b.bufs {
		b.bufs[i] = make([]byte, 9216)
		b.oobs[i] = make([]byte, 64)
		b.msgs[i].hdr.Iov = &b.iovs[i]
		b.msgs[i].hdr.Iovlen = 1
		b.msgs[i].hdr.Name = (*byte)(unsafe.Pointer(&b.names[i]))
	}
	return b
}

func (b *batch) arm(i, n, oobn int) {
	b.iovs[i].Base = &b.bufs[i][0]
	b.iovs[i].SetLen(n)
	b.msgs[i].hdr.Namelen = unix.SizeofSockaddrInet4
	b.msgs[i].hdr.Control = &b.oobs[i][0]
	b.msgs[i].hdr.SetControllen(oobn)
}

// serveUDPBatch answers datagrams in batches from their destination addresses (IPv4).
func serveUDPBatch(c *net.UDPConn, answer func(req, out []byte) []byte) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	in, out := newBatch(), newBatch()
	for {
		for i := range in.msgs {
			in.arm(i, len(in.bufs[i]), len(in.oobs[i]))
		}
		var n int
		err := rc.Read(func(fd uintptr) bool {
			r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&in.msgs[0])), batchSize, unix.MSG_DONTWAIT, 0, 0)
			if e == unix.EAGAIN || e == unix.EINTR {
				return false
			}
			if e == 0 {
				n = int(r)
			}
			return true
		})
		if err != nil {
			return nil // closed
		}
		k := 0
		for i := 0; i < n; i++ {
			dst, ok := pktinfoDst(in.oobs[i][:in.msgs[i].hdr.Controllen])
			if !ok {
				continue
			}
			resp := answer(in.bufs[i][:in.msgs[i].n], out.bufs[k][:0])
			if resp == nil {
				continue
			}
			clear(out.oobs[k][:unix.CmsgSpace(unix.SizeofInet4Pktinfo)])
			h := (*unix.Cmsghdr)(unsafe.Pointer(&out.oobs[k][0]))
			h.Level, h.Type = unix.IPPROTO_IP, unix.IP_PKTINFO
			h.SetLen(unix.CmsgLen(unix.SizeofInet4Pktinfo))
			a := dst.As4()
			copy(out.oobs[k][unix.CmsgLen(0)+4:], a[:])
			out.arm(k, len(resp), unix.CmsgSpace(unix.SizeofInet4Pktinfo))
			out.names[k] = in.names[i]
			k++
		}
		for sent := 0; sent < k; {
			werr := rc.Write(func(fd uintptr) bool {
				r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&out.msgs[sent])), uintptr(k-sent), unix.MSG_DONTWAIT, 0, 0)
				if e == unix.EAGAIN || e == unix.EINTR {
					return false
				}
				if e != 0 {
					sent++ // skip the message that failed
				} else {
					sent += int(r)
				}
				return true
			})
			if werr != nil {
				return nil
			}
		}
	}
}
