package proxy

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// FuzzAsciiDecoder: any bytes become valid UTF-8 no more than three times as long, valid
// input comes out unchanged, and splitting the stream anywhere gives the same text.
func FuzzAsciiDecoder(f *testing.F) {
	for _, s := range []string{"\x80abc", "H\r\n", "\xe2\x82\xac", "\xe2\x82", "\xf0\x9f\x98\x80", "\xed\xa0\x80", "\xff\xfe"} {
		f.Add([]byte(s), uint8(1))
	}
	f.Fuzz(func(t *testing.T, b []byte, cut uint8) {
		whole, rest := ReplaceInvalidUTF8(nil, b, true)
		if rest != nil || !utf8.Valid(whole) || len(whole) > 3*len(b) {
			t.Fatalf("%q → %q (rest %q)", b, whole, rest)
		}
		if utf8.Valid(b) && !bytes.Equal(whole, b) {
			t.Fatalf("valid %q changed to %q", b, whole)
		}
		c := int(cut) % (len(b) + 1)
		var s UTF8Stream
		first := s.Decode(b[:c])
		if s.n > utf8.UTFMax-1 || !utf8.ValidString(first) {
			t.Fatalf("pending %d, first %q", s.n, first)
		}
		if got := first + s.Decode(b[c:]) + s.Flush(); got != string(whole) {
			t.Fatalf("%q split at %d: %q, whole %q", b, c, got, whole)
		}
		if r := protocols.ConpotBytes(b); !utf8.ValidString(r) || len(r) > 3+4*len(b) {
			t.Fatalf("repr %q", r)
		}
	})
}

// FuzzDecoderPath runs the relay's decoder path (chunk events with the decoder's text) on
// any bytes cut into chunks: every event's text is valid UTF-8 within the payload bound,
// and the texts of a stream add up to its decoding in one piece.
func FuzzDecoderPath(f *testing.F) {
	f.Add([]byte("H\r\n!GV\r\n\x80abc"), []byte{3, 5})
	f.Add([]byte("\xe2\x82\xac\xe2\x82\xac"), []byte{1, 1, 1})
	f.Fuzz(func(t *testing.T, b []byte, cuts []byte) {
		rec := &protocoltest.Recorder{}
		sess := &protocols.Session{Protocol: Name, Events: rec, MaxPayload: 16}
		p := &proxy{proxyConf: &proxyConf{Name: "Kamstrup telnet", ID: "kamstrup_telnet", DecoderName: AsciiDecoderName}}
		r := &relay{sess: sess, p: p, budget: 1 << 20, dec: &asciiDecoder{}}
		r.emit = func(typ string, req, resp []byte, fields ...protocols.Field) { sess.Emit(typ, req, resp, fields...) }
		rest := b
		for i := 0; len(rest) > 0; i++ {
			n := len(rest)
			if i < len(cuts) && int(cuts[i]) > 0 && int(cuts[i]) < n {
				n = int(cuts[i])
			}
			r.record(i%2 == 0, "request", rest[:n])
			rest = rest[n:]
		}
		for _, e := range rec.Events() {
			if d, ok := field(e, "decoded").(string); ok && (!utf8.ValidString(d) || len(d) > 16) {
				t.Fatalf("decoded %q", d)
			}
			if len(e.Request) > 16 {
				t.Fatalf("request of %d bytes", len(e.Request))
			}
		}
	})
}

// FuzzConfig: any proxy.xml is parsed or refused with a positioned error, never a panic.
func FuzzConfig(f *testing.F) {
	f.Add(`<proxies enabled="True"><proxy name="A" port="1025"><proxy_host>192.0.2.1</proxy_host><proxy_port>1025</proxy_port><decoder>conpot.protocols.proxy.ascii_decoder.AsciiDecoder</decoder></proxy></proxies>`)
	f.Add(`<proxies><proxy name="" port="x"/><proxy name="B" port="1" keyfile="k"/></proxies>`)
	f.Fuzz(func(t *testing.T, doc string) {
		root, err := profiles.ParseXML("proxy/proxy.xml", strings.NewReader(doc))
		if err != nil {
			return
		}
		p := &profiles.Profile{Name: "fuzz", Source: "embedded:fuzz"}
		sec := &profiles.Section{Protocol: Name, File: "proxy/proxy.xml", Root: root, Profile: p}
		confs, err := parseConfig(sec, DefaultOptions())
		if err != nil {
			if !strings.Contains(err.Error(), "proxy/proxy.xml:") {
				t.Fatalf("unpositioned error %v", err)
			}
			return
		}
		ports := map[int]bool{}
		for _, c := range confs {
			if c.Port < 1 || c.Port > 65535 || ports[c.Port] || c.Backend.Port < 1 || c.Backend.Host == "" {
				t.Fatalf("accepted %+v", c)
			}
			ports[c.Port] = true
		}
	})
}
