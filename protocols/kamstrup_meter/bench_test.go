package kamstrupmeter

import (
	"testing"
)

// BenchmarkGetRegister answers an eight-register GetRegister (the most a KMP client asks
// for at once) of the kamstrup_382 template, live registers included, as the connection
// loop does: scan, parse, read the databus, encode.
func BenchmarkGetRegister(b *testing.B) {
	p := loadTemplate(b)
	svc := newService(mustConfig(b, p))
	h := hostFor(p)
	sess := testSession(h)
	req := AppendFrame(nil, RequestMagic, Message{Addr: 0x3f, Cmd: CmdGetRegister,
		Data: AppendGetRegister(nil, 1, 13, 1054, 1076, 1080, 1001, 1205, 1126)})
	sc := Scanner{Start: RequestMagic}
	b.ReportAllocs()
	for b.Loop() {
		for _, f := range sc.Feed(req) {
			if resp, _ := svc.handle(sess, h.Databus, f); resp == nil {
				b.Fatal("no reply")
			}
		}
	}
}

// BenchmarkDecoder decodes a request and its reply as the proxy does.
func BenchmarkDecoder(b *testing.B) {
	req, rsp := unhex(b, "80 3f 10 01 04 1e 7a bb 0d"), unhex(b, rsp1033)
	d := NewDecoder()
	b.ReportAllocs()
	for b.Loop() {
		if d.DecodeIn(req) == "" || d.DecodeOut(rsp) == "" {
			b.Fatal("nothing decoded")
		}
	}
}
