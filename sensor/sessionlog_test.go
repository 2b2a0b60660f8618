package sensor

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// TestSessionLogger: a session's records carry its protocol and id first, as Logger.With
// writes them, also through With and WithGroup, and the base handler's level applies.
func TestSessionLogger(t *testing.T) {
	var buf bytes.Buffer
	opts := &slog.HandlerOptions{Level: slog.LevelInfo, ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}
	base := slog.New(slog.NewTextHandler(&buf, opts))
	want := func(log func(*slog.Logger)) string {
		buf.Reset()
		log(base.With("protocol", "modbus", "session", "ab-1"))
		return buf.String()
	}
	got := func(log func(*slog.Logger)) string {
		buf.Reset()
		log(newSessionLogger(base, "modbus", "ab-1"))
		return buf.String()
	}
	for _, c := range []struct {
		name string
		log  func(*slog.Logger)
	}{
		{"plain", func(l *slog.Logger) { l.Info("read", "unit", 1, "n", 2) }},
		{"many-attrs", func(l *slog.Logger) { l.Warn("x", "a", 1, "b", 2, "c", 3, "d", 4, "e", 5, "f", 6, "g", 7) }},
		{"with", func(l *slog.Logger) { l.With("peer", "198.51.100.1").Info("hello", "k", "v") }},
		{"group", func(l *slog.Logger) { l.WithGroup("req").Info("hello", "k", "v") }},
		{"below-level", func(l *slog.Logger) { l.Debug("hidden") }},
	} {
		t.Run(c.name, func(t *testing.T) {
			w, g := want(c.log), got(c.log)
			if g != w {
				t.Fatalf("got  %q\nwant %q", g, w)
			}
			if c.name != "below-level" && !strings.Contains(g, "protocol=modbus session=ab-1") {
				t.Fatalf("no session attributes in %q", g)
			}
		})
	}
}
