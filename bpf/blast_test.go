package bpf

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// blaster sends UDP/IPv4 frames with spoofed sources through an AF_PACKET socket
// (PACKET_QDISC_BYPASS, sendmmsg in batches of 64), like perf.md's udpblast. Frames are
// 60 bytes: Ethernet + IPv4 + UDP + 18 bytes of payload.
type blaster struct {
	fd       int
	frames   []byte // batch*frameLen
	iovs     []unix.Iovec
	hdrs     []mmsghdr
	srcMAC   net.HardwareAddr
	dstMAC   net.HardwareAddr
	dst      [4]byte
	dport    uint16
	nSources uint32 // distinct sources: 10.0.0.0 + i mod nSources
	next     uint32
}

const (
	blastBatch = 64
	frameLen   = 60
)

// mmsghdr is struct mmsghdr (x/sys/unix has no Sendmmsg).
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
	_   [4]byte
}

// newBlaster opens the socket on ifname in the calling thread's network namespace.
func newBlaster(ifname string, srcMAC, dstMAC net.HardwareAddr, dst net.IP, dport uint16, nSources uint32) (*blaster, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, err
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("AF_PACKET socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifi.Index}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("PACKET_QDISC_BYPASS: %w", err)
	}
	b := &blaster{fd: fd, frames: make([]byte, blastBatch*frameLen), iovs: make([]unix.Iovec, blastBatch),
		hdrs: make([]mmsghdr, blastBatch), srcMAC: srcMAC, dstMAC: dstMAC, dport: dport, nSources: nSources}
	copy(b.dst[:], dst.To4())
	for i := 0; i < blastBatch; i++ {
		f := b.frames[i*frameLen : (i+1)*frameLen]
		b.template(f)
		b.iovs[i].Base = &f[0]
		b.iovs[i].SetLen(frameLen)
		b.hdrs[i].hdr.Iov = &b.iovs[i]
		b.hdrs[i].hdr.SetIovlen(1)
	}
	return b, nil
}

func (b *blaster) template(f []byte) {
	copy(f[0:6], b.dstMAC)
	copy(f[6:12], b.srcMAC)
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:34]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], frameLen-14)
	ip[8] = 64
	ip[9] = 17
	copy(ip[16:20], b.dst[:])
	udp := f[34:42]
	binary.BigEndian.PutUint16(udp[0:], 40000)
	binary.BigEndian.PutUint16(udp[2:], b.dport)
	binary.BigEndian.PutUint16(udp[4:], frameLen-34)
	copy(f[42:], "icsnare-blast-0123")
}

// fill writes the next source addresses and header checksums into the batch.
func (b *blaster) fill() {
	for i := 0; i < blastBatch; i++ {
		ip := b.frames[i*frameLen+14 : i*frameLen+34]
		src := 0x0a000000 + b.next%b.nSources
		b.next++
		binary.BigEndian.PutUint32(ip[12:16], src)
		ip[10], ip[11] = 0, 0
		var sum uint32
		for j := 0; j < 20; j += 2 {
			sum += uint32(ip[j])<<8 | uint32(ip[j+1])
		}
		for sum > 0xffff {
			sum = sum&0xffff + sum>>16
		}
		binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	}
}

// blast sends up to max frames for at most d, at most pps per second (0: as fast as
// possible), and returns how many the socket accepted.
func (b *blaster) blast(max int, d time.Duration, pps int) (int, error) {
	sent, _, err := b.blastCPU(max, d, pps)
	return sent, err
}

// blastCPU is blast that also returns the CPU time the sending thread used
// (schedstat, exact). On veth the receive side (XDP or the stack) mostly runs inline
// in the sender's softirq, so this is the cost of sending plus receiving.
func (b *blaster) blastCPU(max int, d time.Duration, pps int) (int, time.Duration, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	// At nice -20 (root only; otherwise unchanged), so that other work on the machine
	// takes less of the sending thread's core; restored before the thread is unlocked.
	tid := unix.Gettid()
	if prio, err := unix.Getpriority(unix.PRIO_PROCESS, tid); err == nil { // the raw syscall: 20 - nice
		if unix.Setpriority(unix.PRIO_PROCESS, tid, -20) == nil {
			defer unix.Setpriority(unix.PRIO_PROCESS, tid, 20-prio)
		}
	}
	cpu0 := threadCPU()
	sent, err := b.send(max, d, pps)
	return sent, threadCPU() - cpu0, err
}

// threadCPU is the calling thread's time on CPU from /proc/thread-self/schedstat.
func threadCPU() time.Duration {
	data, err := os.ReadFile("/proc/thread-self/schedstat")
	if err != nil {
		return 0
	}
	var ns int64
	fmt.Sscan(string(data), &ns)
	return time.Duration(ns)
}

func (b *blaster) send(max int, d time.Duration, pps int) (int, error) {
	start := time.Now()
	deadline := start.Add(d)
	sent := 0
	for batch := 0; sent < max; batch++ {
		if batch%16 == 0 {
			now := time.Now()
			if now.After(deadline) {
				break
			}
			if pps > 0 {
				if ahead := time.Duration(float64(sent)/float64(pps)*float64(time.Second)) - now.Sub(start); ahead > 0 {
					time.Sleep(ahead)
				}
			}
		}
		b.fill()
		n, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(b.fd), uintptr(unsafe.Pointer(&b.hdrs[0])), blastBatch, 0, 0, 0)
		runtime.KeepAlive(b.frames)
		runtime.KeepAlive(b.iovs)
		if errno != 0 {
			if errno == unix.ENOBUFS || errno == unix.EAGAIN {
				continue
			}
			return sent, fmt.Errorf("sendmmsg: %w", errno)
		}
		sent += int(n)
	}
	return sent, nil
}

func (b *blaster) Close() error { return unix.Close(b.fd) }
