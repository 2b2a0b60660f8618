package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

// TFTP mode defaults and bounds.
const (
	// tftpDefaultFile is -file "": the file Conpot's default template serves, and so the
	// tftp package's test profile (protocols/tftp/testdata/conpot): 50 bytes, one block.
	tftpDefaultFile = "tftp_data.txt"
	tftpMaxName     = 255
	tftpBlock       = 512             // RFC 1350's block size: no options are asked for
	tftpMaxFile     = 16 << 20        // bytes of one transfer
	tftpBlockWait   = 2 * time.Second // wait for the next block
	tftpMaxStray    = 64              // other sources' or stale packets tolerated per transfer
)

// TFTP opcodes and the error codes this client sends (RFC 1350).
const (
	tftpRRQ   = 1
	tftpDATA  = 3
	tftpACK   = 4
	tftpERROR = 5

	tftpErrUndefined = 0
	tftpErrDiskFull  = 3
	tftpErrUnknownID = 5
)

// tftpLoad reads -file (default tftp_data.txt) by RFC 1350 RRQ in octet mode, without
// options (512-byte blocks): one request is one whole transfer, from the RRQ to the ACK of
// the block shorter than 512 bytes. Each connection is one UDP socket that runs its
// transfers one after another.
type tftpLoad struct{ o opts }

func newTFTP(o opts) workload { return &tftpLoad{o} }

// file is the file each request reads.
func (l *tftpLoad) file() string {
	if l.o.file == "" {
		return tftpDefaultFile
	}
	return l.o.file
}

// check implements checker.
func (l *tftpLoad) check() error {
	if f := l.file(); len(f) == 0 || len(f) > tftpMaxName || strings.IndexByte(f, 0) >= 0 {
		return fmt.Errorf("tftp: -file: 1..%d bytes without NUL", tftpMaxName)
	}
	return nil
}

// tftpConn is one connection's socket and the server's address.
type tftpConn struct {
	ctx    context.Context
	c      *net.UDPConn
	server netip.AddrPort
	rrq    [2][]byte // the request in two spellings of its mode, used in turn
	n      int       // transfers run
	buf    []byte
	ack    [4]byte
}

func (l *tftpLoad) run(ctx context.Context, target string, rec *recorder, budget *pacer) error {
	server, err := netip.ParseAddrPort(target)
	if err != nil {
		return fmt.Errorf("tftp: target: %w", err)
	}
	server = netip.AddrPortFrom(server.Addr().Unmap(), server.Port())
	network := "udp4"
	if server.Addr().Is6() {
		network = "udp6"
	}
	c, err := net.ListenUDP(network, nil)
	if err != nil {
		return fmt.Errorf("tftp: %w", err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Now()) })
	defer stop()
	t := &tftpConn{ctx: ctx, c: c, server: server, buf: make([]byte, tftpBlock+64)}
	// The server recognises a repeat of the request of the transfer it runs (a client that
	// missed the first block) and does not start a second one; the next request may reach
	// it before the last transfer has ended there. RFC 1350 modes are case-insensitive, so
	// successive requests alternate "octet" and "OCTET" and never repeat the previous one.
	for i, mode := range []string{"octet", "OCTET"} {
		t.rrq[i] = tftpRequest(tftpRRQ, l.file(), mode)
	}
	for {
		sent := time.Now()
		_, err := t.read()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			err = fmt.Errorf("tftp: read %s: %w", l.file(), err)
		}
		rec.record(sent, err)
		if err != nil {
			return err
		}
		if budget.Add(-1) <= 0 {
			return nil
		}
	}
}

// tftpRequest is an RRQ or WRQ: opcode, file name, NUL, mode, NUL.
func tftpRequest(op uint16, file, mode string) []byte {
	b := binary.BigEndian.AppendUint16(make([]byte, 0, 4+len(file)+len(mode)), op)
	b = append(append(b, file...), 0)
	return append(append(b, mode...), 0)
}

// tftpError is an ERROR packet.
func tftpError(code uint16, msg string) []byte {
	b := binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, tftpERROR), code)
	return append(append(b, msg...), 0)
}

// ackOf is the ACK of a block, in the connection's buffer.
func (t *tftpConn) ackOf(block uint16) []byte {
	binary.BigEndian.PutUint16(t.ack[:], tftpACK)
	binary.BigEndian.PutUint16(t.ack[2:], block)
	return t.ack[:]
}

// errTFTPCancelled is a transfer the load ended (ctx), not a failure.
var errTFTPCancelled = errors.New("cancelled")

// read runs one whole transfer and returns the file's size. The server's transfer id (its
// address and port) is the source of the first DATA, which must come from the server's
// address; a packet from another source afterwards gets ERROR 5 and is otherwise ignored
// (RFC 1350 section 4), as are repeats of the previous block.
func (t *tftpConn) read() (int, error) {
	rrq := t.rrq[t.n%2]
	t.n++
	if _, err := t.c.WriteToUDPAddrPort(rrq, t.server); err != nil {
		return 0, fmt.Errorf("send RRQ: %w", err)
	}
	var tid netip.AddrPort // the server's, once known
	// abort ends the transfer at the server too (when it has one) rather than leaving it to
	// retransmit and hold its transfer slot.
	abort := func(code uint16, msg string, err error) (int, error) {
		if tid.IsValid() {
			t.c.WriteToUDPAddrPort(tftpError(code, msg), tid)
		}
		return 0, err
	}
	size, stray := 0, 0
	block := uint16(1) // the block awaited
	deadline := time.Now().Add(tftpBlockWait)
	for {
		t.c.SetReadDeadline(deadline)
		if t.ctx.Err() != nil { // set before the deadline above: the AfterFunc's may be lost
			return abort(tftpErrUndefined, "Transfer cancelled", errTFTPCancelled)
		}
		n, from, err := t.c.ReadFromUDPAddrPort(t.buf)
		if err != nil {
			if t.ctx.Err() != nil {
				return abort(tftpErrUndefined, "Transfer cancelled", errTFTPCancelled)
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return abort(tftpErrUndefined, "Timeout", fmt.Errorf("no block %d within %s", block, tftpBlockWait))
			}
			return abort(tftpErrUndefined, "Client error", fmt.Errorf("receive: %w", err))
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		p := t.buf[:n]
		if from != tid && (tid.IsValid() || from.Addr() != t.server.Addr()) {
			// Not this transfer's: another host, or another port once the server's is known.
			if stray++; stray > tftpMaxStray {
				return abort(tftpErrUndefined, "Too many stray packets", fmt.Errorf("over %d stray packets", tftpMaxStray))
			}
			if tid.IsValid() {
				t.c.WriteToUDPAddrPort(tftpError(tftpErrUnknownID, "Unknown transfer ID"), from)
			}
			continue
		}
		if n < 4 {
			return abort(tftpErrUndefined, "Illegal TFTP operation", fmt.Errorf("short packet % x", p))
		}
		op, num := binary.BigEndian.Uint16(p), binary.BigEndian.Uint16(p[2:])
		switch {
		case op == tftpERROR:
			msg, _, _ := strings.Cut(string(p[4:]), "\x00")
			return 0, fmt.Errorf("ERROR %d %q", num, ftpClip(msg))
		case op != tftpDATA:
			return abort(tftpErrUndefined, "Illegal TFTP operation", fmt.Errorf("opcode %d, want DATA", op))
		case num == block-1 && tid.IsValid():
			// The server repeats the previous block: it missed our ACK.
			if stray++; stray > tftpMaxStray {
				return abort(tftpErrUndefined, "Too many repeats", fmt.Errorf("over %d repeated blocks", tftpMaxStray))
			}
			t.c.WriteToUDPAddrPort(t.ackOf(num), tid)
			continue
		case num != block:
			return abort(tftpErrUndefined, "Illegal TFTP operation", fmt.Errorf("block %d, want %d", num, block))
		case n-4 > tftpBlock:
			return abort(tftpErrUndefined, "Illegal TFTP operation", fmt.Errorf("block %d over %d bytes", num, tftpBlock))
		}
		tid = from
		if size += n - 4; size > tftpMaxFile {
			return abort(tftpErrDiskFull, "Disk full or allocation exceeded", fmt.Errorf("over %d bytes", tftpMaxFile))
		}
		if _, err := t.c.WriteToUDPAddrPort(t.ackOf(num), tid); err != nil {
			return 0, fmt.Errorf("send ACK %d: %w", num, err)
		}
		if n-4 < tftpBlock {
			return size, nil
		}
		block++
		deadline = time.Now().Add(tftpBlockWait)
	}
}
