package clone

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/icsnare/icsnare/profiles"
)

// FuzzSeed: every value of every kind gives an expression that compiles and draws a value
// of the same length in runes (an IPv4 address excepted).
func FuzzSeed(f *testing.F) {
	for _, s := range []string{"00:1b:1b:5f:26:2f", "S C-C2UR28922012", "PW12-CPU226", "192.0.2.1", "", "\"\\\n\x00", "ü-7"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) || len(s) > 200 {
			return
		}
		for _, kind := range []string{KindMAC, KindSerial, KindHostname, KindIP} {
			tpl := NewTemplate(netip.MustParseAddr("127.38.0.1"))
			k := tpl.Seed(kind, "fuzz", "f", s)
			expr := tpl.keys[tpl.keyIndex[k]].expr
			e, err := profiles.CompileExpr("fuzz", expr)
			if err != nil {
				t.Fatalf("%s of %q: %s: %v", kind, s, expr, err)
			}
			v, err := e.Eval(7)
			if err != nil {
				t.Fatalf("%s of %q: %s: %v", kind, s, expr, err)
			}
			got, _ := v.(string)
			if kind == KindIP && strings.Count(got, ".") == 3 {
				continue
			}
			want := utf8.RuneCountInString(s)
			if kind == KindHostname && !strings.ContainsAny(s, digits) {
				want += 3
			}
			if utf8.RuneCountInString(got) != want {
				t.Fatalf("%s of %q drew %q", kind, s, got)
			}
		}
	})
}

// FuzzPageLinks: links of any page are clean absolute paths of the same site.
func FuzzPageLinks(f *testing.F) {
	f.Add("/", `<a href="Portal0000.htm">x</a><img src='/img/a.png'><a href=../../etc/passwd>`, "")
	f.Add("/a/b.htm", `<a href="http://other/x">`, "/next?x=1")
	f.Add("/", `<a href="javascript:alert(1)"><a href="//evil/x"><a href="?cmd=stop">`, "http://dev/Portal.htm")
	f.Fuzz(func(t *testing.T, pth, body, loc string) {
		if !strings.HasPrefix(pth, "/") {
			return
		}
		h := http.Header{"Content-Type": {"text/html"}}
		if loc != "" {
			h.Set("Location", loc)
		}
		for _, l := range pageLinks(&httpPage{path: pth, header: h, body: []byte(body)}) {
			if !strings.HasPrefix(l, "/") || strings.Contains(l, "..") || strings.ContainsAny(l, "?\"<>\\") {
				t.Fatalf("link %q from %q", l, body)
			}
		}
	})
}

// FuzzBACnetAnswer: any datagram gives an APDU or an error, and every decoder of the
// BACnet prober returns values or an error without panicking.
func FuzzBACnetAnswer(f *testing.F) {
	f.Add(bacWrap([]byte{0x30, 1, 12, 0x0C, 0x02, 0, 0, 1, 0x19, 0x4D, 0x3E, 0x75, 4, 0, 'a', 'b', 'c', 0x3F}, false))
	f.Add(bacWrap([]byte{0x30, 2, 14, 0x0C, 0x02, 0, 0, 1, 0x1E, 0x29, 0x4D, 0x4E, 0x75, 2, 0, 'x', 0x4F, 0x29, 0x1C, 0x5E, 0x91, 2, 0x91, 32, 0x5F, 0x1F}, false))
	f.Add(bacWrap([]byte{0x10, 0x00, 0xC4, 0x02, 0, 0x12, 0x67, 0x22, 0x05, 0xC4, 0x91, 0x00, 0x22, 0x01, 0x6C}, false))
	f.Add(bacWrap([]byte{0x50, 3, 12, 0x91, 2, 0x91, 32}, false))
	f.Add([]byte{0x81, 0x04, 0x00, 0x10, 127, 0, 0, 1, 0xBA, 0xC0, 0x01, 0x28, 0xFF, 0xFF, 0, 0x10})
	f.Fuzz(func(t *testing.T, b []byte) {
		apdu, err := bacUnwrap(b)
		if err != nil {
			return
		}
		parseIAm(apdu)
		ans, ok, err := parseAnswer(apdu)
		if !ok || err != nil || ans.err != nil {
			return
		}
		parseReadPropertyAck(ans.body, bacPropObjectName)
		parseRPMAck(ans.body, bacObject{Type: 8, Inst: 1})
		if vals, err := decodeValues(ans.body); err == nil {
			for _, v := range vals {
				_ = v.text()
			}
		}
	})
}

// FuzzEnipReply: a List reply decodes or fails; identity and service items never panic.
func FuzzEnipReply(f *testing.F) {
	req, _ := enipRequest(enipListIdentity, 7)
	id := fakeEnipIdentity(netip.MustParseAddrPort("127.73.0.1:44818"))
	item := append([]byte{0x0C, 0, byte(len(id)), 0}, id...)
	f.Add(enipReply(req, item, 1))
	f.Add(enipReply(req, item, 3))
	f.Add(enipReply(req, []byte{0, 1, 4, 0, 1, 0}, 1))
	f.Fuzz(func(t *testing.T, b []byte) {
		items, err := parseEnipReply(b, enipListIdentity, 7)
		if err != nil {
			return
		}
		for _, it := range items {
			parseEnipIdentity(it.data)
			parseEnipService(it)
		}
	})
}

// FuzzIPMIResponse: pongs and session-less responses decode or fail.
func FuzzIPMIResponse(f *testing.F) {
	f.Add([]byte{0x06, 0x00, 0xFF, 0x06, 0x00, 0x00, 0x11, 0xBE, 0x40, 0x49, 0x00, 0x10, 0, 0, 0x11, 0xBE, 0, 0, 0, 0, 0x81, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0x06, 0x00, 0xFF, 0x07, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0x81, 0x1C, 0x63, 0x20, 0x04, 0x38, 0x00, 0x01, 0x94, 0x04, 0x03, 0, 0, 0, 0, 0xAC})
	f.Fuzz(func(t *testing.T, b []byte) {
		parsePong(b)
		parseIPMIResponse(b, ipmiGetAuthCaps, 1)
	})
}

// FuzzS7Blocks: block lists and block info answers decode or fail.
func FuzzS7Blocks(f *testing.F) {
	f.Add([]byte{0x30, 0x38, 0, 3, 0x30, 0x41, 0, 2})
	info := make([]byte, 78)
	info[0], info[1], info[13] = 0x30, 0x38, 1
	f.Add(info)
	f.Fuzz(func(t *testing.T, b []byte) {
		parseBlockCounts(b)
		parseBlocksOfType(0x38, b)
		e := s7BlockEntry{typ: 0x38, number: 1}
		parseBlockInfo(b, &e)
	})
}
