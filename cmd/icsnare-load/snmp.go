package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// snmpLoad sends SNMPv2c GET requests for one OID over UDP, one outstanding per socket.
type snmpLoad struct{ o opts }

func newSNMP(o opts) workload { return &snmpLoad{o} }

func (s *snmpLoad) run(ctx context.Context, target string, rec *recorder, budget *pacer) error {
	oid, err := encodeOID(s.o.oid)
	if err != nil {
		return err
	}
	c, err := net.Dial("udp", target)
	if err != nil {
		return fmt.Errorf("snmp: %w", err)
	}
	defer c.Close()
	buf := make([]byte, 4096)
	var id int32 = 1
	for ctx.Err() == nil {
		id++
		pkt := getRequest(s.o.comm, id, oid)
		sent := time.Now()
		if _, err := c.Write(pkt); err != nil {
			return fmt.Errorf("snmp: %w", err)
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
				return fmt.Errorf("snmp: read: %w", err)
			}
			if rid, ok := responseID(buf[:n]); ok && rid == id {
				rec.record(sent, nil)
				break
			}
		}
		if budget.Add(-1) <= 0 {
			return nil
		}
	}
	return nil
}

// BER encoding, just enough for a GET request.
func tlv(tag byte, body []byte) []byte {
	n := len(body)
	var out []byte
	switch {
	case n < 0x80:
		out = []byte{tag, byte(n)}
	case n < 0x100:
		out = []byte{tag, 0x81, byte(n)}
	default:
		out = []byte{tag, 0x82, byte(n >> 8), byte(n)}
	}
	return append(out, body...)
}

func berInt(v int32) []byte {
	b := []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
	for len(b) > 1 && ((b[0] == 0 && b[1]&0x80 == 0) || (b[0] == 0xff && b[1]&0x80 != 0)) {
		b = b[1:]
	}
	return tlv(0x02, b)
}

func encodeOID(s string) ([]byte, error) {
	parts := strings.Split(strings.TrimPrefix(s, "."), ".")
	if len(parts) < 2 {
		return nil, fmt.Errorf("oid %q too short", s)
	}
	var arcs []uint64
	for _, p := range parts {
		v, err := strconv.ParseUint(p, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("oid %q: %w", s, err)
		}
		arcs = append(arcs, v)
	}
	out := []byte{byte(arcs[0]*40 + arcs[1])}
	for _, a := range arcs[2:] {
		var tmp []byte
		tmp = append(tmp, byte(a&0x7f))
		for a >>= 7; a > 0; a >>= 7 {
			tmp = append(tmp, byte(a&0x7f)|0x80)
		}
		for i := len(tmp) - 1; i >= 0; i-- {
			out = append(out, tmp[i])
		}
	}
	return tlv(0x06, out), nil
}

func getRequest(community string, id int32, oid []byte) []byte {
	vb := tlv(0x30, append(append([]byte{}, oid...), 0x05, 0x00))
	pdu := tlv(0xa0, append(append(append(berInt(id), berInt(0)...), berInt(0)...), tlv(0x30, vb)...))
	msg := append(append(berInt(1), tlv(0x04, []byte(community))...), pdu...)
	return tlv(0x30, msg)
}

// responseID extracts the request id of a GetResponse without a full decoder.
func responseID(b []byte) (int32, bool) {
	// SEQUENCE { INTEGER version, OCTET STRING community, [2] GetResponse { INTEGER id … } }
	r := &berReader{b: b}
	if !r.enter(0x30) || !r.skip(0x02) || !r.skip(0x04) || !r.enter(0xa2) {
		return 0, false
	}
	return r.int()
}

type berReader struct {
	b []byte
	i int
}

func (r *berReader) header(tag byte) (int, bool) {
	if r.i+2 > len(r.b) || r.b[r.i] != tag {
		return 0, false
	}
	n := int(r.b[r.i+1])
	r.i += 2
	if n&0x80 != 0 {
		k := n & 0x7f
		if k == 0 || k > 2 || r.i+k > len(r.b) {
			return 0, false
		}
		n = 0
		for j := 0; j < k; j++ {
			n = n<<8 | int(r.b[r.i+j])
		}
		r.i += k
	}
	if r.i+n > len(r.b) {
		return 0, false
	}
	return n, true
}

func (r *berReader) enter(tag byte) bool { _, ok := r.header(tag); return ok }

func (r *berReader) skip(tag byte) bool {
	n, ok := r.header(tag)
	r.i += n
	return ok
}

func (r *berReader) int() (int32, bool) {
	n, ok := r.header(0x02)
	if !ok || n == 0 || n > 4 {
		return 0, false
	}
	v := int32(int8(r.b[r.i]))
	for j := 1; j < n; j++ {
		v = v<<8 | int32(r.b[r.i+j])
	}
	return v, true
}
