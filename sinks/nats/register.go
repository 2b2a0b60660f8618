// Package nats is the [sinks.nats] event sink: it publishes every event to NATS JetStream
// (subject <prefix>.<sensor>.<event_type>, Nats-Msg-Id = the event's id) with publish acks,
// and keeps what the server did not acknowledge in a bounded on-disk spool that it replays
// in order when the server is back.
package nats

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/icsnare/icsnare/events"
)

func init() { events.Register(Kind{}) }

// Kind is the nats sink kind.
type Kind struct{}

// Name implements events.Kind.
func (Kind) Name() string { return "nats" }

// NewOptions implements events.Kind.
func (Kind) NewOptions() any { return DefaultOptions() }

// Open implements events.Kind.
func (Kind) Open(ctx context.Context, opts any, env events.Env) (events.Sink, error) {
	o, ok := opts.(*Options)
	if !ok {
		return nil, fmt.Errorf("nats: options of type %T", opts)
	}
	return Open(ctx, *o, env)
}

// Options is the [sinks.nats] table.
type Options struct {
	// Servers are the NATS URLs (nats:// or tls://) of one cluster.
	Servers []string `toml:"servers"`
	// SubjectPrefix is the first token of every subject.
	SubjectPrefix string `toml:"subject_prefix"`
	// Stream is the JetStream stream that takes <SubjectPrefix>.>.
	Stream string `toml:"stream"`
	// CreateStream creates Stream (file storage) when it does not exist.
	CreateStream bool `toml:"create_stream"`
	// Replicas, DuplicateWindow and MaxAge configure a stream the sink creates.
	Replicas        int           `toml:"replicas"`
	DuplicateWindow time.Duration `toml:"duplicate_window"`
	MaxAge          time.Duration `toml:"max_age"`
	// MaxInFlight bounds the publishes waiting for their ack.
	MaxInFlight int `toml:"max_in_flight"`
	// Buffer is how many events wait in memory before new ones go to the spool.
	Buffer int `toml:"buffer"`
	// AckTimeout bounds the wait for one publish ack; ConnectTimeout one connection attempt.
	AckTimeout     time.Duration `toml:"ack_timeout"`
	ConnectTimeout time.Duration `toml:"connect_timeout"`
	// RetryMax is the longest pause between two attempts while the server is away.
	RetryMax time.Duration `toml:"retry_max"`
	// CloseTimeout bounds how long Close waits for outstanding acks; what is left is spooled.
	CloseTimeout time.Duration `toml:"close_timeout"`
	// SpoolMaxBytes bounds the spool on disk; past it new events are dropped and counted.
	SpoolMaxBytes int64 `toml:"spool_max_bytes"`
	// SpoolSegmentBytes is the size of one spool file.
	SpoolSegmentBytes int64 `toml:"spool_segment_bytes"`
	// Credentials: a .creds file (JWT and NKey), an NKey seed file, user and password, or a
	// token; at most one of them.
	Creds    string `toml:"creds_file"`
	NKeySeed string `toml:"nkey_seed_file"`
	User     string `toml:"user"`
	Password string `toml:"password"`
	Token    string `toml:"token"`
	// TLS: a CA file to verify the server, and a client certificate and key.
	TLSCA   string `toml:"tls_ca"`
	TLSCert string `toml:"tls_cert"`
	TLSKey  string `toml:"tls_key"`
}

// DefaultOptions returns the defaults of [sinks.nats].
func DefaultOptions() *Options {
	return &Options{
		Servers:           []string{"nats://127.0.0.1:4222"},
		SubjectPrefix:     "icsnare",
		Stream:            "ICSNARE",
		Replicas:          1,
		DuplicateWindow:   10 * time.Minute,
		MaxInFlight:       256,
		Buffer:            4096,
		AckTimeout:        5 * time.Second,
		ConnectTimeout:    5 * time.Second,
		RetryMax:          30 * time.Second,
		CloseTimeout:      time.Second,
		SpoolMaxBytes:     256 << 20,
		SpoolSegmentBytes: 4 << 20,
	}
}

// Limits of the options.
const (
	maxInFlightLimit = 65536
	maxBufferLimit   = 1 << 20
	minSegmentBytes  = 64 << 10
	maxSegmentBytes  = 1 << 30
)

// Validate checks the options.
func (o *Options) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if len(o.Servers) == 0 {
		bad("servers: name at least one NATS URL")
	}
	for _, s := range o.Servers {
		if err := checkURL(s); err != nil {
			bad("servers: %w", err)
		}
	}
	for _, t := range strings.Split(o.SubjectPrefix, ".") {
		if t == "" || Token(t) != t {
			bad("subject_prefix %q: want dot-separated tokens of letters, digits, '_' and '-'", o.SubjectPrefix)
			break
		}
	}
	if err := CheckStreamName(o.Stream); err != nil {
		bad("stream: %w", err)
	}
	if o.Replicas < 1 || o.Replicas > 5 {
		bad("replicas %d: want 1 to 5", o.Replicas)
	}
	if o.DuplicateWindow < 0 || o.MaxAge < 0 {
		bad("duplicate_window and max_age must not be negative")
	}
	if o.MaxInFlight < 1 || o.MaxInFlight > maxInFlightLimit {
		bad("max_in_flight %d: want 1 to %d", o.MaxInFlight, maxInFlightLimit)
	}
	if o.Buffer < 1 || o.Buffer > maxBufferLimit {
		bad("buffer %d: want 1 to %d", o.Buffer, maxBufferLimit)
	}
	for name, d := range map[string]time.Duration{"ack_timeout": o.AckTimeout, "connect_timeout": o.ConnectTimeout,
		"retry_max": o.RetryMax, "close_timeout": o.CloseTimeout} {
		if d <= 0 || d > time.Hour {
			bad("%s %s: want more than 0 and at most 1h", name, d)
		}
	}
	if o.SpoolSegmentBytes < minSegmentBytes || o.SpoolSegmentBytes > maxSegmentBytes {
		bad("spool_segment_bytes %d: want %d to %d", o.SpoolSegmentBytes, minSegmentBytes, maxSegmentBytes)
	}
	if o.SpoolMaxBytes < o.SpoolSegmentBytes {
		bad("spool_max_bytes %d: want at least spool_segment_bytes (%d)", o.SpoolMaxBytes, o.SpoolSegmentBytes)
	}
	if err := o.conn().check(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q: %w", s, err)
	}
	switch u.Scheme {
	case "nats", "tls":
	default:
		return fmt.Errorf("%q: want a nats:// or tls:// URL", s)
	}
	if u.Host == "" {
		return fmt.Errorf("%q: no host", s)
	}
	return nil
}

// CheckStreamName reports whether name is a valid JetStream stream (or consumer) name.
func CheckStreamName(name string) error {
	if name == "" || len(name) > 255 {
		return fmt.Errorf("%q: want 1 to 255 characters", name)
	}
	if strings.ContainsAny(name, " \t\r\n.*>/\\") {
		return fmt.Errorf("%q: no whitespace, '.', '*', '>' or path separators", name)
	}
	for _, r := range name {
		if r < 0x21 || r == 0x7f {
			return fmt.Errorf("%q: no control characters", name)
		}
	}
	return nil
}

func (o *Options) conn() Conn {
	return Conn{Servers: o.Servers, Creds: o.Creds, NKeySeed: o.NKeySeed, User: o.User, Password: o.Password,
		Token: o.Token, TLSCA: o.TLSCA, TLSCert: o.TLSCert, TLSKey: o.TLSKey, ConnectTimeout: o.ConnectTimeout}
}
