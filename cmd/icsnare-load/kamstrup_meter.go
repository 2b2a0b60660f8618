package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"
)

// The Kamstrup Meter Protocol (KMP) as a 382 meter's network module carries it over TCP: a
// frame is a start byte (0x80 to the meter, 0x40 from it), the body stuffed (0x06, 0x0D,
// 0x1B, 0x40 and 0x80 sent as 0x1B, b^0xFF) and 0x0D. The body is the communication
// address, the command id, its data and a CRC-16/XMODEM (CCITT polynomial 0x1021, initial
// value 0) of address..data, big-endian.
const (
	kmpToMeter     = 0x80
	kmpFromMeter   = 0x40
	kmpEnd         = 0x0D
	kmpEscape      = 0x1B
	kmpAck         = 0x06
	kmpGetRegister = 0x10
	kmpAddr        = 0x3F // the meter's communication address (the module's and Conpot's default)
	kmpMaxValue    = 64   // longest register value (the 382's longest are 16 bytes)
	// kmpMaxFrame bounds a GetRegister answer for one register: start, end, and a body of
	// address, command, a record (5 bytes and the value) and the CRC, every byte stuffed.
	kmpMaxFrame = 2 + 2*(2+5+kmpMaxValue+2)
	// kmpMaxDepth is what the meter serves of the frames one read brings (it drops the rest).
	kmpMaxDepth = 8
	// kmpDefaultRegister is register 1, energy in (kWh ×10⁻¹), which every kamstrup_382
	// profile defines.
	kmpDefaultRegister = 1
)

// kamstrupAnswerTimeout bounds the wait for each answer of the Kamstrup modes (the meter
// delays its replies by up to 5 s as configured, 0.24–0.34 s by default; the console by
// 0.25 s), so a missing answer is a failed request rather than a wait until -duration ends.
const kamstrupAnswerTimeout = 10 * time.Second

// kmpStuffed reports whether b is sent escaped inside a frame.
func kmpStuffed(b byte) bool {
	switch b {
	case kmpAck, kmpEnd, kmpEscape, kmpFromMeter, kmpToMeter:
		return true
	}
	return false
}

// kmpCRC is CRC-16/XMODEM.
func kmpCRC(b []byte) uint16 {
	var crc uint16
	for _, c := range b {
		crc ^= uint16(c) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// kmpRequest is the frame of a GetRegister request for one register, to address addr.
func kmpRequest(addr byte, reg uint16) []byte {
	body := []byte{addr, kmpGetRegister, 1, byte(reg >> 8), byte(reg)}
	crc := kmpCRC(body)
	body = append(body, byte(crc>>8), byte(crc))
	f := []byte{kmpToMeter}
	for _, b := range body {
		if kmpStuffed(b) {
			f = append(f, kmpEscape, b^0xFF)
		} else {
			f = append(f, b)
		}
	}
	return append(f, kmpEnd)
}

// kmpRecord is the one register record of a GetRegister answer.
type kmpRecord struct {
	id          uint16
	units, siex byte
	value       []byte
}

// kmpParseAnswer checks a complete answer frame (start byte through end byte) to a
// GetRegister for reg and returns its record. body is scratch space for the unstuffed
// bytes.
func kmpParseAnswer(raw, body []byte, reg uint16) (kmpRecord, error) {
	if len(raw) < 2 || raw[0] != kmpFromMeter || raw[len(raw)-1] != kmpEnd {
		return kmpRecord{}, fmt.Errorf("not an answer frame: % x", kmpClip(raw))
	}
	body = body[:0]
	for i := 1; i < len(raw)-1; i++ {
		b := raw[i]
		switch b {
		case kmpFromMeter, kmpToMeter, kmpEnd:
			return kmpRecord{}, fmt.Errorf("unescaped 0x%02x inside the frame % x", b, kmpClip(raw))
		case kmpEscape:
			i++
			if i >= len(raw)-1 || !kmpStuffed(raw[i]^0xFF) {
				return kmpRecord{}, fmt.Errorf("bad escape in the frame % x", kmpClip(raw))
			}
			b = raw[i] ^ 0xFF
		}
		body = append(body, b)
	}
	if len(body) < 4 {
		return kmpRecord{}, fmt.Errorf("frame of %d bytes unstuffed: % x", len(body), kmpClip(raw))
	}
	n := len(body) - 2
	if got, want := uint16(body[n])<<8|uint16(body[n+1]), kmpCRC(body[:n]); got != want {
		return kmpRecord{}, fmt.Errorf("CRC 0x%04x, computed 0x%04x: % x", got, want, kmpClip(raw))
	}
	if body[0] != kmpAddr || body[1] != kmpGetRegister {
		return kmpRecord{}, fmt.Errorf("answer from address 0x%02x for command 0x%02x, want 0x%02x and GetRegister (0x10)", body[0], body[1], kmpAddr)
	}
	data := body[2:n]
	switch {
	case len(data) == 0:
		return kmpRecord{}, errors.New("no record (the meter does not have the register)")
	case len(data) < 5:
		return kmpRecord{}, fmt.Errorf("register record cut short: % x", data)
	}
	r := kmpRecord{id: uint16(data[0])<<8 | uint16(data[1]), units: data[2], siex: data[4], value: data[5:]}
	if r.id != reg {
		return r, fmt.Errorf("record for register %d, want %d", r.id, reg)
	}
	if l := int(data[3]); l == 0 || l > kmpMaxValue || l != len(r.value) {
		return r, fmt.Errorf("value length %d with %d value bytes", l, len(r.value))
	}
	return r, nil
}

// kmpClip shortens a frame for an error message.
func kmpClip(b []byte) []byte { return b[:min(len(b), 32)] }

// kmpReadFrame reads one frame, through its end byte, of at most kmpMaxFrame bytes. The
// slice is valid until the next read from br.
func kmpReadFrame(br *bufio.Reader) ([]byte, error) {
	raw, err := br.ReadSlice(kmpEnd)
	switch {
	case errors.Is(err, bufio.ErrBufferFull) || len(raw) > kmpMaxFrame:
		return nil, fmt.Errorf("no end byte within %d bytes: % x", kmpMaxFrame, kmpClip(raw))
	case err != nil && len(raw) > 0:
		return nil, fmt.Errorf("answer cut short after %d bytes (% x): %w", len(raw), kmpClip(raw), err)
	case err != nil:
		return nil, fmt.Errorf("no answer: %w", err)
	}
	return raw, nil
}

// kamstrupDeadline gives the next answer kamstrupAnswerTimeout. It reports false when ctx
// ended: the ctx AfterFunc's deadline may have been overwritten, and the caller stops.
func kamstrupDeadline(ctx context.Context, c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(kamstrupAnswerTimeout))
	return ctx.Err() == nil
}

// kamstrupReadError adds the answer timeout to a read that ran out of it.
func kamstrupReadError(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("%w (no complete answer within %s)", err, kamstrupAnswerTimeout)
	}
	return err
}

// kamstrupMeterLoad sends GetRegister requests for one register (-register, default 1,
// energy in) to the meter's address 0x3F, -depth at a time, and checks each answer: the
// framing and stuffing, the CRC, the address and command, one record for the register
// asked, and a value of the length the record states (1-64 bytes).
type kamstrupMeterLoad struct{ o opts }

func newKamstrupMeter(o opts) workload { return &kamstrupMeterLoad{o} }

func (l *kamstrupMeterLoad) register() uint16 {
	if l.o.register < 0 {
		return kmpDefaultRegister
	}
	return uint16(l.o.register)
}

func (l *kamstrupMeterLoad) check() error {
	if l.o.register < -1 || l.o.register > 0xFFFF {
		return fmt.Errorf("kamstrup-meter: -register %d is not a register id 0..65535", l.o.register)
	}
	if l.o.depth > kmpMaxDepth {
		return fmt.Errorf("kamstrup-meter: -depth %d: a meter serves at most %d frames sent together", l.o.depth, kmpMaxDepth)
	}
	return nil
}

func (l *kamstrupMeterLoad) run(ctx context.Context, target string, rec *recorder, budget *pacer) error {
	reg := l.register()
	fail := func(err error) error { return fmt.Errorf("kamstrup-meter: register %d: %w", reg, err) }
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		return fmt.Errorf("kamstrup-meter: %w", err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	req := kmpRequest(kmpAddr, reg)
	br := bufio.NewReaderSize(c, 2*kmpMaxFrame)
	body := make([]byte, 0, kmpMaxFrame)
	read := func() error {
		raw, err := kmpReadFrame(br)
		if err != nil {
			return kamstrupReadError(err)
		}
		_, err = kmpParseAnswer(raw, body, reg)
		return err
	}
	return kamstrupPipeline(ctx, c, l.o.depth, req, rec, budget, read, fail)
}

// kamstrupPipeline sends req up to depth times ahead of the answers on c and reads them in
// order with read, each within kamstrupAnswerTimeout, recording every request. It ends
// when ctx does, when the budget is spent and every answer came, or at the first failure,
// recorded and returned through fail.
func kamstrupPipeline(ctx context.Context, c net.Conn, depth int, req []byte, rec *recorder, budget *pacer,
	read func() error, fail func(error) error) error {
	sent := make([]time.Time, 0, depth) // requests in flight, oldest first
	more := true
	for {
		for more && len(sent) < depth {
			if ctx.Err() != nil {
				return nil
			}
			if budget.Add(-1) <= 0 {
				more = false
				break
			}
			t := time.Now()
			if _, err := c.Write(req); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				err = fail(fmt.Errorf("write: %w", err))
				rec.record(t, err)
				return err
			}
			sent = append(sent, t)
		}
		if len(sent) == 0 {
			return nil
		}
		if !kamstrupDeadline(ctx, c) {
			return nil
		}
		if err := read(); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			err = fail(err)
			rec.record(sent[0], err)
			return err
		}
		rec.record(sent[0], nil)
		sent = append(sent[:0], sent[1:]...)
	}
}
