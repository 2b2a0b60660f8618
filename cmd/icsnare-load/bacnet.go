package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"
)

// bacnetLoad sends BACnet/IP ReadProperty requests for one property of the device (the
// wildcard instance 4194303) over UDP, one outstanding per socket.
type bacnetLoad struct{ o opts }

func newBACnet(o opts) workload { return &bacnetLoad{o} }

// readPropertyRequest is a BVLC Original-Unicast-NPDU carrying a confirmed ReadProperty of
// property prop of device 4194303 with invoke id.
func readPropertyRequest(invoke byte, prop int) []byte {
	apdu := []byte{0x00, 0x05, invoke, 0x0c, 0x0c, 0x02, 0x3f, 0xff, 0xff}
	switch {
	case prop < 0x100:
		apdu = append(apdu, 0x19, byte(prop))
	case prop < 0x10000:
		apdu = append(apdu, 0x1a, byte(prop>>8), byte(prop))
	default:
		apdu = append(apdu, 0x1b, byte(prop>>16), byte(prop>>8), byte(prop))
	}
	n := 4 + 2 + len(apdu)
	return append([]byte{0x81, 0x0a, byte(n >> 8), byte(n), 0x01, 0x04}, apdu...)
}

// answerInvoke returns the invoke id of a ComplexACK, Error, Reject or Abort answering a
// confirmed request (the NPDU has no routing information here).
func answerInvoke(b []byte) (byte, bool) {
	if len(b) < 8 || b[0] != 0x81 || b[4] != 0x01 || b[5]&0x28 != 0 {
		return 0, false
	}
	switch b[6] >> 4 {
	case 3, 5, 6, 7:
		return b[7], true
	}
	return 0, false
}

func (l *bacnetLoad) run(ctx context.Context, target string, rec *recorder, budget *pacer) error {
	c, err := net.Dial("udp", target)
	if err != nil {
		return fmt.Errorf("bacnet: %w", err)
	}
	defer c.Close()
	buf := make([]byte, 2048)
	var invoke byte
	for ctx.Err() == nil {
		invoke++
		sent := time.Now()
		if _, err := c.Write(readPropertyRequest(invoke, l.o.property)); err != nil {
			return fmt.Errorf("bacnet: %w", err)
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
				return fmt.Errorf("bacnet: read: %w", err)
			}
			if id, ok := answerInvoke(buf[:n]); ok && id == invoke {
				if buf[6]>>4 == 3 {
					rec.record(sent, nil)
				} else {
					rec.record(sent, fmt.Errorf("bacnet: answer type %d", buf[6]>>4))
				}
				break
			}
		}
		if budget.Add(-1) <= 0 {
			return nil
		}
	}
	return nil
}
