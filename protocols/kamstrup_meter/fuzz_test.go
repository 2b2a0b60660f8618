package kamstrupmeter

import (
	"bytes"
	"testing"
)

// FuzzFrame: any input splits and parses without panicking; a frame that parses
// re-encodes to a frame that parses to the same message, and the scanner stays bounded.
func FuzzFrame(f *testing.F) {
	f.Add(unhex(f, req1033))
	f.Add(unhex(f, rsp1033))
	f.Add(unhex(f, "80 3f 10 02 00 01 55 a1 0d 80 1b 0d"))
	f.Add(unhex(f, "00 80 3f 1b f2 1b 0d 80 3f 10 01 04 1e 7a bb 0d"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, start := range []byte{RequestMagic, ResponseMagic} {
			sc := Scanner{Start: start}
			for _, fr := range sc.Feed(b) {
				if len(fr.Raw) > MaxFrame {
					t.Fatalf("frame of %d bytes", len(fr.Raw))
				}
				m, err := ParseFrame(fr.Raw)
				if err != nil {
					continue
				}
				again, err := ParseFrame(AppendFrame(nil, start, m))
				if err != nil || again.Addr != m.Addr || again.Cmd != m.Cmd || !bytes.Equal(again.Data, m.Data) {
					t.Fatalf("re-encoding % x: %+v %v", fr.Raw, again, err)
				}
				if ids, err := ParseGetRegister(m.Data); err == nil && len(ids) > 255 {
					t.Fatal("more than 255 ids")
				}
				ParseRegisters(m.Data)
			}
			if sc.Pending() > MaxFrame {
				t.Fatalf("scanner holds %d bytes", sc.Pending())
			}
		}
	})
}

// FuzzDecoder: the proxy decoder takes any bytes in both directions, split anywhere,
// and its text stays bounded.
func FuzzDecoder(f *testing.F) {
	f.Add(unhex(f, req1033), 3)
	f.Add(unhex(f, rsp1033), 7)
	f.Add(unhex(f, "80 3f 10 05 00 01 0d 40 3f 10 00 01 02 04 00 0d"), 0)
	f.Fuzz(func(t *testing.T, b []byte, cut int) {
		if cut < 0 || cut > len(b) {
			cut = len(b) / 2
		}
		d := NewDecoder()
		for _, part := range [][]byte{b[:cut], b[cut:]} {
			if s := d.DecodeIn(part); len(s) > maxDecoded+200 {
				t.Fatalf("%d bytes of text", len(s))
			}
			if s := d.DecodeOut(part); len(s) > maxDecoded+200 {
				t.Fatalf("%d bytes of text", len(s))
			}
		}
	})
}

// FuzzService: the meter's request handling answers any frame without panicking, and
// only with well-formed response frames.
func FuzzService(f *testing.F) {
	f.Add(unhex(f, req1033))
	f.Add(AppendFrame(nil, RequestMagic, Message{Addr: 0x3f, Cmd: CmdGetSerialNo}))
	f.Add(AppendFrame(nil, RequestMagic, Message{Addr: 0x3f, Cmd: CmdGetRegister, Data: AppendGetRegister(nil, 1, 13, 1205, 1126)}))
	p := loadTemplate(f)
	svc := newService(mustConfig(f, p))
	h := hostFor(p)
	f.Fuzz(func(t *testing.T, b []byte) {
		sess := testSession(h)
		sc := Scanner{Start: RequestMagic}
		for _, fr := range sc.Feed(b) {
			resp, _ := svc.handle(sess, h.Databus, fr)
			if resp == nil {
				continue
			}
			if _, err := ParseFrame(resp); err != nil || resp[0] != ResponseMagic {
				t.Fatalf("reply % x: %v", resp, err)
			}
		}
	})
}
