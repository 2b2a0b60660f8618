package modbus

import (
	"context"
	"encoding/hex"
	"strings"
	"testing"
)

// captureSeeds are requests from the reference capture of real clients
// (conpot-outputs/probe-clients.pcap: nmap modbus-discover and the raw probes).
var captureSeeds = []string{
	"0000000000020111",
	"000100000006010300000004",
	"000200000006010100000008",
	"000300000006ff0300000004",
	"000400000005012b0e0100",
}

func addSeeds(f *testing.F) {
	for _, s := range captureSeeds {
		b, _ := hex.DecodeString(s)
		f.Add(b)
	}
	for i, x := range goldenExchanges {
		b, _ := hex.DecodeString(strings.ReplaceAll(x.pdu, " ", ""))
		f.Add(adu(uint16(i), x.unit, b...))
	}
	f.Add([]byte{0, 1, 0, 0, 0, 0, 1})
	f.Add([]byte{0, 1, 0})
}

// FuzzParseRequest: any PDU decodes without panicking, and an accepted request is
// consistent with the limits.
func FuzzParseRequest(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > HeaderLen {
			b = b[HeaderLen:]
		}
		r, ex := ParseRequest(b)
		if ex != 0 {
			return
		}
		switch r.Function {
		case FuncReadCoils, FuncReadDiscreteInputs:
			if r.Quantity < 1 || r.Quantity > maxReadBits {
				t.Fatalf("accepted quantity %d", r.Quantity)
			}
		case FuncReadHoldingRegisters, FuncReadInputRegisters:
			if r.Quantity < 1 || r.Quantity > maxReadRegisters {
				t.Fatalf("accepted quantity %d", r.Quantity)
			}
		case FuncWriteMultipleCoils:
			if len(r.Data) != (int(r.Quantity)+7)/8 {
				t.Fatalf("data %d bytes for %d coils", len(r.Data), r.Quantity)
			}
		case FuncWriteMultipleRegisters:
			if len(r.Data) != 2*int(r.Quantity) {
				t.Fatalf("data %d bytes for %d registers", len(r.Data), r.Quantity)
			}
		}
		if r.HasRange() && int(r.Address)+int(r.Quantity) > 0x10000 {
			t.Fatalf("accepted range %d+%d", r.Address, r.Quantity)
		}
	})
}

// FuzzNextFrame: framing never panics and never returns a frame longer than MaxADU or
// the input.
func FuzzNextFrame(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		for len(b) > 0 {
			n, err := NextFrame(b)
			if err != nil || n == 0 {
				return
			}
			if n > MaxADU || n > len(b) || n < HeaderLen+1 {
				t.Fatalf("frame of %d bytes from %d", n, len(b))
			}
			b = b[n:]
		}
	})
}

// FuzzServe drives the whole server loop with random bytes, split at a random point:
// it must not panic, every reply must be a whole MBAP frame of at most 260 bytes, and
// replies must answer the complete request frames in order, at most one each.
func FuzzServe(f *testing.F) {
	addSeeds(f)
	svc, h := testService(f, func(s string) string {
		return strings.Replace(s, "<delay>100</delay>", "<delay>0</delay>", 1)
	})
	f.Fuzz(func(t *testing.T, in []byte) {
		cut := 0
		if len(in) > 0 {
			cut = int(in[0]) % (len(in) + 1)
		}
		c := &fakeConn{chunks: [][]byte{append([]byte(nil), in[:cut]...), append([]byte(nil), in[cut:]...)}}
		svc.ServeConn(context.Background(), testSession(h, nil), c)
		// The request frames the server could see.
		var tids []uint16
		for b := in; ; {
			n, err := NextFrame(b)
			if err != nil || n == 0 {
				break
			}
			tids = append(tids, uint16(b[0])<<8|uint16(b[1]))
			b = b[n:]
		}
		out := c.out.Bytes()
		j := 0
		for len(out) > 0 {
			n, err := NextFrame(out)
			if err != nil || n == 0 || n > MaxADU {
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
