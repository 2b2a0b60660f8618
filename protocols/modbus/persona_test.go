package modbus

import (
	"context"
	"strings"
	"testing"

	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// knobs rewrites the test profile's modbus.xml into a device with the given extra elements
// (tcp mode, one slave 255).
func knobs(extra string) func(string) string {
	return func(x string) string {
		for _, el := range []string{"mode", "unknown_unit", "protocol_id", "bad_length", "delay"} {
			if i := strings.Index(x, "<"+el+">"); i >= 0 {
				j := strings.Index(x[i:], "</"+el+">")
				x = x[:i] + x[i+j+len("</"+el+">"):]
			}
		}
		x = strings.Replace(x, `<slave id="1">`, `<slave id="255">`, 1)
		return strings.Replace(x, "<slaves>", "<mode>tcp</mode>"+extra+"<slaves>", 1)
	}
}

// TestPersonaKnobs checks the answers to frames a scanner sends that are not Modbus: a
// non-zero protocol identifier, an HTTP request (nmap -sV's GetRequest probe), and units
// other than 0 and 255 on a stack that ignores the unit identifier.
func TestPersonaKnobs(t *testing.T) {
	get := []byte("GET / HTTP/1.0\r\n\r\n")
	pid := unhex(t, "0007 0006 0006 01 03 0000 0001") // protocol id 6, read holding 0
	for _, tc := range []struct {
		name   string
		extra  string
		in     []byte
		want   string // hex of the whole reply stream
		events string // event type expected once
	}{
		{"pid dropped", "", pid, "", "modbus.request"},
		{"pid exception", "<protocol_id>exception</protocol_id>", pid, "0007 0000 0003 01 83 01", "modbus.request"},
		// nmap's "match modbus m|^GE\0\0\0\x03H\xd4[\x01-\x03]|"
		{"http closes", "", get, "", "modbus.bad_frame"},
		{"http exception", "<bad_length>exception</bad_length>", get, "4745 0000 0003 48 d4 01", "modbus.bad_frame"},
		{"unit 7 silent", "<unknown_unit>silent</unknown_unit>", adu(9, 7, 3, 0, 0, 0, 1), "", "modbus.request"},
		{"unit 7 device", "<unknown_unit>device</unknown_unit>", adu(9, 7, 3, 0, 0, 0, 1), "0009 0000 0005 07 03 02 0000", "modbus.request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc, h := testService(t, knobs(tc.extra))
			h.Databus.Set("memoryModbusHoldingRegisters", seq(64, func(int) any { return int64(0) }))
			rec := &protocoltest.Recorder{}
			c := &fakeConn{chunks: [][]byte{tc.in}}
			svc.ServeConn(context.Background(), testSession(h, rec), c)
			compareRepliesRaw(t, c.out.Bytes(), unhex(t, tc.want))
			if n := len(rec.OfType(tc.events)); n != 1 {
				t.Errorf("%d %s events, want 1", n, tc.events)
			}
		})
	}
}

// TestPersonaKnobErrors checks that bad knob values are refused with the element named.
func TestPersonaKnobErrors(t *testing.T) {
	for _, extra := range []string{
		"<protocol_id>answer</protocol_id>",
		"<bad_length>maybe</bad_length>",
	} {
		p := protocoltest.Profile(t, protocoltest.Station)
		dir := t.TempDir() + "/p"
		if err := copyFS(p, dir, knobs(extra)); err != nil {
			t.Fatal(err)
		}
		if _, err := (protocol{}).Configure(protocoltest.Profile(t, dir).Sections[Name], nil); err == nil {
			t.Errorf("%s accepted", extra)
		}
	}
}

// FuzzServePersona is FuzzServe with the knobs a persona turns on for scanners (protocol id
// and bad length answered, every unit served): replies stay whole MBAP frames, answer the
// requests in order, and the answer to a bad header is the last one.
func FuzzServePersona(f *testing.F) {
	addSeeds(f)
	f.Add([]byte("GET / HTTP/1.0\r\n\r\n"))
	f.Add(unhex(f, "0007 0006 0006 01 03 0000 0001"))
	svc, h := testService(f, knobs("<unknown_unit>device</unknown_unit><protocol_id>exception</protocol_id><bad_length>exception</bad_length>"))
	f.Fuzz(func(t *testing.T, in []byte) {
		c := &fakeConn{chunks: [][]byte{append([]byte(nil), in...)}}
		svc.ServeConn(context.Background(), testSession(h, nil), c)
		var tids []uint16
		for b := in; ; {
			n, err := NextFrame(b)
			if err != nil && len(b) >= HeaderLen+1 {
				tids = append(tids, uint16(b[0])<<8|uint16(b[1])) // answered, then closed
			}
			if err != nil || n == 0 {
				break
			}
			tids = append(tids, uint16(b[0])<<8|uint16(b[1]))
			b = b[n:]
		}
		out := c.out.Bytes()
		j := 0
		for len(out) > 0 {
			if len(out) < HeaderLen+2 {
				t.Fatalf("truncated reply % x", out)
			}
			n := 6 + (int(out[4])<<8 | int(out[5]))
			if n > len(out) || n > MaxADU {
				t.Fatalf("reply stream is not whole MBAP frames: % x", out)
			}
			tid := uint16(out[0])<<8 | uint16(out[1])
			for j < len(tids) && tids[j] != tid {
				j++
			}
			if j == len(tids) {
				t.Fatalf("reply with transaction %#x answers no request in order (requests %x)", tid, tids)
			}
			j++
			out = out[n:]
		}
	})
}
