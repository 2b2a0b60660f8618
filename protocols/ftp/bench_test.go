package ftp

import "testing"

// BenchmarkParseCommand: a command line as a client sends it, and one with telnet
// escapes, which the parser strips.
func BenchmarkParseCommand(b *testing.B) {
	for _, c := range []struct {
		name, line, verb string
	}{
		{"retr", "RETR ftp_data.txt", "RETR"},
		{"telnet-escapes", "\xff\xf4\xff\xf2ABOR", "ABOR"},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			line := []byte(c.line)
			for b.Loop() {
				if v, _ := parseCommand(line); v != c.verb {
					b.Fatalf("verb %q, want %q", v, c.verb)
				}
			}
		})
	}
}
