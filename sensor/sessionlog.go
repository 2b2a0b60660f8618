package sensor

import (
	"context"
	"log/slog"
)

// sessionLog is a session's logger handler: the sensor's handler with the session's
// protocol and id, added when a record is logged rather than when the session starts.
// slog's Logger.With would have the text or JSON handler format them up front, for every
// session, though most sessions log nothing.
type sessionLog struct {
	h                 slog.Handler
	protocol, session string
}

func newSessionLogger(base *slog.Logger, protocol, session string) *slog.Logger {
	return slog.New(&sessionLog{h: base.Handler(), protocol: protocol, session: session})
}

func (l *sessionLog) attrs() []slog.Attr {
	return []slog.Attr{slog.String("protocol", l.protocol), slog.String("session", l.session)}
}

func (l *sessionLog) Enabled(ctx context.Context, level slog.Level) bool {
	return l.h.Enabled(ctx, level)
}

// Handle passes r on with the session's attributes first, as Logger.With would place them.
func (l *sessionLog) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	out.AddAttrs(l.attrs()...)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(a)
		return true
	})
	return l.h.Handle(ctx, out)
}

func (l *sessionLog) WithAttrs(as []slog.Attr) slog.Handler {
	return l.h.WithAttrs(append(l.attrs(), as...))
}

func (l *sessionLog) WithGroup(name string) slog.Handler {
	return l.h.WithAttrs(l.attrs()).WithGroup(name)
}
