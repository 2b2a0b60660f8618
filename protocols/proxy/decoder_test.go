package proxy

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"math/rand/v2"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// TestAsciiDecoder: Conpot's test (b"\x80abc" → "\ufffdabc") and the replacement rules of
// Python's "replace" handler, chunk by chunk.
func TestAsciiDecoder(t *testing.T) {
	f, ok := protocols.LookupDecoder(AsciiDecoderName)
	if !ok {
		t.Fatal("AsciiDecoder not registered")
	}
	d := f()
	if got := d.DecodeIn([]byte("\x80abc")); got != "\ufffdabc" {
		t.Errorf("DecodeIn(\\x80abc) = %q", got)
	}
	if got := d.DecodeOut([]byte("\x80abc")); got != "\ufffdabc" {
		t.Errorf("DecodeOut(\\x80abc) = %q", got)
	}
	for _, c := range []struct{ in, want string }{
		{"plain\r\n", "plain\r\n"},
		{"\xe2\x82", "\ufffd"},                 // one maximal subpart
		{"\xe2\x82\xac", "€"},                  // complete
		{"\xe0\x80\x80", "\ufffd\ufffd\ufffd"}, // overlong: E0 needs A0..BF
		{"\xed\xa0\x80", "\ufffd\ufffd\ufffd"}, // surrogate
		{"\xf4\x90\x80\x80", "\ufffd\ufffd\ufffd\ufffd"},
		{"\xf0\x9f\x98", "\ufffd"},
		{"\xc0\xaf", "\ufffd\ufffd"},
		{"a\xffb", "a\ufffdb"},
	} {
		out, rest := ReplaceInvalidUTF8(nil, []byte(c.in), true)
		if string(out) != c.want || rest != nil {
			t.Errorf("%q → %q (rest %q), want %q", c.in, out, rest, c.want)
		}
	}
	// A character split over two reads is decoded whole (Conpot's decoder would print two
	// replacement characters); a cut-off one at the end stays pending.
	var s UTF8Stream
	if a, b := s.Decode([]byte("temp 21\xc2")), s.Decode([]byte("\xb0C")); a+b != "temp 21°C" || a != "temp 21" {
		t.Errorf("split: %q + %q", a, b)
	}
	s.Decode([]byte("x\xf0\x9f"))
	if got := s.Flush(); got != "\ufffd" {
		t.Errorf("flush %q", got)
	}
}

// TestAsciiDecoderMatchesPython decodes random byte strings with python3's
// bytes.decode("utf-8", "replace") and with ReplaceInvalidUTF8: the same text.
func TestAsciiDecoderMatchesPython(t *testing.T) {
	py := protocoltest.NeedTool(t, "python3")
	r := rand.New(rand.NewPCG(1, 2))
	var inputs []string
	alphabet := []byte{0x00, 'a', 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xe1, 0xec, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xff}
	for range 400 {
		b := make([]byte, r.IntN(12))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		inputs = append(inputs, hex.EncodeToString(b))
	}
	script := `import sys, json
for line in sys.stdin:
    print(json.dumps(bytes.fromhex(line.strip()).decode("utf-8", "replace")))`
	cmd := exec.Command(py, "-c", script)
	cmd.Stdin = strings.NewReader(strings.Join(inputs, "\n") + "\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(inputs) {
		t.Fatalf("python answered %d lines for %d", len(lines), len(inputs))
	}
	for i, in := range inputs {
		var want string
		if err := json.Unmarshal([]byte(lines[i]), &want); err != nil {
			t.Fatal(err)
		}
		b, _ := hex.DecodeString(in)
		got, _ := ReplaceInvalidUTF8(nil, b, true)
		if string(got) != want {
			t.Errorf("%s: got %q, python %q", in, got, want)
		}
		// Split anywhere, the stream gives the same text.
		var s UTF8Stream
		cut := len(b) / 2
		if joined := s.Decode(b[:cut]) + s.Decode(b[cut:]) + s.Flush(); joined != want {
			t.Errorf("%s split at %d: %q, python %q", in, cut, joined, want)
		}
	}
}

// lineDecoder is a stateful test decoder: it reports complete lines only, keeping a partial
// line between chunks (as the Kamstrup decoder keeps a partial frame).
type lineDecoder struct{ in, out []byte }

func (d *lineDecoder) DecodeIn(b []byte) string  { return lines(&d.in, b, "C: ") }
func (d *lineDecoder) DecodeOut(b []byte) string { return lines(&d.out, b, "S: ") }

func lines(pending *[]byte, b []byte, prefix string) string {
	*pending = append(*pending, b...)
	var out []string
	for {
		i := bytes.IndexByte(*pending, '\n')
		if i < 0 {
			break
		}
		out = append(out, prefix+string((*pending)[:i]))
		*pending = (*pending)[i+1:]
	}
	return strings.Join(out, "; ")
}

// panicDecoder panics on its second chunk.
type panicDecoder struct{ n int }

func (d *panicDecoder) DecodeIn(b []byte) string {
	if d.n++; d.n > 1 {
		panic("decoder bug")
	}
	return "first"
}
func (d *panicDecoder) DecodeOut(b []byte) string { return "" }

var registerTestDecoders sync.Once

func testDecoders() {
	registerTestDecoders.Do(func() {
		protocols.RegisterDecoder("icsnare.tests.LineDecoder", func() protocols.StreamDecoder { return &lineDecoder{} })
		protocols.RegisterDecoder("icsnare.tests.PanicDecoder", func() protocols.StreamDecoder { return &panicDecoder{} })
	})
}

// TestStatefulDecoder: a decoder that keeps state between chunks sees every chunk of its
// connection in order, and its text lands in the chunk events.
func TestStatefulDecoder(t *testing.T) {
	testDecoders()
	back := startBackend(t, echoBackend(""))
	_, srv := oneProxy(t, back.Addr.String(), "icsnare.tests.LineDecoder", nil)
	c := srv.dial(t, 1025)
	for _, part := range []string{"!GV", "\n!G", "C\n"} {
		c.Write([]byte(part))
		ioReadFull(c, make([]byte, len(part)))
	}
	c.Close()
	srv.waitEvent(t, "end")
	var in, out []string
	for _, e := range srv.events.OfType("proxy.request") {
		if d, ok := field(e, "decoded").(string); ok {
			in = append(in, d)
		}
	}
	for _, e := range srv.events.OfType("proxy.response") {
		if d, ok := field(e, "decoded").(string); ok {
			out = append(out, d)
		}
	}
	if strings.Join(in, "|") != "C: !GV|C: !GC" || strings.Join(out, "|") != "S: !GV|S: !GC" {
		t.Errorf("decoded in %q, out %q", in, out)
	}
}

// TestDecoderPanic: a decoder that panics is switched off for the connection with an
// event; the relay carries on.
func TestDecoderPanic(t *testing.T) {
	testDecoders()
	back := startBackend(t, echoBackend(""))
	_, srv := oneProxy(t, back.Addr.String(), "icsnare.tests.PanicDecoder", nil)
	c := srv.dial(t, 1025)
	for _, msg := range []string{"one", "two", "three"} {
		c.Write([]byte(msg))
		if got := make([]byte, len(msg)); func() bool { _, err := ioReadFull(c, got); return err != nil || string(got) != msg }() {
			t.Fatalf("relay broke at %q", msg)
		}
	}
	c.Close()
	srv.waitEvent(t, "end")
	if e := srv.waitEvent(t, "decoder_error"); field(e, "error") != "decoder bug" {
		t.Errorf("decoder_error %+v", e.Fields)
	}
	if n := len(srv.events.OfType("proxy.request")); n != 3 {
		t.Errorf("%d request events", n)
	}
}

// TestConpotEvents: the documents Conpot's JSON logger writes for proxy chunks.
func TestConpotEvents(t *testing.T) {
	ids := []protocols.Field{protocols.F("proxy", "Kamstrup telnet"), protocols.F("proxy_id", "kamstrup_telnet")}
	ev := func(typ string, extra ...protocols.Field) *protocols.Event {
		return &protocols.Event{Type: typ, Protocol: Name, Fields: append(append([]protocols.Field(nil), ids...), extra...)}
	}
	p := protocol{}
	cases := []struct {
		e    *protocols.Event
		want []protocols.ConpotEvent
	}{
		{ev("proxy.request"), []protocols.ConpotEvent{{DataType: "kamstrup_telnet"}}},
		{ev("proxy.request", protocols.F("decoded", "\ufffdabc"), protocols.F("decoder", AsciiDecoderName)),
			[]protocols.ConpotEvent{{DataType: "kamstrup_telnet"}, {DataType: "kamstrup_telnet", Request: `b'\xef\xbf\xbdabc'`}}},
		{ev("proxy.request", protocols.F("decoded", "Request for 1 register(s): 1054 (Voltage p1) [0x3f]"), protocols.F("decoder", decoder382)),
			[]protocols.ConpotEvent{{DataType: "kamstrup_telnet"}, {DataType: "kamstrup_telnet", Request: "Request for 1 register(s): 1054 (Voltage p1) [0x3f]"}}},
		{ev("proxy.response", protocols.F("decoded", "x"), protocols.F("decoder", AsciiDecoderName)),
			[]protocols.ConpotEvent{{DataType: "kamstrup_telnet"}, {DataType: "kamstrup_telnet", Request: ""}}},
		{ev("proxy.tls"), nil},
		{ev("proxy.backend_error"), nil},
		{&protocols.Event{Type: "proxy.connect", Protocol: Name}, nil},
	}
	for _, c := range cases {
		got := p.ConpotEvents(c.e)
		if len(got) != len(c.want) {
			t.Errorf("%s: %+v, want %+v", c.e.Type, got, c.want)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("%s[%d]: %+v, want %+v", c.e.Type, i, got[i], c.want[i])
			}
		}
	}
}

// TestPythonBytesRepr: protocols.ConpotBytes, with which the AsciiDecoder's text is
// logged, matches python3's repr of bytes.
func TestPythonBytesRepr(t *testing.T) {
	py := protocoltest.NeedTool(t, "python3")
	inputs := []string{"", "abc", "\x80abc", "it's", `say "hi"`, `both ' and "`, "\\\t\n\r\x00\x7f\xff", "\xef\xbf\xbdabc"}
	var hexes []string
	for _, in := range inputs {
		hexes = append(hexes, hex.EncodeToString([]byte(in)))
	}
	cmd := exec.Command(py, "-c", `import sys
for line in sys.stdin:
    print(repr(bytes.fromhex(line.strip())))`)
	cmd.Stdin = strings.NewReader(strings.Join(hexes, "\n") + "\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	for i, in := range inputs {
		if got := protocols.ConpotBytes([]byte(in)); got != want[i] {
			t.Errorf("%q: %s, python %s", in, got, want[i])
		}
	}
}

// TestClip keeps text valid.
func TestClip(t *testing.T) {
	if got := clip("aé", 2); got != "a" || !utf8.ValidString(got) {
		t.Errorf("clip %q", got)
	}
}

// TestConpotSession: no session documents for a proxy, whose chunk documents carry the
// proxy's id as data_type.
func TestConpotSession(t *testing.T) {
	start := &protocols.Event{Type: "proxy.connect", Protocol: Name, Transport: protocols.TCP, Phase: protocols.PhaseStart}
	end := &protocols.Event{Type: "proxy.disconnect", Protocol: Name, Transport: protocols.TCP, Phase: protocols.PhaseEnd}
	if d := protocols.ConpotDocuments(protocol{}, start); len(d) != 0 {
		t.Errorf("start: %+v", d)
	}
	if d := protocols.ConpotDocuments(protocol{}, end); len(d) != 0 {
		t.Errorf("end: %+v", d)
	}
	chunk := &protocols.Event{Type: "proxy.request", Protocol: Name, Transport: protocols.TCP, Request: []byte("x"),
		Fields: []protocols.Field{protocols.F("proxy", "SSL proxy"), protocols.F("proxy_id", "ssl_proxy")}}
	if d := protocols.ConpotDocuments(protocol{}, chunk); len(d) != 1 || d[0].DataType != "ssl_proxy" || d[0].Request != nil {
		t.Errorf("chunk: %+v", d)
	}
}
