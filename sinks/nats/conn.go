package nats

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// Conn is how to reach and authenticate to a NATS cluster; the sink and icsnare collect
// share it.
type Conn struct {
	Servers                []string
	Creds, NKeySeed        string
	User, Password, Token  string
	TLSCA, TLSCert, TLSKey string
	ConnectTimeout         time.Duration
}

func (c Conn) check() error {
	n := 0
	for _, set := range []bool{c.Creds != "", c.NKeySeed != "", c.User != "", c.Token != ""} {
		if set {
			n++
		}
	}
	if n > 1 {
		return errors.New("creds_file, nkey_seed_file, user and token: set at most one")
	}
	if c.Password != "" && c.User == "" {
		return errors.New("password without user")
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("tls_cert and tls_key go together")
	}
	return nil
}

// Options returns the nats.go options of c: name is the client name the server shows; the
// connection retries for ever and buffers nothing while disconnected (publishes fail at
// once instead), so the caller keeps the only copy of what it could not send.
func (c Conn) Options(name string) ([]nats.Option, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	timeout := c.ConnectTimeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	opts := []nats.Option{
		nats.Name(name),
		nats.Timeout(timeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		nats.RetryOnFailedConnect(true),
		nats.ReconnectBufSize(-1),
		// credentials refused now may be accepted after the server's configuration is fixed
		nats.IgnoreAuthErrorAbort(),
	}
	switch {
	case c.Creds != "":
		opts = append(opts, nats.UserCredentials(c.Creds))
	case c.NKeySeed != "":
		o, err := nats.NkeyOptionFromSeed(c.NKeySeed)
		if err != nil {
			return nil, fmt.Errorf("nkey_seed_file: %w", err)
		}
		opts = append(opts, o)
	case c.User != "":
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	case c.Token != "":
		opts = append(opts, nats.Token(c.Token))
	}
	if c.TLSCA != "" {
		opts = append(opts, nats.RootCAs(c.TLSCA))
	}
	if c.TLSCert != "" {
		opts = append(opts, nats.ClientCert(c.TLSCert, c.TLSKey))
	}
	return opts, nil
}

// URL joins the servers for nats.Connect.
func (c Conn) URL() string { return strings.Join(c.Servers, ",") }

// Token makes s a valid subject token: bytes other than letters, digits, '_' and '-'
// become '_' (so no '.', '*', '>' or whitespace, and never "." or ".."), and at most 64
// bytes are kept; "" becomes "_".
func Token(s string) string {
	if s == "" {
		return "_"
	}
	if len(s) > 64 {
		s = s[:64]
	}
	ok := true
	for i := 0; i < len(s); i++ {
		if !tokenByte(s[i]) {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	b := []byte(s)
	for i, c := range b {
		if !tokenByte(c) {
			b[i] = '_'
		}
	}
	return string(b)
}

func tokenByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// Subject is the subject of an event of type eventType from sensor: prefix, the sensor's
// token, then one token per dotted part of the type ("modbus.request" stays two levels).
func Subject(prefix, sensor, eventType string) string {
	var b strings.Builder
	b.WriteString(prefix)
	b.WriteByte('.')
	b.WriteString(Token(sensor))
	parts := strings.Split(eventType, ".")
	if len(parts) > 8 {
		parts = append(parts[:7], strings.Join(parts[7:], "_"))
	}
	for _, p := range parts {
		b.WriteByte('.')
		b.WriteString(Token(p))
	}
	return b.String()
}
