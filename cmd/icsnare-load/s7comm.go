package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"time"
)

// s7Load connects over ISO-on-TCP (COTP CR to rack 0 slot 2, Setup Communication), then
// sends S7comm Read Var jobs for bytes of the M area, one outstanding per connection.
type s7Load struct{ o opts }

func newS7(o opts) workload { return &s7Load{o} }

// s7CR is a TPKT-framed COTP connection request: source reference 1, class 0, TPDU size
// 1024, calling TSAP 01 00, called TSAP 01 02 (rack 0, slot 2).
var s7CR = []byte{0x03, 0x00, 0x00, 0x16, 0x11, 0xe0, 0x00, 0x00, 0x00, 0x01, 0x00,
	0xc0, 0x01, 0x0a, 0xc1, 0x02, 0x01, 0x00, 0xc2, 0x02, 0x01, 0x02}

// s7Setup is a Setup Communication job: AmQ 1/1, PDU size 240.
var s7Setup = []byte{0x03, 0x00, 0x00, 0x19, 0x02, 0xf0, 0x80, 0x32, 0x01, 0x00, 0x00, 0x00, 0x01,
	0x00, 0x08, 0x00, 0x00, 0xf0, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0xf0}

// s7ReadVar is a Read Var job for n bytes of the M area from byte 0, with PDU reference ref.
func s7ReadVar(ref uint16, n int) []byte {
	b := []byte{0x03, 0x00, 0x00, 0x1f, 0x02, 0xf0, 0x80,
		0x32, 0x01, 0x00, 0x00, 0, 0, 0x00, 0x0e, 0x00, 0x00,
		0x04, 0x01, 0x12, 0x0a, 0x10, 0x02, 0, 0, 0x00, 0x00, 0x83, 0x00, 0x00, 0x00}
	binary.BigEndian.PutUint16(b[11:], ref)
	binary.BigEndian.PutUint16(b[23:], uint16(n))
	return b
}

// readTPKT reads one TPKT frame into buf (grown as needed).
func readTPKT(r io.Reader, buf []byte) ([]byte, error) {
	if _, err := io.ReadFull(r, buf[:4]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(buf[2:]))
	if buf[0] != 3 || n < 7 || n > len(buf) {
		return nil, fmt.Errorf("bad TPKT header % x", buf[:4])
	}
	if _, err := io.ReadFull(r, buf[4:n]); err != nil {
		return nil, err
	}
	return buf[:n], nil
}

// s7AckOK checks an Ack-Data answering ref: no error, and for a Read Var one item with
// return code 0xFF.
func s7AckOK(f []byte, ref uint16, read bool) error {
	if len(f) < 19 || f[7] != 0x32 || f[8] != 0x03 || binary.BigEndian.Uint16(f[11:]) != ref || f[17] != 0 || f[18] != 0 {
		return fmt.Errorf("s7comm: unexpected answer % x", f[:min(len(f), 21)])
	}
	if read && (len(f) < 22 || f[21] != 0xff) {
		return fmt.Errorf("s7comm: read item failed: % x", f[:min(len(f), 22)])
	}
	return nil
}

func (s *s7Load) run(ctx context.Context, target string, rec *recorder, budget *pacer) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		return fmt.Errorf("s7comm: %w", err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	br := bufio.NewReaderSize(c, 4096)
	buf := make([]byte, 4096)
	if _, err := c.Write(s7CR); err != nil {
		return fmt.Errorf("s7comm: %w", err)
	}
	f, err := readTPKT(br, buf)
	if err != nil || len(f) < 6 || f[5] != 0xd0 {
		return fmt.Errorf("s7comm: no connection confirm (%v)", err)
	}
	if _, err := c.Write(s7Setup); err != nil {
		return fmt.Errorf("s7comm: %w", err)
	}
	if f, err = readTPKT(br, buf); err != nil {
		return fmt.Errorf("s7comm: setup: %w", err)
	}
	if err := s7AckOK(f, 1, false); err != nil {
		return err
	}
	n := s.o.quantity
	var ref uint16 = 1
	for {
		ref++
		req := s7ReadVar(ref, n)
		sent := time.Now()
		if _, err := c.Write(req); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("s7comm: %w", err)
		}
		f, err := readTPKT(br, buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("s7comm: read: %w", err)
		}
		rerr := s7AckOK(f, ref, true)
		rec.record(sent, rerr)
		if rerr != nil {
			return rerr
		}
		if ctx.Err() != nil || budget.Add(-1) <= 0 {
			return nil
		}
	}
}
