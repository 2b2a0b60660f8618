package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"time"
)

// IEC 60870-5-104 APCI (IEC 60870-5-104 clause 5): start octet 0x68, length, four control
// octets. U-frame functions, and the ASDU type of interrogation.
const (
	iecStartDTAct = 0x07
	iecStartDTCon = 0x0B
	iecStopDTAct  = 0x13
	iecTestFRAct  = 0x43
	iecTestFRCon  = 0x83
	iecTypeGI     = 100 // C_IC_NA_1
	iecQOIStation = 20
	iecW          = 8 // acknowledge at the latest after w received I-frames (default w)
)

// uFrame is a U-format APDU.
func uFrame(fn byte) []byte { return []byte{0x68, 4, fn, 0, 0, 0} }

// sFrame is an S-format APDU acknowledging every I-frame up to receive number nr.
func sFrame(nr uint16) []byte {
	return []byte{0x68, 4, 0x01, 0, byte(nr << 1), byte(nr >> 7)}
}

// giFrame is an I-frame carrying a station interrogation (C_IC_NA_1, cause 6 activation,
// QOI 20) to common address ca, with send number ns and receive number nr.
func giFrame(ns, nr uint16, ca uint16) []byte {
	return []byte{0x68, 14, byte(ns << 1), byte(ns >> 7), byte(nr << 1), byte(nr >> 7),
		iecTypeGI, 0x01, 6, 0, byte(ca), byte(ca >> 8), 0, 0, 0, iecQOIStation}
}

// apdu is a parsed APDU: format 'I', 'S' or 'U'; the sequence numbers; the U function;
// and for I-frames the ASDU type, cause (without P/N and test bits) and P/N bit.
type apdu struct {
	format   byte
	ns, nr   uint16
	fn       byte
	typ, cot byte
	negative bool
	objects  int // information objects (the VSQ's number)
}

func parseAPDU(b []byte) (apdu, error) {
	if len(b) < 6 || b[0] != 0x68 || int(b[1]) != len(b)-2 || b[1] < 4 {
		return apdu{}, fmt.Errorf("iec104: malformed APDU % x", b)
	}
	var a apdu
	switch {
	case b[2]&1 == 0:
		a.format = 'I'
		a.ns = uint16(b[2])>>1 | uint16(b[3])<<7
		a.nr = uint16(b[4])>>1 | uint16(b[5])<<7
		if len(b) < 10 {
			return a, fmt.Errorf("iec104: I-frame without an ASDU: % x", b)
		}
		a.typ, a.objects, a.cot, a.negative = b[6], int(b[7]&0x7f), b[8]&0x3f, b[8]&0x40 != 0
	case b[2]&3 == 1:
		a.format = 'S'
		a.nr = uint16(b[4])>>1 | uint16(b[5])<<7
	default:
		a.format = 'U'
		a.fn = b[2]
	}
	if a.format != 'I' && len(b) != 6 {
		return a, fmt.Errorf("iec104: %c-frame of %d octets", a.format, len(b))
	}
	return a, nil
}

// readAPDU reads one APDU into buf.
func readAPDU(r io.Reader, buf []byte) ([]byte, error) {
	if _, err := io.ReadFull(r, buf[:2]); err != nil {
		return nil, err
	}
	if buf[0] != 0x68 {
		return nil, fmt.Errorf("iec104: start octet 0x%02x", buf[0])
	}
	n := int(buf[1])
	if _, err := io.ReadFull(r, buf[2:2+n]); err != nil {
		return nil, err
	}
	return buf[:2+n], nil
}

// iecGILoad starts data transfer once per connection, then runs station interrogations one
// after another: a request is done at its act term. I-frames received are acknowledged with
// an S-frame every w frames (and by the receive number of the next interrogation).
type iecGILoad struct{ o opts }

func newIECGI(o opts) workload { return &iecGILoad{o} }

// iecConn is one controlling station's side of a connection.
type iecConn struct {
	c      net.Conn
	br     *bufio.Reader
	buf    []byte
	ns, nr uint16 // next send number, next expected receive number
	unack  int    // I-frames received since we last acknowledged
	frames int64  // I-frames received in all
	points int    // information objects of the last interrogation
}

// next reads the next APDU, answering TESTFR act and acknowledging I-frames as it goes.
func (ic *iecConn) next() (apdu, error) {
	for {
		b, err := readAPDU(ic.br, ic.buf)
		if err != nil {
			return apdu{}, err
		}
		a, err := parseAPDU(b)
		if err != nil {
			return a, err
		}
		switch a.format {
		case 'U':
			if a.fn == iecTestFRAct {
				if _, err := ic.c.Write(uFrame(iecTestFRCon)); err != nil {
					return a, err
				}
				continue
			}
			return a, nil
		case 'S':
			continue
		}
		if a.ns != ic.nr {
			return a, fmt.Errorf("iec104: I-frame with send number %d, expected %d", a.ns, ic.nr)
		}
		ic.nr = (ic.nr + 1) & 0x7fff
		ic.frames++
		ic.unack++
		if ic.unack >= iecW {
			if _, err := ic.c.Write(sFrame(ic.nr)); err != nil {
				return a, err
			}
			ic.unack = 0
		}
		return a, nil
	}
}

// interrogate sends one station interrogation and reads until its act term.
func (ic *iecConn) interrogate(ca uint16) error {
	if _, err := ic.c.Write(giFrame(ic.ns, ic.nr, ca)); err != nil {
		return err
	}
	ic.ns = (ic.ns + 1) & 0x7fff
	ic.unack = 0 // the interrogation's receive number acknowledged them
	confirmed := false
	ic.points = 0
	for {
		a, err := ic.next()
		if err != nil {
			return err
		}
		if a.format != 'I' {
			return fmt.Errorf("iec104: unexpected U-frame 0x%02x during interrogation", a.fn)
		}
		if a.typ != iecTypeGI {
			if !confirmed {
				return fmt.Errorf("iec104: type %d before the act con", a.typ)
			}
			ic.points += a.objects
			continue
		}
		switch {
		case a.negative:
			return fmt.Errorf("iec104: interrogation refused (cause %d)", a.cot)
		case a.cot == 7:
			confirmed = true
		case a.cot == 10 && confirmed:
			return nil
		default:
			return fmt.Errorf("iec104: interrogation answered with cause %d", a.cot)
		}
	}
}

func (l *iecGILoad) run(ctx context.Context, target string, rec *recorder, budget *pacer) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		return fmt.Errorf("iec104: %w", err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	ic := &iecConn{c: c, br: bufio.NewReaderSize(c, 64<<10), buf: make([]byte, 260)}
	if _, err := c.Write(uFrame(iecStartDTAct)); err != nil {
		return fmt.Errorf("iec104: STARTDT: %w", err)
	}
	if a, err := ic.next(); err != nil || a.format != 'U' || a.fn != iecStartDTCon {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("iec104: STARTDT not confirmed: %+v %v", a, err)
	}
	for ctx.Err() == nil {
		sent := time.Now()
		err := ic.interrogate(uint16(l.o.ca))
		if err != nil && ctx.Err() != nil {
			break // cut short by the deadline: not a failure of the station
		}
		rec.record(sent, err)
		if err != nil {
			return err
		}
		if budget.Add(-1) <= 0 {
			break
		}
	}
	// Acknowledge what is outstanding and stop data transfer, politely but without waiting.
	c.SetDeadline(time.Now().Add(time.Second))
	if ic.unack > 0 {
		c.Write(sFrame(ic.nr))
	}
	c.Write(uFrame(iecStopDTAct))
	return nil
}
