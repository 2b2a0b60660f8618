package kamstrupmgmt

import (
	"testing"
)

// FuzzRespond: any line gets a bounded reply or a close, never a panic.
func FuzzRespond(f *testing.F) {
	for _, s := range []string{"H", "H !SC", "!AC 0 2 192.168.1.211", "!SC 0 1 2 3 4 5 6 7 8 9", "!SK 99999999999999999999 -1 x",
		"!SA 999999999999", "!SI 0", "!SP 0 0 80", "!SB 1.2.3.4 70000", "!SS B 115200,8,E,1,L", "!RC A", "Q"} {
		f.Add(s)
	}
	st, _ := freshStore(f)
	f.Fuzz(func(t *testing.T, line string) {
		r := Respond(st, line)
		if len(r.Reply) > 4096 {
			t.Fatalf("reply of %d bytes to %q", len(r.Reply), line)
		}
		if r.Close && r.Reply != "" {
			t.Fatalf("close with a reply to %q", line)
		}
	})
}

// FuzzLineReader: the line reader holds a bounded amount and its lines carry no line
// endings or telnet commands.
func FuzzLineReader(f *testing.F) {
	f.Add([]byte("!GV\r\n"))
	f.Add([]byte("\xff\xfb\x01\xff\xfa\x18\x00x\xff\xf0H\r\x00"))
	f.Add([]byte("a\rb\nc\r\nd"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var r LineReader
		for _, l := range r.Feed(b) {
			for _, c := range l.Text {
				if c == '\r' || c == '\n' || c == 0xff || c == 0 {
					t.Fatalf("line %q carries %#x", l.Text, c)
				}
			}
			if len(l.Text) > maxLine || len(l.Raw) > maxLine+1 {
				t.Fatalf("line of %d bytes", len(l.Text))
			}
		}
		if len(r.raw) > maxLine || len(r.text) > maxLine {
			t.Fatal("unbounded")
		}
	})
}
