package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// EtherNet/IP encapsulation (CIP Vol. 2, ch. 2): a 24-octet little-endian header
// (command, length, session handle, status, sender context, options), then the data.
const (
	encapListIdentity    = 0x0063
	encapRegisterSession = 0x0065
	encapSendRRData      = 0x006F
	encapHeaderLen       = 24
)

// encapFrame builds an encapsulation frame; ctx goes into the sender context.
func encapFrame(cmd uint16, session uint32, ctx uint64, data []byte) []byte {
	b := make([]byte, encapHeaderLen, encapHeaderLen+len(data))
	binary.LittleEndian.PutUint16(b[0:], cmd)
	binary.LittleEndian.PutUint16(b[2:], uint16(len(data)))
	binary.LittleEndian.PutUint32(b[4:], session)
	binary.LittleEndian.PutUint64(b[12:], ctx)
	return append(b, data...)
}

// encapHeader is a parsed encapsulation header.
type encapHeader struct {
	cmd     uint16
	length  int
	session uint32
	status  uint32
	ctx     uint64
}

func parseEncapHeader(b []byte) (encapHeader, error) {
	if len(b) < encapHeaderLen {
		return encapHeader{}, fmt.Errorf("enip: short header (%d octets)", len(b))
	}
	return encapHeader{
		cmd:     binary.LittleEndian.Uint16(b[0:]),
		length:  int(binary.LittleEndian.Uint16(b[2:])),
		session: binary.LittleEndian.Uint32(b[4:]),
		status:  binary.LittleEndian.Uint32(b[8:]),
		ctx:     binary.LittleEndian.Uint64(b[12:]),
	}, nil
}

// checkListIdentity checks a whole ListIdentity reply: header, one or more CPF items, the
// first an Identity item (0x0C) whose length fits.
func checkListIdentity(b []byte, ctx uint64) error {
	h, err := parseEncapHeader(b)
	if err != nil {
		return err
	}
	if h.cmd != encapListIdentity || h.status != 0 || h.ctx != ctx || h.length != len(b)-encapHeaderLen {
		return fmt.Errorf("enip: unexpected ListIdentity reply header %+v (%d octets)", h, len(b))
	}
	d := b[encapHeaderLen:]
	if len(d) < 6 || binary.LittleEndian.Uint16(d) == 0 || binary.LittleEndian.Uint16(d[2:]) != 0x0C ||
		int(binary.LittleEndian.Uint16(d[4:])) > len(d)-6 || binary.LittleEndian.Uint16(d[4:]) < 33 {
		return fmt.Errorf("enip: ListIdentity reply without an identity item: % x", d)
	}
	return nil
}

// registerSession is RegisterSession's data: protocol version 1, options 0.
func registerSession() []byte {
	return encapFrame(encapRegisterSession, 0, 0, []byte{1, 0, 0, 0})
}

// symbolicPath is an ANSI extended symbolic segment (0x91), padded to a word.
func symbolicPath(tag string) []byte {
	p := append([]byte{0x91, byte(len(tag))}, tag...)
	if len(p)%2 == 1 {
		p = append(p, 0)
	}
	return p
}

// readTagRequest is a SendRRData carrying an unconnected Logix Read Tag (0x4C) of one
// element of tag, addressed to the Message Router (null address item + unconnected data).
func readTagRequest(session uint32, ctx uint64, tag string) []byte {
	path := symbolicPath(tag)
	cip := append([]byte{0x4C, byte(len(path) / 2)}, path...)
	cip = append(cip, 1, 0) // element count
	d := make([]byte, 16, 16+len(cip))
	// interface handle 0, timeout 0, item count 2, null address (0x0000, 0), data (0x00B2, n)
	binary.LittleEndian.PutUint16(d[6:], 2)
	binary.LittleEndian.PutUint16(d[12:], 0x00B2)
	binary.LittleEndian.PutUint16(d[14:], uint16(len(cip)))
	return encapFrame(encapSendRRData, session, ctx, append(d, cip...))
}

// parseReadTagReply checks a SendRRData reply to Read Tag and returns the CIP data type
// and the value octets.
func parseReadTagReply(b []byte, session uint32, ctx uint64) (uint16, []byte, error) {
	h, err := parseEncapHeader(b)
	if err != nil {
		return 0, nil, err
	}
	if h.cmd != encapSendRRData || h.status != 0 || h.session != session || h.ctx != ctx || h.length != len(b)-encapHeaderLen {
		return 0, nil, fmt.Errorf("enip: unexpected SendRRData reply header %+v", h)
	}
	d := b[encapHeaderLen:]
	if len(d) < 16 || binary.LittleEndian.Uint16(d[6:]) != 2 || binary.LittleEndian.Uint16(d[8:]) != 0 ||
		binary.LittleEndian.Uint16(d[12:]) != 0x00B2 {
		return 0, nil, fmt.Errorf("enip: unexpected CPF in reply: % x", d)
	}
	n := int(binary.LittleEndian.Uint16(d[14:]))
	cip := d[16:]
	if n != len(cip) || n < 4 {
		return 0, nil, fmt.Errorf("enip: data item length %d of %d octets", n, len(cip))
	}
	if cip[0] != 0xCC {
		return 0, nil, fmt.Errorf("enip: reply service 0x%02x, want 0xCC", cip[0])
	}
	ext := 4 + 2*int(cip[3])
	if cip[2] != 0 {
		return 0, nil, fmt.Errorf("enip: Read Tag general status 0x%02x", cip[2])
	}
	if len(cip) < ext+2 {
		return 0, nil, errors.New("enip: Read Tag reply without a type")
	}
	return binary.LittleEndian.Uint16(cip[ext:]), cip[ext+2:], nil
}

// readEncap reads one encapsulation frame from a stream.
func readEncap(r io.Reader, buf []byte) ([]byte, error) {
	if _, err := io.ReadFull(r, buf[:encapHeaderLen]); err != nil {
		return nil, err
	}
	n := int(binary.LittleEndian.Uint16(buf[2:]))
	if encapHeaderLen+n > len(buf) {
		return nil, fmt.Errorf("enip: frame of %d octets", n)
	}
	if _, err := io.ReadFull(r, buf[encapHeaderLen:encapHeaderLen+n]); err != nil {
		return nil, err
	}
	return buf[:encapHeaderLen+n], nil
}

// enipIdentityLoad sends ListIdentity requests, over UDP (one outstanding per socket, a
// lost reply counts as an error after a second) or TCP (depth in flight).
type enipIdentityLoad struct{ o opts }

func newENIPIdentity(o opts) workload { return &enipIdentityLoad{o} }

func (e *enipIdentityLoad) run(ctx context.Context, target string, rec *recorder, budget *pacer) error {
	if e.o.transport == "tcp" {
		return e.runTCP(ctx, target, rec, budget)
	}
	c, err := net.Dial("udp", target)
	if err != nil {
		return fmt.Errorf("enip: %w", err)
	}
	defer c.Close()
	buf := make([]byte, 2048)
	var seq uint64
	for ctx.Err() == nil {
		seq++
		sent := time.Now()
		if _, err := c.Write(encapFrame(encapListIdentity, 0, seq, nil)); err != nil {
			return fmt.Errorf("enip: %w", err)
		}
		c.SetReadDeadline(time.Now().Add(time.Second))
		for {
			n, err := c.Read(buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					rec.record(sent, err)
					break
				}
				return fmt.Errorf("enip: read: %w", err)
			}
			if h, err := parseEncapHeader(buf[:n]); err == nil && h.ctx != seq {
				continue // a late reply to an earlier request
			}
			rerr := checkListIdentity(buf[:n], seq)
			rec.record(sent, rerr)
			if rerr != nil {
				return rerr
			}
			break
		}
		if budget.Add(-1) <= 0 {
			return nil
		}
	}
	return nil
}

// pipelined runs a request/reply exchange over one TCP connection with depth requests in
// flight; the sender context carries a sequence number matching replies to send times.
func pipelined(ctx context.Context, c net.Conn, depth int, rec *recorder, budget *pacer,
	req func(seq uint64) []byte, check func(reply []byte, seq uint64) error) error {
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	br := bufio.NewReaderSize(c, 64<<10)
	buf := make([]byte, encapHeaderLen+65535)
	sent := make(map[uint64]time.Time, depth)
	var next uint64
	send := func() error {
		next++
		sent[next] = time.Now()
		_, err := c.Write(req(next))
		return err
	}
	for i := 0; i < depth; i++ {
		if err := send(); err != nil {
			return err
		}
	}
	for {
		b, err := readEncap(br, buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("enip: read: %w", err)
		}
		h, _ := parseEncapHeader(b)
		t, ok := sent[h.ctx]
		if !ok {
			return fmt.Errorf("enip: reply for unknown sender context %d", h.ctx)
		}
		delete(sent, h.ctx)
		rerr := check(b, h.ctx)
		rec.record(t, rerr)
		if rerr != nil {
			return rerr
		}
		if ctx.Err() != nil || budget.Add(-1) <= 0 {
			return nil
		}
		if err := send(); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

func (e *enipIdentityLoad) runTCP(ctx context.Context, target string, rec *recorder, budget *pacer) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		return fmt.Errorf("enip: %w", err)
	}
	defer c.Close()
	return pipelined(ctx, c, e.o.depth, rec, budget,
		func(seq uint64) []byte { return encapFrame(encapListIdentity, 0, seq, nil) },
		checkListIdentity)
}

// enipReadTagLoad registers a session per connection, then reads one tag with
// unconnected Read Tag requests, depth in flight.
type enipReadTagLoad struct{ o opts }

func newENIPReadTag(o opts) workload { return &enipReadTagLoad{o} }

func (e *enipReadTagLoad) run(ctx context.Context, target string, rec *recorder, budget *pacer) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		return fmt.Errorf("enip: %w", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(registerSession()); err != nil {
		return fmt.Errorf("enip: RegisterSession: %w", err)
	}
	b, err := readEncap(c, make([]byte, 512))
	if err != nil {
		return fmt.Errorf("enip: RegisterSession: %w", err)
	}
	h, _ := parseEncapHeader(b)
	if h.cmd != encapRegisterSession || h.status != 0 || h.session == 0 {
		return fmt.Errorf("enip: RegisterSession refused: %+v", h)
	}
	c.SetDeadline(time.Time{})
	session := h.session
	return pipelined(ctx, c, e.o.depth, rec, budget,
		func(seq uint64) []byte { return readTagRequest(session, seq, e.o.tag) },
		func(b []byte, seq uint64) error { _, _, err := parseReadTagReply(b, session, seq); return err })
}
