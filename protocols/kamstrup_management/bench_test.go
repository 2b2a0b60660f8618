package kamstrupmgmt

import "testing"

// BenchmarkRespond: the console's commands, from the line reader to the reply.
func BenchmarkRespond(b *testing.B) {
	st, _ := freshStore(b)
	for _, line := range []string{"H", "!GV", "!SC 0 1 2 3 4 5 6 7 8 9"} {
		b.Run(line, func(b *testing.B) {
			b.ReportAllocs()
			raw := []byte(line + "\r\n")
			for b.Loop() {
				var r LineReader
				ls := r.Feed(raw)
				if len(ls) != 1 {
					b.Fatalf("%d lines from %q", len(ls), raw)
				}
				if res := Respond(st, string(ls[0].Text)); res.Reply == "" && !res.Close {
					b.Fatalf("no reply to %q", line)
				}
			}
		})
	}
}
