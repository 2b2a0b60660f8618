// Package hpfeeds is the [sinks.hpfeeds] event sink: an hpfeeds publisher that
// authenticates to a broker (OP_INFO, OP_AUTH with SHA-1(nonce || secret)) and publishes
// every event (OP_PUBLISH) as icsnare JSON or as Conpot's hpfeeds record, on one channel
// or one per event kind, with reconnection and a bounded backlog. See README.md.
package hpfeeds

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/icsnare/icsnare/events"
)

// Name is the sink kind: [sinks.hpfeeds].
const Name = "hpfeeds"

func init() { events.Register(kind{}) }

type kind struct{}

func (kind) Name() string { return Name }

// NewOptions implements events.Kind.
func (kind) NewOptions() any { return DefaultOptions() }

// Open implements events.Kind.
func (kind) Open(_ context.Context, opts any, env events.Env) (events.Sink, error) {
	o, _ := opts.(*Options)
	if o == nil {
		return nil, errors.New("hpfeeds: no options (ident and secret are required)")
	}
	return Open(o, env)
}

// Formats of the published payload.
const (
	FormatIcsnare = "icsnare" // the icsnare JSON of the event
	FormatConpot  = "conpot"  // Conpot's hpfeeds record, one per Conpot document
)

// Options are the keys of [sinks.hpfeeds].
type Options struct {
	// Address is the broker, host:port.
	Address string `toml:"address"`
	// Ident and Secret authenticate to the broker; SecretFile, when set, holds the secret
	// instead (its first line).
	Ident      string `toml:"ident"`
	Secret     string `toml:"secret"`
	SecretFile string `toml:"secret_file"`
	// Channels are the channels each event is published on: names in which {type} stands
	// for the event type and {protocol} for its protocol ("icsnare.{type}" is a channel per
	// event kind).
	Channels []string `toml:"channels"`
	// Format is the payload: "icsnare" or "conpot".
	Format string `toml:"format"`
	// PublicIP is Conpot's public_ip in the conpot format ("" is null).
	PublicIP string `toml:"public_ip"`
	// DialTimeout bounds a connection with its handshake (OP_INFO, OP_AUTH); AuthWait is
	// how long after OP_AUTH the broker may answer with OP_ERROR before the first publish;
	// WriteTimeout bounds one write.
	DialTimeout  time.Duration `toml:"dial_timeout"`
	AuthWait     time.Duration `toml:"auth_wait"`
	WriteTimeout time.Duration `toml:"write_timeout"`
	// ReconnectMin and ReconnectMax bound the back-off between failed connections.
	ReconnectMin time.Duration `toml:"reconnect_min"`
	ReconnectMax time.Duration `toml:"reconnect_max"`
	// Backlog bounds the bytes, BacklogMessages the messages, kept while the broker is
	// unreachable; the oldest are dropped (and counted) first.
	Backlog         int `toml:"backlog"`
	BacklogMessages int `toml:"backlog_messages"`
	// CloseTimeout bounds the last delivery of the backlog when the sensor stops.
	CloseTimeout time.Duration `toml:"close_timeout"`

	secret string
}

// DefaultOptions returns the defaults of [sinks.hpfeeds].
func DefaultOptions() *Options {
	return &Options{
		Address:         "127.0.0.1:10000",
		Channels:        []string{"icsnare.events"},
		Format:          FormatIcsnare,
		DialTimeout:     5 * time.Second,
		AuthWait:        time.Second,
		WriteTimeout:    5 * time.Second,
		ReconnectMin:    500 * time.Millisecond,
		ReconnectMax:    30 * time.Second,
		Backlog:         8 << 20,
		BacklogMessages: 100000,
		CloseTimeout:    5 * time.Second,
	}
}

// Validate implements protocols.Validator; errors name the key.
func (o *Options) Validate() error {
	host, port, err := net.SplitHostPort(o.Address)
	if err != nil || host == "" {
		return fmt.Errorf("address %q: want host:port", o.Address)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("address %q: bad port", o.Address)
	}
	if o.Ident == "" || len(o.Ident) > 255 || !utf8.ValidString(o.Ident) {
		return fmt.Errorf("ident %q: want 1–255 bytes of UTF-8", o.Ident)
	}
	switch {
	case o.Secret != "" && o.SecretFile != "":
		return errors.New("secret and secret_file: set one")
	case o.SecretFile != "":
		b, err := os.ReadFile(o.SecretFile)
		if err != nil {
			return fmt.Errorf("secret_file: %w", err)
		}
		line, _, _ := strings.Cut(string(b), "\n")
		if o.secret = strings.TrimRight(line, "\r"); o.secret == "" {
			return fmt.Errorf("secret_file %s: empty", o.SecretFile)
		}
	case o.Secret != "":
		o.secret = o.Secret
	default:
		return errors.New("secret: required (or secret_file)")
	}
	if len(o.Channels) == 0 {
		return errors.New("channels: want at least one")
	}
	for _, c := range o.Channels {
		if c == "" || len(c) > 255 || !utf8.ValidString(c) {
			return fmt.Errorf("channels: %q: want 1–255 bytes of UTF-8", c)
		}
		rest := strings.NewReplacer("{type}", "", "{protocol}", "").Replace(c)
		if strings.ContainsAny(rest, "{}") {
			return fmt.Errorf("channels: %q: only {type} and {protocol} may be substituted", c)
		}
	}
	switch o.Format {
	case FormatIcsnare, FormatConpot:
	default:
		return fmt.Errorf("format %q: want icsnare or conpot", o.Format)
	}
	if o.PublicIP != "" && o.Format != FormatConpot {
		return errors.New("public_ip: only the conpot format writes it")
	}
	for key, d := range map[string]time.Duration{"dial_timeout": o.DialTimeout, "auth_wait": o.AuthWait,
		"write_timeout": o.WriteTimeout, "reconnect_min": o.ReconnectMin, "reconnect_max": o.ReconnectMax,
		"close_timeout": o.CloseTimeout} {
		if d <= 0 {
			return fmt.Errorf("%s: want a positive duration", key)
		}
	}
	if o.AuthWait >= o.DialTimeout {
		return errors.New("auth_wait: want it shorter than dial_timeout")
	}
	if o.ReconnectMax < o.ReconnectMin {
		return errors.New("reconnect_max is shorter than reconnect_min")
	}
	if o.Backlog < 64<<10 {
		return fmt.Errorf("backlog %d: want at least 64 KiB", o.Backlog)
	}
	if o.BacklogMessages < 1 {
		return errors.New("backlog_messages: want at least 1")
	}
	return nil
}
