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

// modbusLoad sends FC3 (read holding registers) requests, depth at a time.
type modbusLoad struct{ o opts }

func newModbus(o opts) workload { return &modbusLoad{o} }

func (m *modbusLoad) run(ctx context.Context, target string, rec *recorder, budget *pacer) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		return fmt.Errorf("modbus: %w", err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	q := m.o.quantity
	respLen := 9 + 2*q
	req := make([]byte, 12)
	binary.BigEndian.PutUint16(req[4:], 6)
	req[6] = byte(m.o.unit)
	req[7] = 3
	binary.BigEndian.PutUint16(req[8:], 0)
	binary.BigEndian.PutUint16(req[10:], uint16(q))
	br := bufio.NewReaderSize(c, 64<<10)
	resp := make([]byte, respLen)
	sent := make([]time.Time, 65536)
	var tid uint16
	send := func() error {
		tid++
		binary.BigEndian.PutUint16(req[0:], tid)
		sent[tid] = time.Now()
		_, err := c.Write(req)
		return err
	}
	inflight := 0
	for ; inflight < m.o.depth; inflight++ {
		if err := send(); err != nil {
			return err
		}
	}
	for {
		if _, err := io.ReadFull(br, resp); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("modbus: read: %w", err)
		}
		got := binary.BigEndian.Uint16(resp[0:])
		var rerr error
		if resp[7] != 3 || resp[8] != byte(2*q) {
			rerr = fmt.Errorf("modbus: unexpected response % x", resp[:9])
		}
		rec.record(sent[got], rerr)
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
